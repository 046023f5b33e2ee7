"""Placeholder addresses: the admin user's and the default sender's, before anyone set them.

Mail from a placeholder is refused or lost (the seed's "Changing the email address of the admin
user account"). The domains below are reserved for documentation and local use (RFC 2606, RFC
6761). ``.test`` (RFC 6761 §6.2) is the demo's own choice (``mailhub.test``): it is a placeholder
only outside the demo, i.e. once the install's ``MAILHUB_MAIL_DOMAIN`` is a real domain. A domain
without a dot (``admin@mailhost``) is a local host name that no other server can reach.
"""

from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

PLACEHOLDER_DOMAINS = frozenset(
    {"example.com", "example.net", "example.org", "localhost", "localhost.localdomain"}
)
PLACEHOLDER_SUFFIXES = (".example", ".localhost", ".invalid", ".local")
DEMO_SUFFIX = ".test"


def _is_demo_install() -> bool:
    """The install runs on a ``.test`` mail domain: the demo, where ``.test`` is meant."""
    return f".{settings.MAILHUB_MAIL_DOMAIN.lower().rstrip('.')}".endswith(DEMO_SUFFIX)


def is_placeholder_address(address: str | None) -> bool:
    """True for an empty address, one without a (dotted) domain, or one on a reserved domain."""
    _, addr = parseaddr(address or "")
    addr = addr.strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return True
    domain = domain.rstrip(".")
    if "." not in domain:
        return True
    if domain in PLACEHOLDER_DOMAINS or domain.endswith(PLACEHOLDER_SUFFIXES):
        return True
    return domain.endswith(DEMO_SUFFIX) and not _is_demo_install()


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
        .order_by("-is_superuser", "pk")
        .values_list("pk", "username", "email")
    )
    return [
        PlaceholderUser(pk, name, email)
        for pk, name, email in rows
        if is_placeholder_address(email)
    ]


def default_from_is_placeholder() -> bool:
    return is_placeholder_address(settings.MAILHUB_DEFAULT_FROM)
