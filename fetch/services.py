"""Fetching mail from incoming servers into the inbound gateway, exactly once.

A fetched message takes the listener's path (``inbound.services``): its recipients are checked
as RCPT TO would be, then ``inbound_receive_many`` routes and stores it and the poster posts
it. Only after the store commits is the mailbox told (flag, move or delete); the
``FetchedMessage`` row written in the same transaction as the stored mail is what makes a crash
between the two harmless: the next run finds it and only acknowledges. A new UIDVALIDITY
(RFC 3501 §2.3.1.1) voids the UIDs; the Message-ID recorded on each row keeps a re-scan from
storing anything twice.
"""

import datetime as dt
import json
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from chatter.models import new_message_id
from inbound.models import AliasDomain
from inbound.parsing import header_facts, header_section, normalize_address
from inbound.routing import RcptDecision
from inbound.services import (
    Delivery,
    inbound_process_many,
    inbound_process_pending,
    inbound_receive_many,
    rcpt_check,
)
from mailhub.encryption import SecretUnreadable
from mailhub.logfiles import log_event
from outbox.reports import report_enqueue

from .dsn_reply import bounce_target, dsn_build, mailer_daemon
from .mailboxes import Mailbox, MailboxError, mailbox_open
from .models import AfterFetch, FetchBounce, FetchedMessage, IncomingServer

logger = logging.getLogger("mailhub.fetch")

FETCH_TASK = "fetch.incoming_server_fetch"
LEASE_MINUTES = 15
MAX_PER_RUN = 200
MAX_RECIPIENTS = 50
# Headers naming who a fetched mail was for: the envelope ones the mailbox wrote, then the
# visible ones (a provider that keeps no Delivered-To still has To/Cc).
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")
BOUNCES_PER_SENDER_PER_HOUR = 1


class MessageKept(Exception):
    """A message stays on the server for the next run (a temporary refusal)."""


def _too_big_reply() -> str:
    # What the listener answers past its limit (RFC 5321 §4.5.3.1.10, RFC 3463 5.3.4).
    return (
        "552 5.3.4 Message size exceeds fixed maximum message size "
        f"({settings.MAILHUB_SMTPD_MAX_SIZE} bytes)"
    )


@dataclass(frozen=True)
class FetchReport:
    fetched: int = 0
    acknowledged: int = 0
    error: str = ""
    busy: bool = False


# --- Schedule -------------------------------------------------------------------------------------


def _task_kwargs(server_id: int) -> str:
    return json.dumps({"server_id": server_id})


def _task_name(server: IncomingServer) -> str:
    return f"Fetch mail: {server.name} (#{server.pk})"


def incoming_server_schedule(*, server: IncomingServer) -> PeriodicTask:
    """One django-celery-beat task per server, enabled while the server is active."""
    every = max(1, server.interval_minutes)
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every, period=IntervalSchedule.MINUTES
    )
    task = PeriodicTask.objects.filter(
        task=FETCH_TASK, kwargs__contains=f'"server_id": {server.pk}'
    )
    existing = task.first()
    fields = {
        "name": _task_name(server),
        "interval": interval,
        "task": FETCH_TASK,
        "kwargs": _task_kwargs(server.pk),
        "enabled": server.active,
        "description": "Fetches new mail from this incoming server (Admin → Incoming servers).",
    }
    if existing is None:
        return PeriodicTask.objects.create(**fields)
    for key, value in fields.items():
        setattr(existing, key, value)
    existing.save()
    return existing


def incoming_server_unschedule(*, server_id: int) -> None:
    PeriodicTask.objects.filter(task=FETCH_TASK, kwargs=_task_kwargs(server_id)).delete()


# --- Test & Confirm -------------------------------------------------------------------------------


def incoming_server_test(*, server: IncomingServer) -> tuple[bool, str]:
    """Log in and open the folder; the server's words either way. Success confirms it."""
    try:
        mailbox = mailbox_open(server)
    except (MailboxError, SecretUnreadable) as exc:
        IncomingServer.objects.filter(pk=server.pk).update(last_error=str(exc)[:2000])
        return False, str(exc)
    try:
        greeting = mailbox.greeting
    finally:
        try:
            mailbox.close()
        except MailboxError:
            pass
    IncomingServer.objects.filter(pk=server.pk).update(confirmed_at=timezone.now(), last_error="")
    return True, greeting


# --- Fetch ----------------------------------------------------------------------------------------


def _lease_take(server_id: int) -> bool:
    now = timezone.now()
    return bool(
        IncomingServer.objects.filter(pk=server_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + dt.timedelta(minutes=LEASE_MINUTES))
    )


def _recipients(raw: bytes) -> list[str]:
    """The addresses of ours the mail was for, in header order, each once."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_section(raw))
    found: list[str] = []
    for name in RECIPIENT_HEADERS:
        values = [str(v) for v in headers.get_all(name, [])]
        for _, address in getaddresses(values):
            address = normalize_address(address)
            if address and "@" in address and address not in found:
                found.append(address)
    ours = {d.lower() for d in AliasDomain.objects.values_list("domain", flat=True)}
    return [a for a in found if a.rpartition("@")[2] in ours][:MAX_RECIPIENTS]


def _return_path(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_section(raw))
    value = str(headers.get("Return-Path", "") or "").strip()
    return "<>" if value == "<>" else normalize_address(value)


def _bounce(*, server: IncomingServer, raw: bytes, recipients: list[str], reply: str) -> str:
    """Tell the sender what the listener would have answered; returns what was done."""
    message_id = header_facts(raw).message_id
    target = bounce_target(raw=raw)
    if not target.address:
        outcome = f"refused ({reply}); no bounce: {target.skip}"
    else:
        since = timezone.now() - dt.timedelta(hours=1)
        recent = FetchBounce.objects.filter(
            sender=target.address, sent=True, created_at__gte=since
        ).count()
        if recent >= BOUNCES_PER_SENDER_PER_HOUR:
            outcome = f"refused ({reply}); no bounce: {target.address} had one this hour"
        else:
            dsn_id = new_message_id()
            report_enqueue(
                to=target.address,
                from_addr=mailer_daemon(),
                subject="Undelivered Mail Returned to Sender",
                message_id=dsn_id,
                mime=dsn_build(raw=raw, recipients=recipients, reply=reply, message_id=dsn_id),
            )
            outcome = f"refused ({reply}); bounced to {target.address}"
        FetchBounce.objects.create(
            server=server,
            sender=target.address,
            message_id=message_id,
            reason=outcome[:2000],
            sent=outcome.endswith(f"bounced to {target.address}"),
        )
    log_event(
        logger,
        "fetch.refused",
        level=logging.WARNING,
        server=server.name,
        message_id=message_id,
        reason=outcome,
    )
    return outcome


def _take(
    server: IncomingServer, mailbox: Mailbox, uid: str, raw: bytes, *, too_big: bool = False
) -> tuple[str, list]:
    """Store one fetched mail (or bounce it) and record its key, in one transaction.

    Returns (outcome, inbound rows to post). Raises when it must stay on the server for the
    next run (a database error or a temporary refusal): nothing is recorded then.
    """
    facts = header_facts(raw)
    with transaction.atomic():
        earlier = (
            FetchedMessage.objects.filter(server=server, message_id=facts.message_id)
            .exclude(uidvalidity=mailbox.key_space, uid=uid)
            .first()
        )
        if earlier is not None:
            outcome, pending = f"already taken as {earlier.uidvalidity}:{earlier.uid}", []
        elif too_big:
            # Only the headers were read: enough to tell the sender, nothing to store.
            outcome, pending = (
                _bounce(
                    server=server, raw=raw, recipients=_recipients(raw), reply=_too_big_reply()
                ),
                [],
            )
        else:
            addresses = _recipients(raw)
            rcpts: dict[str, RcptDecision] = {}
            refusals: list[str] = []
            for address in addresses:
                decision = rcpt_check(address=address)
                if decision.accepted:
                    rcpts[address] = decision
                else:
                    refusals.append(decision.reply)
            pending = []
            temporary = [r for r in refusals if r.startswith("4")]
            if not rcpts and temporary:
                raise MessageKept(temporary[0])  # e.g. the database is away: try again later
            if not rcpts:
                # Addresses of ours next to an accepted one are not bounced: the mailbox got
                # one copy, and the listener's per-RCPT refusals have no fetched equivalent.
                reply = refusals[0] if refusals else "550 5.1.1 No recipient of ours"
                outcome = _bounce(server=server, raw=raw, recipients=addresses, reply=reply)
            else:
                delivery = Delivery(
                    peer=f"fetch:{server.name}"[:100],
                    mail_from=_return_path(raw),
                    rcpts=rcpts,
                    raw=raw,
                )
                result = inbound_receive_many(deliveries=[delivery])[0]
                if result.reply.startswith("4"):
                    raise MessageKept(result.reply)
                if result.reply.startswith("5"):
                    outcome = _bounce(
                        server=server, raw=raw, recipients=list(rcpts), reply=result.reply
                    )
                else:
                    outcome, pending = result.reply, result.to_process
        FetchedMessage.objects.create(
            server=server,
            uidvalidity=mailbox.key_space,
            uid=uid,
            message_id=facts.message_id,
            outcome=outcome[:2000],
        )
    return outcome, pending


def _acknowledge(mailbox: Mailbox, record: FetchedMessage) -> None:
    mailbox.acknowledge(record.uid)
    FetchedMessage.objects.filter(pk=record.pk).update(acknowledged_at=timezone.now())


def _fetch(server: IncomingServer, limit: int) -> FetchReport:
    mailbox = mailbox_open(server)
    fetched = acknowledged = 0
    kept: list[str] = []
    try:
        uids = mailbox.uids()
        known = {
            r.uid: r
            for r in FetchedMessage.objects.filter(
                server=server, uidvalidity=mailbox.key_space, uid__in=uids
            )
        }
        for uid in uids:
            record = known.get(uid)
            if record is not None:
                # Stored by an earlier run that did not get to tell the server (or POP3 mail
                # left on it): acknowledge again, never store again.
                if record.acknowledged_at is None or server.after_fetch != AfterFetch.MARK_SEEN:
                    _acknowledge(mailbox, record)
                    acknowledged += 1
                continue
            if fetched >= limit:
                break
            too_big = mailbox.size(uid) > settings.MAILHUB_SMTPD_MAX_SIZE
            raw = mailbox.read_headers(uid) if too_big else mailbox.read(uid)
            try:
                outcome, pending = _take(server, mailbox, uid, raw, too_big=too_big)
            except Exception as exc:  # noqa: BLE001 - one bad message must not block the rest
                if not isinstance(exc, MessageKept):
                    logger.exception("message %s of %s could not be stored", uid, server.name)
                kept.append(f"message {uid} kept on the server: {type(exc).__name__}: {exc}")
                continue
            fetched += 1
            IncomingServer.objects.filter(pk=server.pk).update(
                messages_fetched=F("messages_fetched") + 1
            )
            # Posted as the listener posts after its 250; a failure stays on the inbound row
            # and the sweep retries it, so acknowledging now loses nothing.
            inbound_process_many(ids=pending)
            log_event(logger, "fetch.taken", server=server.name, uid=uid, outcome=outcome)
            _acknowledge(
                mailbox,
                FetchedMessage.objects.get(server=server, uidvalidity=mailbox.key_space, uid=uid),
            )
            acknowledged += 1
    finally:
        mailbox.close()
    # Without a listener running (a fetch-only install) nothing else retries a post that failed.
    inbound_process_pending()
    error = "; ".join(kept[:3]) + (f" (and {len(kept) - 3} more)" if len(kept) > 3 else "")
    return FetchReport(fetched=fetched, acknowledged=acknowledged, error=error)


def incoming_server_fetch(*, server_id: int, limit: int = MAX_PER_RUN) -> FetchReport:
    """Fetch new mail of one server; errors end on its row in one line, never raised."""
    server = IncomingServer.objects.filter(pk=server_id).first()
    if server is None:
        return FetchReport(error="no such incoming server")
    if not _lease_take(server.pk):
        return FetchReport(busy=True)
    report = FetchReport()
    try:
        report = _fetch(server, limit)
    except (MailboxError, SecretUnreadable) as exc:
        report = FetchReport(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - shown on the row; the schedule goes on
        logger.exception("fetching from %s failed", server.name)
        report = FetchReport(error=f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        IncomingServer.objects.filter(pk=server.pk).update(
            lease_until=None,
            last_fetch_at=timezone.now(),
            last_error=report.error[:2000],
        )
    if report.error:
        log_event(
            logger, "fetch.failed", level=logging.WARNING, server=server.name, error=report.error
        )
    return report
