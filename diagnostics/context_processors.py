"""The placeholder-address banner shown to staff at the top of every page."""

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from .placeholders import default_from_is_placeholder, staff_with_placeholder_email


def placeholder_banner(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}  # no query for everyone else
    users = [
        {
            "username": u.username,
            "email": u.email,
            "is_self": u.pk == user.pk,
            "edit_url": reverse("admin:auth_user_change", args=[u.pk]),
        }
        for u in staff_with_placeholder_email()
    ]
    default_from = default_from_is_placeholder()
    if not users and not default_from:
        return {}
    return {
        "placeholder_banner": {
            "users": users,
            "default_from": settings.MAILHUB_DEFAULT_FROM if default_from else None,
        }
    }
