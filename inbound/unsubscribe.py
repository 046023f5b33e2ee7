"""The mailto unsubscribe address: ``unsubscribe@<alias domain>`` with ``unsubscribe <token>``.

RFC 2369 ``List-Unsubscribe`` may offer a mailto next to the RFC 8058 one-click URI; some mail
clients only use the mailto. The gateway owns the address and the Subject convention, but what
a token means belongs to the app that signed it. That app registers a handler here from its
``AppConfig.ready`` (campaigns does): the dependency then points from email marketing to the
gateway and never back, the pure routing stays free of other apps, and without a registered
handler the address is simply not routed (``550 5.1.1``) instead of half working.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

UNSUBSCRIBE_LOCAL = "unsubscribe"
_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class UnsubscribeHandler:
    check: Callable[[str], bool]  # is this token valid? reads only (asked at DATA)
    apply: Callable[[str], bool]  # unsubscribe, idempotent; False when the token is not valid


_handler: UnsubscribeHandler | None = None


def unsubscribe_handler_register(
    *, check: Callable[[str], bool], apply: Callable[[str], bool]
) -> None:
    """Route ``unsubscribe@`` to these functions (the last registration wins)."""
    global _handler  # noqa: PLW0603 - one process-wide registration, set once at start-up
    _handler = UnsubscribeHandler(check=check, apply=apply)


def unsubscribe_handler() -> UnsubscribeHandler | None:
    return _handler


def token_from_subject(subject: str) -> str:
    """``unsubscribe <token>`` → ``<token>`` ("" when the Subject does not carry one).

    Searched rather than matched whole, so a client's "Re: " or a trailing word is harmless.
    """
    found = _SUBJECT.search(subject or "")
    return found.group(1) if found else ""
