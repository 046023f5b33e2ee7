"""Counters shown in the top bar of every page."""

from django.http import HttpRequest


def topbar(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from chatter.selectors import topbar_counters

    return topbar_counters(user=user)
