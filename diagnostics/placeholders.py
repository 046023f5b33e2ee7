"""Placeholder addresses: the admin user's and the default sender's, before anyone set them.

Mail from a placeholder is refused or lost (the seed's "Changing the email address of the admin
user account"). The domains below are reserved for documentation and local use (RFC 2606, RFC
6761); ``.test`` is not listed because the demo domain ``mailhub.test`` is a deliberate choice.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

PLACEHOLDER_DOMAINS = frozenset(
    {"example.com", "example.net", "example.org", "localhost", "localhost.localdomain"}
)
PLACEHOLDER_SUFFIXES = (".example", ".localhost", ".invalid", ".local")


def is_placeholder_address(address: str | None) -> bool:
    """True for an empty address, one without a domain, or one on a reserved domain."""
    from email.utils import parseaddr

    _, addr = parseaddr(address or "")
    addr = addr.strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return True
    domain = domain.rstrip(".")
    return domain in PLACEHOLDER_DOMAINS or domain.endswith(PLACEHOLDER_SUFFIXES)


@dataclass(frozen=True)
class PlaceholderUser:
    pk: int
    username: str
    email: str


def staff_with_placeholder_email() -> list[PlaceholderUser]:
    """Active staff and superusers whose email is a placeholder (one query)."""
    rows = (
        get_user_model()
        .objects.filter(Q(is_staff=True) | Q(is_superuser=True), is_active=True)
        .order_by("pk")
        .values_list("pk", "username", "email")
    )
    return [
        PlaceholderUser(pk, name, email)
        for pk, name, email in rows
        if is_placeholder_address(email)
    ]


def default_from_is_placeholder() -> bool:
    return is_placeholder_address(settings.MAILHUB_DEFAULT_FROM)
