"""What the top of every page shows: the top bar's counters and the placeholder banner."""

from django.http import HttpRequest

from chatter.selectors import topbar_counters
from diagnostics.context_processors import placeholder_banner

from .text_limits import MAX_TEXT_BYTES


def topbar(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        **topbar_counters(user=user),
        **placeholder_banner(request),
        "max_text_bytes": MAX_TEXT_BYTES,
    }
