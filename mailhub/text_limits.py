"""How much text one form may carry (a post, a campaign body), and saying so instead of failing.

Django refuses a request whose form fields pass ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with
``RequestDataTooBig`` while the CSRF check reads the form, before any view: the user got an
error page and lost the text. So that limit is set well above this one (16 MB, in settings), and
the form says what the limit is with the text kept; ``static/mailhub/limits.js`` checks the
same limit before sending. Only past 16 MB does the 400 page (which names the limit) answer.
"""

import math

from django.core.exceptions import ValidationError

MAX_TEXT_BYTES = 2 * 1024 * 1024


def _mb(size: int) -> str:
    # Rounded up to a tenth: a text just over the limit must not read as the limit itself.
    tenths = math.ceil(size * 10 / (1024 * 1024))
    return f"{tenths / 10:.1f}".removesuffix(".0") + " MB"


def text_size_check(value: str, *, what: str = "This text") -> None:
    """``ValidationError`` naming the limit when ``value`` is over ``MAX_TEXT_BYTES``."""
    size = len((value or "").encode())
    if size > MAX_TEXT_BYTES:
        raise ValidationError(
            f"{what} is {_mb(size)}; the limit is {_mb(MAX_TEXT_BYTES)} of text: shorten it, "
            "or attach it as a file."
        )
