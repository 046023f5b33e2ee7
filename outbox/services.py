"""Writes of the outbox: creating mail, claiming it, sending it, recording outcomes, user actions.

Every state change is a guarded compare-and-swap update (allowed moves in ``outbox.states``):
a claim moves ``outgoing`` to ``sending`` under a lease held by one worker (``claimed_by``), and
only that holder may write the result. Each recipient's outcome is written the moment the relay
answers, so a worker killed mid-batch re-sends at most the recipient it was handing over.
"""

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, PositiveIntegerField, Q, When
from django.utils import timezone

from chatter.rendering import notification_reply_to
from mailhub.logfiles import log_event

from . import mime, states
from .journal import (
    OutcomeWriter,
    attempts_insert,
    journal_dir,  # noqa: F401 - part of the outbox's interface (tests, operations)
    journals_replay,
    recipients_write,
)
from .models import (
    MailRecipient,
    MailServer,
    MailState,
    OutgoingMail,
    QueueLock,
    RecipientStatus,
)
from .quota import quota_reason, quota_release, quota_reserve, tomorrow
from .relay import (
    RelayConnectionError,
    RelaySession,
    Reply,
    ServerConfig,
    Transaction,
    server_choose,
)
from .relay import server_config as _server_config
from .signals import recipients_updated
from .verp import VerpRef, bounce_address

logger = logging.getLogger("mailhub.outbox")

QUEUE_LOCK = "email-queue-manager"
# Quota is reserved ahead in small blocks: few extra queries, and a killed worker strands at
# most one block (counted as used, so the limit still holds). Without a limit the count is only
# a figure for the dashboard: a batch's worth at a time.
QUOTA_BLOCK = 50
QUOTA_BLOCK_UNLIMITED = 1000


# --- Waking the queue -----------------------------------------------------------------------------


def queue_wake(*, at: dt.datetime | None = None) -> None:
    """After commit, make the Email Queue Manager run at ``at`` (now when None)."""

    def enqueue() -> None:
        from .tasks import queue_run

        if at is not None and at > timezone.now():
            queue_run.apply_async(eta=at)
        else:
            queue_run.delay()

    transaction.on_commit(enqueue)


def _dispatch_urgent(mail_ids: list[int]) -> None:
    from .tasks import mail_send_urgent

    mail_send_urgent.delay(mail_ids)


# --- Creating mail --------------------------------------------------------------------------------


def _notification_mail(
    *, message, notifications: Sequence, message_id: str, content: dict, automatic: bool = False
):
    """One urgent mail carrying ``notifications`` (one envelope recipient each).

    Deleted once sent when it carries the message's own Message-ID. One with an id of its own
    (the message came from outside, or this is a resend) stays until the vacuum: a reply that
    names only it in In-Reply-To finds its record through this row.
    """
    mail = OutgoingMail.objects.create(
        system=automatic,
        message_id=message_id,
        from_addr=content["from_addr"],
        reply_to=content["reply_to"],
        subject=content["subject"],
        body_html=content["body_html"],
        body_text=content["body_text"],
        references=content["references"],
        in_reply_to=content["in_reply_to"],
        urgent=True,
        auto_delete=message_id == message.message_id,
        chatter_message=message,
    )
    MailRecipient.objects.bulk_create(
        [MailRecipient(mail=mail, address=n.contact.email, notification=n) for n in notifications]
    )
    return mail


def mail_create_for_notifications(
    *, message, notifications: Sequence, automatic: bool = False
) -> list[OutgoingMail]:
    """One urgent, auto-deleted mail per post carrying every email notification, sent after commit.

    The content is stored once; each notification gets a thin ``MailRecipient`` row that carries
    its own outcome, and still its own SMTP transaction (its own VERP envelope sender) when sent.
    Queries do not grow with the number of notifications: one insert for the mail, the recipient
    rows in bulk, and one UPDATE pointing the notifications at the mail (no per-row CASE).
    ``automatic``: the message is automatic mail; ours about it carries Auto-Submitted.
    """
    from chatter.rendering import notification_mail_content

    if not notifications:
        return []
    content = notification_mail_content(message=message)
    mail = _notification_mail(
        message=message,
        notifications=notifications,
        message_id=content["message_id"],
        content=content,
        automatic=automatic,
    )
    type(notifications[0]).objects.filter(
        message=message, pk__in=[n.pk for n in notifications]
    ).update(mail=mail)
    for notification in notifications:
        notification.mail = mail
    transaction.on_commit(lambda: _dispatch_urgent([mail.pk]))
    return [mail]


def notifications_resend(*, notifications: Sequence) -> list[OutgoingMail]:
    """The red envelope's "Send & close": send these email notifications again, now.

    They go back to ``ready`` (failure cleared) and ride a new urgent mail per message with a
    fresh Message-ID (the failed mail keeps its own), threaded under the message, sent after
    commit.
    """
    from chatter.models import NotificationKind, NotificationStatus, new_message_id
    from chatter.rendering import notification_mail_content

    if not notifications:
        return []
    model = type(notifications[0])
    chosen = list(
        model.objects.filter(
            pk__in=[n.pk for n in notifications], kind=NotificationKind.EMAIL
        ).select_related("contact", "message")
    )
    if not chosen:
        return []
    type(chosen[0]).objects.filter(pk__in=[n.pk for n in chosen]).update(
        status=NotificationStatus.READY, failure_type="", failure_reason=""
    )
    # The old failed copies stop here, so a later Retry on them cannot send a second one.
    MailRecipient.objects.filter(notification__in=[n.pk for n in chosen]).exclude(
        status__in=[RecipientStatus.SENT, RecipientStatus.BOUNCED]
    ).update(status=RecipientStatus.CANCELED)
    by_message: dict[int, list] = defaultdict(list)
    for notification in chosen:
        by_message[notification.message_id].append(notification)
    mails = []
    for group in by_message.values():
        message = group[0].message
        content = notification_mail_content(message=message)
        # Thread the new copy under the message itself, as a reply to it would be.
        content["references"] = " ".join(
            filter(None, [message.references, message.message_id])
        ).strip()
        content["in_reply_to"] = message.message_id
        mail = _notification_mail(
            message=message, notifications=group, message_id=new_message_id(), content=content
        )
        type(group[0]).objects.filter(pk__in=[n.pk for n in group]).update(mail=mail)
        for notification in group:
            notification.status = NotificationStatus.READY
            notification.failure_type = notification.failure_reason = ""
            notification.mail = mail
        mails.append(mail)
    ids = [m.pk for m in mails]
    transaction.on_commit(lambda: _dispatch_urgent(ids))
    return mails


@dataclass(frozen=True)
class MailDraft:
    """One mail to one recipient, as another app (campaigns, scheduled mail) hands it over."""

    to: str
    subject: str
    body_html: str
    body_text: str = ""
    from_addr: str = ""
    reply_to: str = ""
    # Extra headers, e.g. List-Unsubscribe; Message-ID and Return-Path are the outbox's own.
    headers: dict[str, str] = field(default_factory=dict)


def mails_enqueue(
    *,
    drafts: Sequence[MailDraft],
    scheduled_at: dt.datetime | None = None,
    urgent: bool = False,
    system: bool = False,
) -> list[OutgoingMail]:
    """Queue one mail per draft in bulk (two inserts whatever the number).

    Non-urgent mail waits for the Email Queue Manager (or its early run at ``scheduled_at``);
    urgent mail is dispatched right after the transaction commits.
    """
    from chatter.models import new_message_id

    mails = [
        OutgoingMail(
            message_id=new_message_id(),
            from_addr=draft.from_addr or settings.MAILHUB_DEFAULT_FROM,
            reply_to=draft.reply_to,
            subject=draft.subject,
            body_html=draft.body_html,
            body_text=draft.body_text,
            headers=dict(draft.headers),
            urgent=urgent,
            system=system,
            scheduled_at=scheduled_at,
            next_attempt_at=scheduled_at,
        )
        for draft in drafts
    ]
    if not mails:
        return []
    OutgoingMail.objects.bulk_create(mails, batch_size=1000)
    MailRecipient.objects.bulk_create(
        [MailRecipient(mail=mail, address=d.to) for mail, d in zip(mails, drafts, strict=True)],
        batch_size=1000,
    )
    if urgent:
        ids = [m.pk for m in mails]
        transaction.on_commit(lambda: _dispatch_urgent(ids))
    elif scheduled_at is not None and scheduled_at > timezone.now():
        # An early run at the scheduled time instead of waiting for the next periodic one.
        queue_wake(at=scheduled_at)
    return mails


# --- User actions (admin and UI) ------------------------------------------------------------------


def _notifications_model():
    from chatter.models import Notification

    return Notification


@transaction.atomic
def mails_cancel(*, mail_ids: Sequence[int]) -> int:
    """Cancel Email: outgoing or failed mails stop; their undelivered recipients are cancelled."""
    from chatter.models import NotificationStatus

    ids = list(
        OutgoingMail.objects.filter(pk__in=mail_ids, state__in=states.CANCEL_FROM).values_list(
            "pk", flat=True
        )
    )
    # A mail in ``sending`` is taken from its worker here (claimed_by cleared): that worker's
    # guarded writes then match nothing, so the cancel stands.
    changed = OutgoingMail.objects.filter(pk__in=ids, state__in=states.CANCEL_FROM).update(
        state=MailState.CANCEL, next_attempt_at=None, lease_expires_at=None, claimed_by=""
    )
    undelivered = MailRecipient.objects.filter(mail_id__in=ids).exclude(
        status__in=[RecipientStatus.SENT, RecipientStatus.BOUNCED]
    )
    recipient_ids = list(undelivered.values_list("pk", flat=True))
    notification_ids = [n for n in undelivered.values_list("notification_id", flat=True) if n]
    MailRecipient.objects.filter(pk__in=recipient_ids).update(status=RecipientStatus.CANCELED)
    _notifications_model().objects.filter(
        pk__in=notification_ids,
        status__in=[NotificationStatus.READY, NotificationStatus.EXCEPTION],
    ).update(status=NotificationStatus.CANCELED)
    if recipient_ids:
        _signal_recipients(recipient_ids)
    return changed


def _retry_recipients(mail_ids: Sequence[int]):
    """The recipients Retry sends again: undelivered ones, minus what the user decided.

    A recipient the Sending Failures dialog ignored or switched off keeps the relay's failure
    on its row while its notification is cancelled (Cancel Email cancels both); one whose
    notification now rides a newer copy had its address corrected there. Neither is resent.
    """
    from chatter.models import NotificationStatus

    return (
        MailRecipient.objects.filter(mail_id__in=mail_ids)
        .exclude(status__in=[RecipientStatus.SENT, RecipientStatus.BOUNCED])
        .exclude(
            Q(notification__status=NotificationStatus.CANCELED)
            & ~Q(status=RecipientStatus.CANCELED)
        )
        .exclude(Q(notification__isnull=False) & ~Q(notification__mail_id=F("mail_id")))
    )


@transaction.atomic
def mails_retry(*, mail_ids: Sequence[int]) -> int:
    """Retry: failed, cancelled or stuck mails go back to the queue; undelivered recipients resend.

    Stuck: ``sending`` past its lease (its worker died or hangs).
    The Message-ID stays the same; the queue manager is woken so they leave now. A mail with
    nobody left to send to (every failure ignored or corrected) is left as it is.
    """
    from chatter.models import NotificationStatus

    retryable = Q(state__in=states.RETRY_FROM) | (
        Q(state__in=states.RETRY_STUCK_FROM) & _abandoned(timezone.now())
    )
    candidates = OutgoingMail.objects.filter(retryable, pk__in=mail_ids)
    rows = list(
        _retry_recipients(list(candidates.values_list("pk", flat=True))).values_list(
            "pk", "mail_id", "notification_id"
        )
    )
    ids = sorted({mail_id for _, mail_id, _ in rows})
    changed = OutgoingMail.objects.filter(retryable, pk__in=ids).update(
        state=MailState.OUTGOING,
        attempts=0,
        next_attempt_at=None,
        lease_expires_at=None,
        claimed_by="",
        failure_type="",
        failure_reason="",
    )
    recipient_ids = [pk for pk, _, _ in rows]
    notification_ids = [n for _, _, n in rows if n]
    MailRecipient.objects.filter(pk__in=recipient_ids).update(
        status=RecipientStatus.PENDING, code=None, response=""
    )
    _notifications_model().objects.filter(
        pk__in=notification_ids,
        status__in=[NotificationStatus.EXCEPTION, NotificationStatus.CANCELED],
    ).update(status=NotificationStatus.READY, failure_type="", failure_reason="")
    if recipient_ids:
        _signal_recipients(recipient_ids)
    if changed:
        queue_wake()
    return changed


def mails_close_ignored(*, notification_ids: Sequence[int]) -> int:
    """Failed mails whose every undelivered recipient was just ignored leave "Delivery Failed".

    They become cancelled (attempts and failure reason kept), so ignored failures drop out of
    the queue's failure filter and the dashboard's counts. Returns how many mails closed.
    """
    from chatter.models import NotificationStatus

    mail_ids = set(
        MailRecipient.objects.filter(
            notification_id__in=list(notification_ids), mail__state=MailState.EXCEPTION
        ).values_list("mail_id", flat=True)
    )
    if not mail_ids:
        return 0
    open_ids = set(
        MailRecipient.objects.filter(mail_id__in=mail_ids)
        .exclude(
            status__in=[RecipientStatus.SENT, RecipientStatus.BOUNCED, RecipientStatus.CANCELED]
        )
        .exclude(notification__status=NotificationStatus.CANCELED)
        .values_list("mail_id", flat=True)
    )
    return OutgoingMail.objects.filter(
        pk__in=mail_ids - open_ids, state=MailState.EXCEPTION
    ).update(state=MailState.CANCEL, next_attempt_at=None)


@transaction.atomic
def mails_send_now(*, mail_ids: Sequence[int], dispatch: bool = True) -> int:
    """Send Now: outgoing mails become due at once and leave right after commit (``dispatch``;
    without it the caller sends them itself, as the admin does to report each outcome)."""
    ids = list(
        OutgoingMail.objects.filter(pk__in=mail_ids, state__in=states.SEND_NOW_FROM).values_list(
            "pk", flat=True
        )
    )
    changed = OutgoingMail.objects.filter(pk__in=ids, state__in=states.SEND_NOW_FROM).update(
        next_attempt_at=None
    )
    if ids and dispatch:
        transaction.on_commit(lambda: _dispatch_urgent(ids))
    return changed


def _signal_recipients(recipient_ids: list[int]) -> None:
    ids = list(recipient_ids)
    transaction.on_commit(lambda: recipients_updated.send(sender=MailRecipient, recipient_ids=ids))


# --- Claiming -------------------------------------------------------------------------------------


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _due(now: dt.datetime) -> Q:
    ready = Q(state=MailState.OUTGOING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    # An abandoned mail that used up its attempts is failed, not claimed (mails_fail_abandoned).
    stuck = Q(state=MailState.SENDING, attempts__lt=settings.MAILHUB_RETRY_MAX_ATTEMPTS)
    return ready | (stuck & _abandoned(now))


def _abandoned(now: dt.datetime) -> Q:
    # A claim whose lease ran out belongs to a worker that died: it is claimable again. One
    # without a lease (written by hand, or by an older version) is abandoned too.
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)


def mails_claim(*, limit: int, holder: str, mail_ids: Sequence[int] | None = None) -> list[int]:
    """Claim up to ``limit`` due mails for ``holder`` under a lease; returns their ids.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers take disjoint rows
    without waiting. SQLite has one writer at a time, so a single conditional UPDATE is atomic.
    """
    now = timezone.now()
    lease = now + dt.timedelta(seconds=settings.MAILHUB_CLAIM_LEASE_SECONDS)
    due = OutgoingMail.objects.filter(_due(now))
    if mail_ids is not None:
        due = due.filter(pk__in=list(mail_ids))
    due = due.order_by("id")
    claim = {
        "state": MailState.SENDING,
        "lease_expires_at": lease,
        "claimed_by": holder,
        # Taking over a dead worker's claim counts as an attempt (states.claim_pick).
        "attempts": Case(
            When(state=MailState.SENDING, then=F("attempts") + 1),
            default=F("attempts"),
            output_field=PositiveIntegerField(),
        ),
    }
    fields = ("pk", "state", "attempts")
    if connection.vendor == "postgresql":
        with transaction.atomic():
            rows = due.select_for_update(skip_locked=True, of=("self",)).values_list(*fields)
            ids = states.claim_pick(list(rows[:limit]))
            if ids:
                OutgoingMail.objects.filter(pk__any_of=ids).update(**claim)
        return ids
    picked = states.claim_pick(list(due.values_list(*fields)[:limit]))
    if not picked:
        return []
    # The due condition is repeated in the UPDATE: a row another process took in between fails it.
    OutgoingMail.objects.filter(_due(now), pk__any_of=picked).update(**claim)
    return list(
        OutgoingMail.objects.filter(
            pk__any_of=picked, claimed_by=holder, state=MailState.SENDING
        ).values_list("pk", flat=True)
    )


def _lease_renew(*, mail_ids: list[int], holder: str) -> set[int]:
    lease = timezone.now() + dt.timedelta(seconds=settings.MAILHUB_CLAIM_LEASE_SECONDS)
    OutgoingMail.objects.filter(
        pk__any_of=mail_ids, claimed_by=holder, state=MailState.SENDING
    ).update(lease_expires_at=lease)
    return set(
        OutgoingMail.objects.filter(
            pk__any_of=mail_ids, claimed_by=holder, state=MailState.SENDING
        ).values_list("pk", flat=True)
    )


# --- Building the message -------------------------------------------------------------------------


def _mail_bytes(*, mail: OutgoingMail, from_header: str, attachments: Sequence) -> bytes:
    return mime.build(
        message_id=mail.message_id,
        from_header=from_header,
        subject=mail.subject,
        body_text=mail.body_text,
        body_html=mail.body_html,
        # A chatter notification's copies each carry their own Reply-To (``copy_reply_to``).
        reply_to="" if mail.chatter_message_id else mail.reply_to,
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        system=mail.system,
        extra=mail.headers,
        attachments=attachments,
    )


# A delivery report (``outbox.reports``) is queued written whole and leaves with MAIL FROM:<>.
REPORT_SENDER_LOCAL = "mailer-daemon"


def is_report(from_addr: str) -> bool:
    return from_addr.lower().startswith(REPORT_SENDER_LOCAL + "@")


def _envelope_sender(recipient: "_Recipient") -> str:
    """The VERP bounce address naming exactly this recipient (notification ``n`` or ``r``)."""
    ref = (
        VerpRef("n", recipient.notification_id)
        if recipient.notification_id
        else VerpRef("r", recipient.pk)
    )
    return bounce_address(ref=ref)


def build_failure_text(exc: Exception) -> str:
    """What went wrong writing a mail, in words a user can act on."""
    if isinstance(exc, mime.BuildError):
        return str(exc)
    if isinstance(exc, UnicodeEncodeError):
        return (
            "a header holds characters that cannot be sent without SMTPUTF8 "
            f"({type(exc).__name__}: {exc})"
        )
    return f"{type(exc).__name__}: {exc}"


def copy_reply_to(mail, recipient) -> str:
    """A notification's signed reply address naming its thread and recipient, else the mail's."""
    if mail.chatter_message_id and recipient.notification_id:
        return notification_reply_to(
            message_id=mail.chatter_message_id, notification_id=recipient.notification_id
        )
    return mail.reply_to


def failure_reason(*, server: str, reply: Reply) -> str:
    """The reason a notification shows, in Odoo's form plus the server's words (§9.4)."""
    code = reply.code if reply.code is not None else "no reply"
    return (
        f"Mail delivery failed via SMTP server '{server}'.\n"
        f"{reply.error_class}: {code}\n{reply.text}"
    )


# --- Sending --------------------------------------------------------------------------------------


def _retry_policy() -> states.RetryPolicy:
    return states.RetryPolicy(
        delays=tuple(settings.MAILHUB_RETRY_DELAYS),
        max_attempts=settings.MAILHUB_RETRY_MAX_ATTEMPTS,
        max_age=dt.timedelta(hours=settings.MAILHUB_RETRY_MAX_AGE_HOURS),
    )


# What sending reads of a mail and of a recipient (the MIME of an earlier failure is not read).
_MAIL_FIELDS = (
    "pk",
    "message_id",
    "from_addr",
    "reply_to",
    "subject",
    "body_html",
    "body_text",
    "headers",
    "references",
    "in_reply_to",
    "system",
    "auto_delete",
    "attempts",
    "created_at",
    "server_id",
    "chatter_message_id",
)
# A named row of _MAIL_FIELDS (``values_list(named=True)``).
_MailRow = Any
_RECIPIENT_FIELDS = ("pk", "mail_id", "address", "notification_id", "status", "code", "response")


@dataclass(slots=True)
class _Recipient:
    """A ``MailRecipient`` row as a batch reads and updates it."""

    pk: int
    mail_id: int
    address: str
    notification_id: int | None
    status: str
    code: int | None
    response: str


@dataclass
class _Outcome:
    recipient: _Recipient
    status: str
    reply: Reply
    server: str
    failure_type: str = ""
    reason: str = ""  # the user's words when the relay was never asked (a mail not built)


@dataclass
class SendReport:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    deferred: int = 0
    delivered_recipients: int = 0
    out_of_time: bool = False


class _Batch:
    """One claimed batch: sends over one session per server, writes outcomes, finalizes mails."""

    def finalize_recorded(self) -> SendReport:
        """Finalize after the background writes (same thread, queued before this)."""
        if any(f.exception() is not None for f in self.writer.futures):
            # A background write failed: write every answer again before deciding states.
            rows = [
                (o.status, o.reply.code, o.reply.text[:2000], o.recipient.pk)
                for outs in self.outcomes.values()
                for o in outs
                if o.status != RecipientStatus.PENDING
            ]
            recipients_write(rows)
        return self._finalize()

    def __init__(self, *, mail_ids: list[int], holder: str, deadline: float | None) -> None:
        # Outcomes a killed worker journaled but never wrote: written before anything is sent.
        journals_replay()
        self.ids = list(mail_ids)
        self.holder = holder
        self.deadline = deadline
        # Plain rows, not model instances: building a thousand instances per batch cost more
        # interpreter time than the batch's SMTP conversation (docs/performance.md).
        self.mails = list(
            OutgoingMail.objects.filter(
                pk__any_of=mail_ids, claimed_by=holder, state=MailState.SENDING
            )
            .order_by("id")
            .values_list(*_MAIL_FIELDS, named=True)
        )
        self.recipients: dict[int, list[_Recipient]] = defaultdict(list)
        rows = MailRecipient.objects.filter(mail_id__any_of=mail_ids).order_by("id")
        for row in rows.values_list(*_RECIPIENT_FIELDS):
            r = _Recipient(*row)
            self.recipients[r.mail_id].append(r)
        self.outcomes: dict[int, list[_Outcome]] = defaultdict(list)
        # (mail_id, at, server, recipient, code, error_class, text): plain tuples, inserted with
        # one executemany; a model instance per attempt costs more than the SMTP round trip.
        self.attempts: list[tuple] = []
        self.lost: set[int] = set()
        self.quota_day = timezone.now().astimezone(dt.UTC).date()
        self.quota_left = 0
        self.quota_exhausted = False
        self.renew_at = time.monotonic() + settings.MAILHUB_CLAIM_LEASE_SECONDS / 3
        self.mime: dict[int, bytes] = {}

    # Writing one recipient's result at once keeps a crash from re-sending delivered mail.
    def _record(self, mail: _MailRow, outcome: _Outcome) -> None:
        r = outcome.recipient
        r.status, r.code, r.response = outcome.status, outcome.reply.code, outcome.reply.text
        self.writer.put((r.status, r.code, r.response[:2000], r.pk))
        self.outcomes[mail.pk].append(outcome)
        self.attempts.append(
            (
                mail.pk,
                timezone.now(),
                outcome.server,
                r.address,
                outcome.reply.code,
                outcome.reply.error_class,
                outcome.reply.text[:2000],
            )
        )
        if outcome.status == RecipientStatus.SENT:
            if logger.isEnabledFor(logging.INFO):  # formatting is the cost, skip it when muted
                log_event(
                    logger,
                    "mail.sent",
                    message_id=mail.message_id,
                    rcpt=r.address,
                    server=outcome.server,
                    code=outcome.reply.code,
                )
        else:
            log_event(
                logger,
                "mail.failed" if outcome.status == RecipientStatus.FAILED else "mail.deferred",
                level=logging.WARNING,
                message_id=mail.message_id,
                rcpt=r.address,
                server=outcome.server,
                code=outcome.reply.code,
                reason=outcome.reply.text[:200],
            )

    def _quota_take(self) -> bool:
        if self.quota_left <= 0 and not self.quota_exhausted:
            block = QUOTA_BLOCK if settings.MAILHUB_DAILY_QUOTA > 0 else QUOTA_BLOCK_UNLIMITED
            self.quota_left = quota_reserve(wanted=block, day=self.quota_day)
            self.quota_exhausted = self.quota_left == 0
        if self.quota_left > 0:
            self.quota_left -= 1
            return True
        return False

    def _keep_lease(self) -> None:
        if time.monotonic() < self.renew_at:
            return
        ids = [m.pk for m in self.mails]
        held = _lease_renew(mail_ids=ids, holder=self.holder)
        self.lost |= set(ids) - held
        self.renew_at = time.monotonic() + settings.MAILHUB_CLAIM_LEASE_SECONDS / 3

    def send(self, background=None) -> None:
        """Send every undecided recipient; outcomes are journaled and written (maybe later)."""
        active = {s.pk: _server_config(s) for s in MailServer.objects.filter(active=True)}
        servers = list(active.values())
        groups: dict[ServerConfig, list[tuple[_MailRow, str]]] = defaultdict(list)
        chosen: dict[str, tuple[ServerConfig, str]] = {}  # a batch has few distinct senders
        for mail in self.mails:
            if mail.server_id in active:
                config, from_header = active[mail.server_id], mail.from_addr
            else:
                if mail.from_addr not in chosen:
                    chosen[mail.from_addr] = server_choose(
                        from_addr=mail.from_addr, servers=servers
                    )
                config, from_header = chosen[mail.from_addr]
            groups[config].append((mail, from_header))
        self.writer = OutcomeWriter(self.holder, background=background)
        try:
            for config, mails in groups.items():
                self._send_group(config, mails)
        finally:
            self.writer.close()
            quota_release(count=self.quota_left, day=self.quota_day)
            self.quota_left = 0

    def run(self) -> SendReport:
        self.send()
        return self._finalize()

    def _send_group(self, config: ServerConfig, mails: list[tuple[_MailRow, str]]) -> None:
        session = RelaySession(config)
        self.down: RelayConnectionError | None = None
        try:
            for txn in self._transactions(config, mails):
                self._settle(config, session, session.submit(txn))
            self._settle(config, session, session.flush())
        finally:
            session.close()

    def _transactions(self, config: ServerConfig, mails: list[tuple[_MailRow, str]]):
        """Each recipient still to send, as a transaction, once its checks pass.

        A generator: the checks of a recipient (time budget, lease, relay down, quota) run
        after the outcomes known so far are recorded.
        """
        for mail, from_header in mails:
            todo = [
                r
                for r in self.recipients[mail.pk]
                if r.status in (RecipientStatus.PENDING, RecipientStatus.DEFERRED)
            ]
            if not todo:
                continue
            try:
                common = self._built(mail, from_header)
            except Exception as exc:  # noqa: BLE001 - one mail that cannot be built fails alone
                self._unbuildable(mail, todo, exc, config)
                continue
            self.mime[mail.pk] = common
            for recipient in todo:
                if mail.pk in self.lost or (
                    self.deadline is not None and time.monotonic() > self.deadline
                ):
                    break
                self._keep_lease()
                if self.down is not None:
                    reply = _down_reply(self.down)
                    outcome = _Outcome(recipient, RecipientStatus.DEFERRED, reply, config.label)
                    self._record(mail, outcome)
                    continue
                if not self._quota_take():
                    self._quota_refuse(mail, recipient, config)
                    continue
                sender = "" if is_report(mail.from_addr) else _envelope_sender(recipient)
                try:
                    address = mime.envelope_address(recipient.address)
                    data = mime.with_envelope(
                        common,
                        sender=sender,
                        recipient=address,
                        reply_to=copy_reply_to(mail, recipient) if mail.chatter_message_id else "",
                    )
                except mime.BuildError as exc:
                    self.quota_left += 1  # it does not leave: the slot goes back
                    self._unbuildable(mail, [recipient], exc, config)
                    continue
                yield Transaction(
                    sender=sender, recipient=address, data=data, token=(mail, recipient)
                )

    def _built(self, mail: _MailRow, from_header: str) -> bytes:
        """The shared bytes of ``mail``, its files read from storage (which may fail too)."""
        if is_report(mail.from_addr):
            stored = OutgoingMail.objects.filter(pk=mail.pk).values_list("mime", flat=True)
            return bytes(stored.first() or b"")
        attachments = []
        if mail.chatter_message_id:
            from chatter.models import Attachment

            attachments = list(Attachment.objects.filter(message_id=mail.chatter_message_id))
        return _mail_bytes(mail=mail, from_header=from_header, attachments=attachments)

    def _unbuildable(
        self, mail: _MailRow, recipients: list[_Recipient], exc: Exception, config: ServerConfig
    ) -> None:
        """Fail ``recipients`` of a mail that cannot be written, with the reason in words.

        The rest of the batch goes on: a mail a stranger's header broke (a non-ASCII
        Message-ID, an address that needs SMTPUTF8) must not hold back the queue behind it.
        """
        from chatter.models import FailureType

        if not isinstance(exc, mime.BuildError):
            logger.exception("mail %s could not be built", mail.pk)
        reason = f"The mail could not be built: {build_failure_text(exc)}"
        at_fault = getattr(exc, "header", "")
        ftype = FailureType.FROM_INVALID if at_fault == "From" else FailureType.UNKNOWN
        for recipient in recipients:
            outcome = _Outcome(
                recipient,
                RecipientStatus.FAILED,
                Reply(None, reason, type(exc).__name__),
                config.label,
                ftype,
                reason=reason,
            )
            self._record(mail, outcome)

    def _settle(self, config: ServerConfig, session: RelaySession, results: list) -> None:
        """Record the outcomes the relay gave; a transaction cut off is delivered once more."""
        for txn, reply in results:
            if isinstance(reply, RelayConnectionError):
                reply = self._redeliver(session, txn, reply)
            mail, recipient = txn.token
            self._record(mail, self._classify(recipient, reply, config))
            if not reply.accepted:
                self.quota_left += 1  # it did not leave: the slot goes back

    def _redeliver(self, session: RelaySession, txn, lost: RelayConnectionError) -> Reply:
        # One reconnect: a dropped idle session is common; a dead relay is not.
        if self.down is None:
            try:
                return session.deliver(sender=txn.sender, recipient=txn.recipient, data=txn.data)
            except RelayConnectionError as again:
                self.down = again
        return _down_reply(lost)

    def _classify(self, recipient: _Recipient, reply: Reply, config: ServerConfig) -> _Outcome:
        from chatter.models import FailureType

        kind = states.classify_reply(reply.code)
        if kind == states.DELIVERED:
            return _Outcome(recipient, RecipientStatus.SENT, reply, config.label)
        if kind == states.PERMANENT:
            return _Outcome(
                recipient, RecipientStatus.FAILED, reply, config.label, FailureType.SMTP_REFUSED
            )
        return _Outcome(recipient, RecipientStatus.DEFERRED, reply, config.label)

    def _quota_refuse(self, mail: _MailRow, recipient: _Recipient, config) -> None:
        from chatter.models import FailureType

        if settings.MAILHUB_QUOTA_POLICY == "defer":
            # Left pending: the mail waits for tomorrow's quota (see _finalize).
            self.outcomes[mail.pk].append(
                _Outcome(
                    recipient,
                    RecipientStatus.PENDING,
                    Reply(None, "quota"),
                    config.label,
                    "defer-quota",
                )
            )
            return
        reply = Reply(None, quota_reason(), "DailyLimitReached")
        outcome = _Outcome(
            recipient, RecipientStatus.FAILED, reply, config.label, FailureType.QUOTA
        )
        self._record(mail, outcome)

    def _give_up(self, deferred: list[_Recipient], outcomes: list[_Outcome]) -> None:
        from chatter.models import FailureType

        by_pk = {o.recipient.pk: o for o in outcomes if o.status == RecipientStatus.DEFERRED}
        for r in deferred:
            r.status = RecipientStatus.FAILED
            outcome = by_pk.get(r.pk)
            if outcome is None:
                reply = Reply(r.code, r.response, "SMTPRecipientsRefused")
                outcome = _Outcome(r, RecipientStatus.FAILED, reply, "relay")
                outcomes.append(outcome)
            outcome.status = RecipientStatus.FAILED
            outcome.failure_type = FailureType.SMTP
        MailRecipient.objects.filter(pk__any_of=[r.pk for r in deferred]).update(
            status=RecipientStatus.FAILED
        )

    def _finalize(self) -> SendReport:
        """Write each mail's new state, its notifications and attempts, in bulk."""
        from chatter.models import FailureType, NotificationStatus

        report = SendReport(claimed=len(self.mails))
        now = timezone.now()
        policy = _retry_policy()
        updates: dict[tuple, list[int]] = defaultdict(list)
        attempted: set[int] = set()
        delivered_notifications: list[int] = []
        failed_notifications: dict[tuple[str, str], list[int]] = defaultdict(list)
        changed_recipients: list[int] = []
        auto_delete: list[int] = []
        wake_at: dt.datetime | None = None
        for mail in self.mails:
            if mail.pk in self.lost:
                continue  # another worker holds it now (our lease ran out)
            recipients = self.recipients[mail.pk]
            outcomes = self.outcomes.get(mail.pk, [])
            if outcomes and any(
                o.reply.code is not None or o.status != "pending" for o in outcomes
            ):
                attempted.add(mail.pk)
            tried = {o.recipient.pk for o in outcomes}
            deferred = [r for r in recipients if r.status == RecipientStatus.DEFERRED]
            # Deferred earlier but not reached in this batch counts as not attempted yet.
            pending = [
                r
                for r in recipients
                if r.status == RecipientStatus.PENDING
                or (r.status == RecipientStatus.DEFERRED and r.pk not in tried)
            ]
            quota_wait = any(o.failure_type == "defer-quota" for o in outcomes)
            tries = mail.attempts + (1 if mail.pk in attempted else 0)
            if pending:
                # Not attempted (time budget, quota deferral): due again now, or tomorrow.
                at = tomorrow() if quota_wait else None
                updates[(MailState.OUTGOING, at, "", "")].append(mail.pk)
                if at is not None:
                    wake_at = at if wake_at is None else min(wake_at, at)
                report.deferred += 1
                continue_final = False
            elif deferred:
                retry_at = states.next_retry_at(
                    policy=policy, attempts=tries, created_at=mail.created_at, now=now
                )
                if retry_at is not None:
                    updates[(MailState.OUTGOING, retry_at, "", "")].append(mail.pk)
                    wake_at = retry_at if wake_at is None else min(wake_at, retry_at)
                    report.deferred += 1
                    continue_final = False
                else:
                    # Out of retries: what was transient is now final (RFC 5321 §4.5.4.1).
                    self._give_up(deferred, outcomes)
                    continue_final = True
            else:
                continue_final = True
            if continue_final:
                failures = [o for o in outcomes if o.status == RecipientStatus.FAILED]
                if any(r.status == RecipientStatus.FAILED for r in recipients):
                    first = failures[0] if failures else None
                    ftype = first.failure_type if first else FailureType.UNKNOWN
                    reason = (
                        first.reason
                        or (
                            failure_reason(server=first.server, reply=first.reply)
                            if ftype != FailureType.QUOTA
                            else first.reply.text
                        )
                        if first
                        else "A recipient was refused."
                    )
                    updates[(MailState.EXCEPTION, None, ftype, reason)].append(mail.pk)
                    report.failed += 1
                else:
                    updates[(MailState.SENT, None, "", "")].append(mail.pk)
                    report.delivered += 1
                    if mail.auto_delete:
                        auto_delete.append(mail.pk)
            for o in outcomes:
                if o.status == "pending":
                    continue
                changed_recipients.append(o.recipient.pk)
                nid = o.recipient.notification_id
                if not nid:
                    continue
                if o.status == RecipientStatus.SENT:
                    delivered_notifications.append(nid)
                elif o.status == RecipientStatus.FAILED:
                    reason = o.reason or (
                        o.reply.text
                        if o.failure_type == FailureType.QUOTA
                        else failure_reason(server=o.server, reply=o.reply)
                    )
                    failed_notifications[(o.failure_type or FailureType.UNKNOWN, reason)].append(
                        nid
                    )
        with transaction.atomic():
            for (state, next_at, ftype, reason), ids in updates.items():
                fields = {
                    "state": state,
                    "next_attempt_at": next_at,
                    "lease_expires_at": None,
                    "claimed_by": "",
                    "failure_type": ftype,
                    "failure_reason": reason,
                }
                if state == MailState.SENT:
                    fields["sent_at"] = now
                OutgoingMail.objects.filter(
                    pk__any_of=[i for i in ids if i not in attempted],
                    claimed_by=self.holder,
                    state=MailState.SENDING,
                ).update(**fields)
                if state == MailState.EXCEPTION:
                    # Keep the MIME as sent for the queue screen and the support bundle
                    # (only for failures: sent mail would cost a copy per mail).
                    for pk in ids:
                        if pk in self.mime:
                            OutgoingMail.objects.filter(pk=pk, claimed_by=self.holder).update(
                                mime=self.mime[pk]
                            )
                OutgoingMail.objects.filter(
                    pk__any_of=[i for i in ids if i in attempted],
                    claimed_by=self.holder,
                    state=MailState.SENDING,
                ).update(attempts=F("attempts") + 1, **fields)
            Notification = _notifications_model()
            if delivered_notifications:
                Notification.objects.filter(
                    pk__any_of=delivered_notifications, status=NotificationStatus.READY
                ).update(status=NotificationStatus.SENT, failure_type="", failure_reason="")
            for (ftype, reason), ids in failed_notifications.items():
                Notification.objects.filter(pk__any_of=ids, status=NotificationStatus.READY).update(
                    status=NotificationStatus.EXCEPTION, failure_type=ftype, failure_reason=reason
                )
            attempts_insert(self.attempts)
            if auto_delete:
                # The notifications keep the result; VERP names them, not the deleted mail.
                OutgoingMail.objects.filter(pk__any_of=auto_delete, state=MailState.SENT).delete()
        report.delivered_recipients = sum(
            1 for outs in self.outcomes.values() for o in outs if o.status == RecipientStatus.SENT
        )
        if changed_recipients:
            recipients_updated.send(sender=MailRecipient, recipient_ids=changed_recipients)
        if wake_at is not None:
            queue_wake(at=wake_at)
        return report


def _down_reply(exc: RelayConnectionError) -> Reply:
    return Reply(exc.code, exc.text, exc.error_class)


def mails_send(
    *,
    mail_ids: Sequence[int] | None = None,
    batch_size: int | None = None,
    time_budget: float | None = None,
) -> SendReport:
    """Claim due mail (only ``mail_ids`` when given) batch after batch and send it.

    Stops when nothing is due or the time budget is spent; returns the totals. In a worker on
    PostgreSQL the database work of the batches around the one on the wire (claiming and loading
    the next, writing outcomes and finalizing the previous) runs in a second thread with its own
    connection, so the SMTP session is rarely idle.
    """
    batch_size = batch_size or settings.MAILHUB_QUEUE_BATCH_SIZE
    deadline = time.monotonic() + time_budget if time_budget else None
    total = SendReport()
    overlap = connection.vendor == "postgresql" and not connection.in_atomic_block

    def claim_and_load() -> "_Batch | None":
        if deadline is not None and time.monotonic() >= deadline:
            return None
        holder = _holder()
        ids = mails_claim(limit=batch_size, holder=holder, mail_ids=mail_ids)
        return _Batch(mail_ids=ids, holder=holder, deadline=deadline) if ids else None

    def add(report: SendReport) -> None:
        total.claimed += report.claimed
        total.delivered += report.delivered
        total.failed += report.failed
        total.deferred += report.deferred

    if not overlap:
        while True:
            batch = claim_and_load()
            if batch is None:
                break
            add(batch.run())
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db") as background:
            finals = []
            upcoming = background.submit(claim_and_load)
            try:
                while True:
                    batch = upcoming.result()
                    if batch is None:
                        break
                    upcoming = background.submit(claim_and_load)
                    batch.send(background=background)
                    finals.append(background.submit(batch.finalize_recorded))
            finally:
                leftover = upcoming.result() if not upcoming.cancel() else None
                if leftover is not None:
                    background.submit(mails_release, mail_ids=leftover.ids, holder=leftover.holder)
                background.submit(_connection_close)
            for final in finals:
                add(final.result())
    total.out_of_time = deadline is not None and time.monotonic() >= deadline
    return total


def _connection_close() -> None:
    connection.close()


def mails_release(*, mail_ids: Sequence[int], holder: str) -> int:
    """Give back claimed mail that was not sent (the run stopped first)."""
    return OutgoingMail.objects.filter(
        pk__any_of=list(mail_ids), claimed_by=holder, state=MailState.SENDING
    ).update(state=MailState.OUTGOING, lease_expires_at=None, claimed_by="")


@transaction.atomic
def mails_fail_abandoned() -> int:
    """Fail the mails whose workers died holding them ``MAILHUB_RETRY_MAX_ATTEMPTS`` times.

    Such a mail most likely kills whoever sends it; claimed again it would only do it again.
    It goes to Delivery Failed with the reason, its notifications show the red envelope, and
    staff can still Retry it (after a fix) or Cancel it.
    """
    from chatter.models import FailureType, NotificationStatus

    tries = settings.MAILHUB_RETRY_MAX_ATTEMPTS
    worn = Q(state=MailState.SENDING, attempts__gte=tries) & _abandoned(timezone.now())
    ids = list(OutgoingMail.objects.filter(worn).values_list("pk", flat=True))
    if not ids:
        return 0
    reason = (
        f"The mail could not be sent: the worker sending it stopped {tries} times before "
        "the relay answered (the worker's log says why)."
    )
    changed = OutgoingMail.objects.filter(worn, pk__in=ids).update(
        state=MailState.EXCEPTION,
        failure_type=FailureType.UNKNOWN,
        failure_reason=reason,
        next_attempt_at=None,
        lease_expires_at=None,
        claimed_by="",
    )
    undelivered = MailRecipient.objects.filter(
        mail_id__in=ids, status__in=[RecipientStatus.PENDING, RecipientStatus.DEFERRED]
    )
    recipient_ids = list(undelivered.values_list("pk", flat=True))
    notification_ids = [n for n in undelivered.values_list("notification_id", flat=True) if n]
    MailRecipient.objects.filter(pk__in=recipient_ids).update(
        status=RecipientStatus.FAILED, response=reason
    )
    _notifications_model().objects.filter(
        pk__in=notification_ids, status=NotificationStatus.READY
    ).update(
        status=NotificationStatus.EXCEPTION, failure_type=FailureType.UNKNOWN, failure_reason=reason
    )
    if recipient_ids:
        _signal_recipients(recipient_ids)
    log_event(logger, "queue.abandoned_failed", level=logging.WARNING, count=changed)
    return changed


def queue_run(*, time_budget: float | None = None) -> SendReport | None:
    """One run of the Email Queue Manager; None when another run holds the lock.

    The lock is a lease row in the database, so a run that dies frees it when its lease ends.
    """
    budget = time_budget if time_budget is not None else settings.MAILHUB_QUEUE_TIME_BUDGET
    holder = _holder()
    now = timezone.now()
    QueueLock.objects.bulk_create([QueueLock(name=QUEUE_LOCK)], ignore_conflicts=True)
    expires = now + dt.timedelta(seconds=budget + settings.MAILHUB_CLAIM_LEASE_SECONDS)
    got = QueueLock.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lt=now), name=QUEUE_LOCK
    ).update(holder=holder, expires_at=expires)
    if not got:
        log_event(logger, "queue.skipped", reason="another run holds the lock")
        return None
    try:
        mails_fail_abandoned()
        helpers = _queue_helpers_dispatch(time_budget=budget)
        report = mails_send(time_budget=budget)
    finally:
        QueueLock.objects.filter(name=QUEUE_LOCK, holder=holder).update(holder="", expires_at=None)
    if helpers:
        log_event(logger, "queue.helpers", count=helpers)
    if report.out_of_time and OutgoingMail.objects.filter(_due(timezone.now())).exists():
        # The budget ran out with mail still due: continue in a fresh run rather than an hour on.
        queue_wake()
    log_event(
        logger,
        "queue.run",
        claimed=report.claimed,
        delivered=report.delivered,
        failed=report.failed,
        deferred=report.deferred,
    )
    return report


def _queue_helpers_dispatch(*, time_budget: float) -> int:
    """Let other workers share a big backlog: up to MAILHUB_QUEUE_PARALLEL - 1 helper tasks.

    Helpers claim with the same SKIP LOCKED claims, so the run and its helpers never take the
    same mail; they stop at the same time budget. Only when more than one batch is due.
    """
    wanted = settings.MAILHUB_QUEUE_PARALLEL - 1
    if wanted <= 0:
        return 0
    due = OutgoingMail.objects.filter(_due(timezone.now())).values_list("pk", flat=True)
    batches = len(due[: settings.MAILHUB_QUEUE_BATCH_SIZE * (wanted + 1)])
    helpers = min(wanted, max(0, -(-batches // settings.MAILHUB_QUEUE_BATCH_SIZE) - 1))
    from .tasks import queue_help

    for _ in range(helpers):
        queue_help.delay(time_budget)
    return helpers


def mails_vacuum(*, older_than_days: int | None = None, batch_size: int = 1000) -> int:
    """Delete sent and cancelled mail older than the given age, in bounded batches."""
    days = older_than_days if older_than_days is not None else settings.MAILHUB_VACUUM_DAYS
    cutoff = timezone.now() - dt.timedelta(days=days)
    old = OutgoingMail.objects.filter(
        state__in=[MailState.SENT, MailState.CANCEL], created_at__lt=cutoff
    ).order_by("id")
    deleted = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        OutgoingMail.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    log_event(logger, "queue.vacuum", deleted=deleted, older_than_days=days)
    return deleted
