"""Reads of the outbox for views, the admin and commands (writes live in ``outbox.services``)."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from .models import MailAttempt, MailServer, MailState, OutgoingMail


def mail_server_get(*, name_or_id: str) -> MailServer | None:
    """A mail server by its id or its exact name."""
    lookup = {"pk": int(name_or_id)} if name_or_id.isdigit() else {"name": name_or_id}
    return MailServer.objects.filter(**lookup).first()


def mails_due_count(*, now: dt.datetime | None = None) -> int:
    """Mail the queue manager would claim now (due outgoing, or claims whose lease ran out)."""
    now = now or timezone.now()
    return OutgoingMail.objects.filter(
        Q(state=MailState.OUTGOING, next_attempt_at__isnull=True)
        | Q(state=MailState.OUTGOING, next_attempt_at__lte=now)
        | Q(state=MailState.SENDING, lease_expires_at__lt=now)
    ).count()


def mail_last_errors(*, mail_ids: Sequence[int]) -> dict[int, str]:
    """The latest refusal or deferral each mail got from a server, in its words (one query).

    A deferred mail keeps no failure reason on its row (it is not failed); the ``451`` is in its
    attempt history, which is what the queue's "Last error" and Send Now's report quote.
    """
    last: dict[int, str] = {}
    rows = (
        MailAttempt.objects.filter(mail_id__in=list(mail_ids))
        .filter(Q(code__gte=400) | Q(code__isnull=True))
        .order_by("mail_id", "-at", "-id")
        .values_list("mail_id", "code", "error_class", "text", "recipient")
    )
    for mail_id, code, error_class, text, recipient in rows:
        if mail_id not in last:
            to = f" ({recipient})" if recipient else ""
            last[mail_id] = f"{code or error_class} {text}".strip() + to
    return last


@dataclass(frozen=True)
class MailOutcome:
    pk: int
    subject: str
    outcome: str  # sent, deferred, failed, sending, queued, cancelled
    words: str = ""

    @property
    def sentence(self) -> str:
        name = f"Mail {self.pk} “{self.subject or '(no subject)'}”"
        said = f": {self.words}" if self.words else ""
        return {
            "sent": f"{name}: sent.",
            "deferred": f"{name}: deferred again by the server{said}",
            "failed": f"{name}: failed{said}",
            "sending": f"{name}: being sent by the queue manager right now.",
            "queued": f"{name}: queued, not sent yet (the queue manager sends it next).",
            "cancelled": f"{name}: cancelled.",
        }[self.outcome]


def mails_outcome(*, subjects: dict[int, str]) -> list[MailOutcome]:
    """What happened to these mails (``{id: subject}``, read before sending: a delivered
    notification mail may be deleted right away), for Send Now's per-mail report."""
    rows = {
        pk: (state, attempts, next_at, reason)
        for pk, state, attempts, next_at, reason in OutgoingMail.objects.filter(
            pk__in=list(subjects)
        ).values_list("pk", "state", "attempts", "next_attempt_at", "failure_reason")
    }
    errors = mail_last_errors(mail_ids=list(rows))
    outcomes = []
    for pk, subject in subjects.items():
        if pk not in rows:
            outcomes.append(MailOutcome(pk, subject, "sent"))
            continue
        state, attempts, next_at, reason = rows[pk]
        if state == MailState.SENT:
            outcomes.append(MailOutcome(pk, subject, "sent"))
        elif state == MailState.EXCEPTION:
            lines = [line for line in reason.splitlines() if line.strip()]
            outcomes.append(MailOutcome(pk, subject, "failed", " ".join(lines[1:]) or reason))
        elif state == MailState.OUTGOING and attempts and next_at is not None:
            when = timezone.localtime(next_at).strftime("%Y-%m-%d %H:%M")
            words = f"{errors.get(pk, 'no reply')}; next attempt {when}."
            outcomes.append(MailOutcome(pk, subject, "deferred", words))
        elif state == MailState.SENDING:
            outcomes.append(MailOutcome(pk, subject, "sending"))
        elif state == MailState.CANCEL:
            outcomes.append(MailOutcome(pk, subject, "cancelled"))
        else:
            outcomes.append(MailOutcome(pk, subject, "queued"))
    return outcomes
