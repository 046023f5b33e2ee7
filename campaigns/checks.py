"""System checks of email marketing."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def unsubscribe_link_is_https(app_configs, **kwargs) -> list[Warning]:
    """RFC 8058 §3.1: the one-click target must be HTTPS, or large mailbox providers ignore it."""
    if settings.DEBUG or settings.MAILHUB_BASE_URL.startswith("https://"):
        return []
    return [
        Warning(
            f"MAILHUB_BASE_URL is {settings.MAILHUB_BASE_URL!r}: campaign mail carries a "
            "one-click unsubscribe link built from it, and RFC 8058 requires HTTPS.",
            hint="Set MAILHUB_BASE_URL to the public https:// address of MailHub.",
            id="campaigns.W001",
        )
    ]
