"""Bounce processing: a bounce stored by the gateway → the exact notification turns ``bounce``.

Two ways to find what bounced (spec §5):

1. VERP: the bounce came to ``bounce+<ref>.<signature>@domain``, the Return-Path we gave that one
   recipient's mail (``outbox.verp``). The reference names the notification or outbox recipient,
   whatever the bounce says, so even a bounce we cannot read maps exactly.
2. Otherwise (the plain bounce address, the catchall, or a DSN recognised by its form) the DSN is
   read (``inbound.dsn``): the failed recipients, and the original mail's Message-ID, matched
   against our outgoing mail and then the chatter message (auto-deleted mail is gone).

Only bounces we can tie to a mail we sent count against a contact, so a forged bounce cannot
blacklist anyone. A bounce that matches nothing is kept (the InboundMail row) and logged.
Nothing here sends mail: answering a bounce is how mail loops start (RFC 3834 §2).
"""

import logging
import re
from dataclasses import dataclass
from email import message_from_bytes, policy

from django.db import transaction
from django.utils import timezone

from chatter.models import (
    Contact,
    FailureType,
    Notification,
    NotificationKind,
    NotificationStatus,
    normalize_email,
)
from chatter.models import Message as ChatterMessage
from chatter.suppression import contact_bounce_record
from chatter.suppression import contact_bounce_reset as _contact_bounce_reset
from mailhub.logfiles import log_event
from outbox.models import MailRecipient, OutgoingMail, RecipientStatus
from outbox.verp import VerpRef, parse_bounce_address

from .dsn import FAILED, HARD, BounceReport, RecipientReport, bounce_parse
from .models import AliasDomain

logger = logging.getLogger("mailhub.bounces")

# A notification can still turn red from these; a canceled one was dismissed by the user.
_NOTIFICATION_BOUNCEABLE = (
    NotificationStatus.SENT,
    NotificationStatus.READY,
    NotificationStatus.EXCEPTION,
)
_RECIPIENT_BOUNCEABLE = (RecipientStatus.SENT, RecipientStatus.PENDING, RecipientStatus.DEFERRED)
_REPLY_CODE = re.compile(r"(?<!\d)([45]\d\d)(?!\d)")
_NOT_BOUNCE_SUBJECT = re.compile(
    r"delay|warning|still being retried|auto.?reply|out of office", re.I
)


@dataclass
class _Target:
    """One recipient of one of our mails: its notification and/or its outbox row."""

    address: str
    notification: Notification | None = None
    recipient: MailRecipient | None = None
    ref: str = ""


def contact_bounce_reset(*, email: str) -> None:
    """A genuine mail from ``email`` arrived: its bounce counter goes back to 0."""
    _contact_bounce_reset(email=email)


def bounce_process(*, inbound_mail, rcpt: str, message) -> str:
    """Handle a bounce stored as ``inbound_mail``; returns a short outcome for the log.

    ``message`` is the parsed mail (``email.message.Message``) or its raw bytes. Never raises
    for content it cannot use: an unreadable or unmatched bounce is logged and kept.
    """
    if isinstance(message, bytes | bytearray):
        message = message_from_bytes(bytes(message), policy=policy.compat32)
    report = bounce_parse(message)
    inbound_id = getattr(inbound_mail, "pk", None)
    ref = _verp_ref(rcpt)
    if ref is not None:
        return _process_verp(ref=ref, report=report, rcpt=rcpt, inbound_id=inbound_id)
    return _process_report(report=report, rcpt=rcpt, inbound_id=inbound_id)


def _verp_ref(rcpt: str) -> VerpRef | None:
    domain = rcpt.strip("<>").rpartition("@")[2].lower()
    bounce_local = (
        AliasDomain.objects.filter(domain__iexact=domain)
        .values_list("bounce_local", flat=True)
        .first()
    ) or "bounce"
    return parse_bounce_address(rcpt, bounce_local=bounce_local)


def _process_verp(*, ref: VerpRef, report: BounceReport, rcpt: str, inbound_id) -> str:
    target = _verp_target(ref)
    token = f"{ref.kind}{ref.pk}"
    if target is None:
        return _unmatched(
            rcpt=rcpt,
            report=report,
            inbound_id=inbound_id,
            why=f"VERP reference {token} names no mail of ours any more",
        )
    failed = report.failed
    if not failed:
        if report.delayed:
            return _delayed(rcpt=rcpt, report=report, inbound_id=inbound_id)
        if not report.from_mailer_daemon or _NOT_BOUNCE_SUBJECT.search(report.subject):
            # The Return-Path also receives vacation replies and the like (protocol.md §3.2).
            log_event(
                logger,
                "bounce.ignored",
                rcpt=rcpt,
                inbound=inbound_id,
                reason="not a delivery failure (auto-reply?)",
            )
            return "ignored: not a delivery failure"
        # A mailer daemon's failure notice in a format nobody knows: the VERP address still
        # says exactly who it was for. Soft, so an unread text never counts toward the blacklist.
        failed = [
            RecipientReport(address=target.address, action=FAILED, status="5.0.0", assumed=True)
        ]
    chosen = next((r for r in failed if r.address == target.address), failed[0])
    return _apply(target=target, recipient_report=chosen, report=report, inbound_id=inbound_id)


def _verp_target(ref: VerpRef) -> _Target | None:
    if ref.kind == "n":
        notification = Notification.objects.select_related("contact").filter(pk=ref.pk).first()
        if notification is None:
            return None
        recipient = (
            MailRecipient.objects.filter(notification_id=notification.pk).order_by("-id").first()
        )
        return _Target(
            address=notification.contact.email,
            notification=notification,
            recipient=recipient,
            ref=f"n{ref.pk}",
        )
    recipient = (
        MailRecipient.objects.select_related("notification__contact").filter(pk=ref.pk).first()
    )
    if recipient is None:
        return None
    return _Target(
        address=normalize_email(recipient.address),
        notification=recipient.notification,
        recipient=recipient,
        ref=f"r{ref.pk}",
    )


def _process_report(*, report: BounceReport, rcpt: str, inbound_id) -> str:
    if not report.recipients:
        if report.looks_like_bounce:
            return _unmatched(
                rcpt=rcpt, report=report, inbound_id=inbound_id, why="unrecognised bounce format"
            )
        log_event(logger, "bounce.ignored", rcpt=rcpt, inbound=inbound_id, reason="not a bounce")
        return "ignored: not a bounce"
    failed = report.failed
    if not failed:
        if report.delayed:
            return _delayed(rcpt=rcpt, report=report, inbound_id=inbound_id)
        return "ignored: no failed recipient in the report"
    outcomes = []
    for recipient_report in failed:
        target = _report_target(report=report, address=recipient_report.address)
        if target is None:
            outcomes.append(
                _unmatched(
                    rcpt=rcpt,
                    report=report,
                    inbound_id=inbound_id,
                    why=f"no mail of ours to {recipient_report.address} with Message-ID "
                    f"{report.original_message_id or '(none)'}",
                    address=recipient_report.address,
                )
            )
            continue
        outcomes.append(
            _apply(
                target=target,
                recipient_report=recipient_report,
                report=report,
                inbound_id=inbound_id,
            )
        )
    return "; ".join(outcomes)


def _report_target(*, report: BounceReport, address: str) -> _Target | None:
    """The recipient of ours a DSN is about: by the original Message-ID, then the address.

    The Message-ID is looked up among the outgoing mail still kept, then among chatter messages
    (sent notification mail is auto-deleted; its Message-ID is the message's). A resent
    notification has a fresh Message-ID and replies to its message, so In-Reply-To is the
    second key. When the failed address is not one we sent to (a forward) and the mail had a
    single recipient, that recipient is the one (odoo-behaviour §5).
    """
    for message_id in filter(None, (report.original_message_id, report.original_in_reply_to)):
        target = _outbox_target(message_id=message_id, address=address)
        if target is None:
            target = _chatter_target(message_id=message_id, address=address)
        if target is not None:
            return target
    return None


def _outbox_target(*, message_id: str, address: str) -> _Target | None:
    mail = OutgoingMail.objects.filter(message_id=message_id).first()
    if mail is None:
        return None
    recipients = list(mail.recipients.select_related("notification__contact"))
    chosen = next((r for r in recipients if normalize_email(r.address) == address), None)
    if chosen is None and len(recipients) == 1:
        chosen = recipients[0]
    if chosen is None:
        return None
    return _Target(
        address=normalize_email(chosen.address),
        notification=chosen.notification,
        recipient=chosen,
        ref=f"r{chosen.pk}",
    )


def _chatter_target(*, message_id: str, address: str) -> _Target | None:
    chatter = (
        ChatterMessage.objects.filter(message_id=message_id).values_list("pk", flat=True).first()
    )
    if chatter is None:
        return None
    notifications = list(
        Notification.objects.select_related("contact").filter(
            message_id=chatter, kind=NotificationKind.EMAIL
        )
    )
    chosen = next((n for n in notifications if n.contact.email == address), None)
    if chosen is None and len(notifications) == 1:
        chosen = notifications[0]
    if chosen is None:
        return None
    recipient = MailRecipient.objects.filter(notification_id=chosen.pk).order_by("-id").first()
    return _Target(
        address=chosen.contact.email, notification=chosen, recipient=recipient, ref=f"n{chosen.pk}"
    )


def _apply(
    *, target: _Target, recipient_report: RecipientReport, report: BounceReport, inbound_id
) -> str:
    """Mark the notification and the outbox recipient bounced, then count it on the contact.

    Guarded updates: a second copy of the same bounce changes nothing and counts nothing.
    """
    from outbox.signals import recipients_updated

    reason = report.reason_for(recipient_report)
    code = _REPLY_CODE.search(recipient_report.diagnostic)
    now = timezone.now()
    with transaction.atomic():
        notification_changed = 0
        if target.notification is not None:
            notification_changed = Notification.objects.filter(
                pk=target.notification.pk,
                kind=NotificationKind.EMAIL,
                status__in=_NOTIFICATION_BOUNCEABLE,
            ).update(
                status=NotificationStatus.BOUNCE,
                failure_type=FailureType.BOUNCE,
                failure_reason=reason,
                updated_at=now,
            )
        recipient_ids: list[int] = []
        if target.recipient is not None:
            changed = MailRecipient.objects.filter(
                pk=target.recipient.pk, status__in=_RECIPIENT_BOUNCEABLE
            ).update(
                status=RecipientStatus.BOUNCED,
                code=int(code[1]) if code else None,
                response=reason,
            )
            if changed:
                recipient_ids.append(target.recipient.pk)
        if not notification_changed and not recipient_ids:
            log_event(
                logger,
                "bounce.duplicate",
                rcpt=target.address,
                ref=target.ref,
                inbound=inbound_id,
                status=recipient_report.status,
            )
            return f"already bounced: {target.ref} {target.address}"
        contact = (
            target.notification.contact
            if target.notification is not None
            else Contact.objects.get_or_create(
                email=target.address, defaults={"name": target.address.split("@")[0]}
            )[0]
        )
        contact = contact_bounce_record(
            contact=contact,
            hard=recipient_report.severity == HARD,
            status=recipient_report.status,
            reason=reason,
            at=now,
            notification_id=target.notification.pk if notification_changed else None,
            inbound_mail_id=inbound_id,
        )
        if recipient_ids:
            transaction.on_commit(
                lambda: recipients_updated.send(sender=MailRecipient, recipient_ids=recipient_ids)
            )
    log_event(
        logger,
        "bounce.recorded",
        message_id=report.original_message_id,
        rcpt=target.address,
        ref=target.ref,
        inbound=inbound_id,
        status=recipient_report.status,
        severity=recipient_report.severity,
        bounce_count=contact.bounce_count,
        blacklisted=contact.blacklisted,
        reason=recipient_report.diagnostic,
    )
    return f"bounce: {target.ref} {target.address} {recipient_report.status}"


def _delayed(*, rcpt: str, report: BounceReport, inbound_id) -> str:
    """RFC 3464 ``Action: delayed``: the remote MTA is still trying; nothing failed yet."""
    addresses = ",".join(r.address for r in report.delayed)
    log_event(
        logger,
        "bounce.delayed",
        message_id=report.original_message_id,
        rcpt=addresses,
        to=rcpt,
        inbound=inbound_id,
        status=",".join(r.status for r in report.delayed),
    )
    return f"delayed: {addresses} (a warning, not a bounce)"


def _unmatched(*, rcpt: str, report: BounceReport, inbound_id, why: str, address: str = "") -> str:
    log_event(
        logger,
        "bounce.unmatched",
        message_id=report.original_message_id,
        rcpt=address or ",".join(r.address for r in report.recipients),
        to=rcpt,
        inbound=inbound_id,
        reason=why,
    )
    return f"unmatched: {why}"
