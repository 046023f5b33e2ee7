"""The state machine of an outgoing mail and its retry schedule (pure: no database, no Django).

States (``outbox.models.MailState``)::

    outgoing ──claim──▶ sending ──all recipients done──▶ sent | exception
       ▲  │               │
       │  │               ├── some recipients deferred (4xx, relay down) ──▶ outgoing (backoff)
       │  │               └── lease expired (worker died) ──────────────────▶ claimable again
       │  └──cancel──▶ cancel
       └──retry── exception | cancel

``sending`` is internal: a worker holds the mail until ``lease_expires_at``; a mail whose worker
died is claimed again once the lease has passed, so it is never lost and never stuck. Staff may
still cancel it at any time, or retry it once its lease has passed.
"""

import datetime as dt
from dataclasses import dataclass

OUTGOING = "outgoing"
SENDING = "sending"
SENT = "sent"
RECEIVED = "received"
EXCEPTION = "exception"
CANCEL = "cancel"

TRANSITIONS: dict[str, frozenset[str]] = {
    OUTGOING: frozenset({SENDING, CANCEL}),
    SENDING: frozenset({OUTGOING, SENT, EXCEPTION, CANCEL}),
    EXCEPTION: frozenset({OUTGOING, CANCEL}),
    CANCEL: frozenset({OUTGOING}),
    SENT: frozenset(),
    RECEIVED: frozenset(),
}

# Where each user action may start from (odoo-behaviour §1.1 buttons).
RETRY_FROM = frozenset(s for s, targets in TRANSITIONS.items() if OUTGOING in targets) - {SENDING}
# Cancel also takes a mail from its worker: the worker's writes are guarded by its claim, so
# they cannot undo the cancel. Retry takes ``sending`` mail only once its lease has run out
# (``RETRY_STUCK_FROM``): retrying a live claim could send the same recipient twice.
CANCEL_FROM = frozenset({OUTGOING, EXCEPTION, SENDING})
RETRY_STUCK_FROM = frozenset({SENDING})
SEND_NOW_FROM = frozenset({OUTGOING})


# A mail whose worker died this many times is claimed alone from then on (``claim_pick``).
ALONE_AFTER_DEATHS = 2


def claim_pick(due: list[tuple[int, str, int]]) -> list[int]:
    """Which due mails ``(id, state, attempts)`` one claim takes (all but the isolated ones).

    A mail still ``sending`` when due was left by a worker that died holding it, and taking it
    over counts as an attempt. One that has been through that ``ALONE_AFTER_DEATHS`` times may
    be what kills the worker (a mail too big to build, say): it is claimed alone, so it takes
    no other mail down with it again, and after ``max_attempts`` it is failed rather than
    claimed (``outbox.services.mails_fail_abandoned``). A single crash keeps batches whole.
    """
    suspects = [pk for pk, state, tries in due if state == SENDING and tries >= ALONE_AFTER_DEATHS]
    if suspects:
        return suspects[:1]
    return [pk for pk, _, _ in due]


class TransitionError(ValueError):
    """A state change the machine does not allow."""


def can_transition(source: str, target: str) -> bool:
    return target in TRANSITIONS.get(source, frozenset())


def check_transition(source: str, target: str) -> None:
    if not can_transition(source, target):
        raise TransitionError(f"An outgoing mail cannot go from '{source}' to '{target}'.")


def sources_for(target: str) -> frozenset[str]:
    """Every state a mail may be in for a guarded update to ``target`` (the CAS filter)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


# --- Recipient outcomes ---------------------------------------------------------------------------

DELIVERED = "delivered"
PERMANENT = "permanent"
TRANSIENT = "transient"


def classify_reply(code: int | None) -> str:
    """What an SMTP reply code means for a recipient (RFC 5321 §4.2.1).

    2xx: accepted. 5xx: permanent, fail at once. 4xx, or no code at all (refused connection,
    timeout, disconnect): transient, try again later.
    """
    if code is not None and 200 <= code < 300:
        return DELIVERED
    if code is not None and 500 <= code < 600:
        return PERMANENT
    return TRANSIENT


@dataclass(frozen=True)
class RetryPolicy:
    delays: tuple[int, ...]  # seconds; the last one repeats
    max_attempts: int
    max_age: dt.timedelta


def next_retry_at(
    *, policy: RetryPolicy, attempts: int, created_at: dt.datetime, now: dt.datetime
) -> dt.datetime | None:
    """When to try a deferred mail again after its ``attempts``-th attempt, or None to give up.

    RFC 5321 §4.5.4.1: keep retrying at growing intervals, give up after some days.
    """
    if attempts >= policy.max_attempts or now - created_at >= policy.max_age:
        return None
    delays = policy.delays or (60,)
    delay = delays[min(max(attempts, 1), len(delays)) - 1]
    at = now + dt.timedelta(seconds=delay)
    if at - created_at > policy.max_age:
        # One last try right at the give-up age, rather than none at all.
        at = created_at + policy.max_age
    return at
