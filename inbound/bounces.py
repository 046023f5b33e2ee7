"""Bounce processing: a bounce stored by the gateway → the exact notification turns ``bounce``.

One pipeline (spec §5): the VERP address, then the RFC 3464 report, then flufl.bounce
(``inbound.dsn`` reads the last two), and "not a bounce" only when all three found nothing.

What may change a notification or a contact's counter is decided by proof, not by what the
bounce says:

1. VERP: the bounce came to ``bounce+<ref>.<signature>@domain``, the Return-Path we gave that one
   recipient's copy (``outbox.verp``). The signed reference names the notification or outbox
   recipient exactly; a forged signature is refused at RCPT.
2. Otherwise (``bounce@``, the catchall, a VERP reference that names nothing any more) the
   bounce must name a recipient of ours *and* carry that recipient's own signed VERP address
   somewhere in what it returned (the original's Return-Path line: every recipient's copy is
   its own SMTP transaction with its own). The Message-ID is shared by every copy, so a
   co-follower or a customer who knows it proves nothing.

A bounce without that proof is stored (the InboundMail row), logged ``bounce.unverified`` with
the addresses it names, and shown on the contact page as "reported, not verified": never
counted, never blacklisting. A policy refusal (5.7.x, spam, reputation) shows on the
notification but never counts. Every bounce ends in one logged decision per recipient it
names: ``bounce.applied``, ``bounce.policy``, ``bounce.delayed``, ``bounce.duplicate``,
``bounce.unverified``, ``bounce.unmatched`` or ``bounce.ignored`` (with why).
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
from chatter.reply_address import parse_reply_address
from chatter.suppression import (
    contact_bounce_record,
    contact_bounce_unverified,
    contact_complaint_record,
)
from chatter.suppression import contact_bounce_reset as _contact_bounce_reset
from mailhub.logfiles import log_event
from outbox.models import MailRecipient, OutgoingMail, RecipientStatus
from outbox.verp import VerpRef, parse_bounce_address

from .complaints import ComplaintReport, complaint_parse
from .dsn import FAILED, HARD, POLICY, BounceReport, RecipientReport, bounce_parse
from .models import AliasDomain
from .signals import complaint_received

logger = logging.getLogger("mailhub.bounces")

# A notification can still turn red from these; a canceled one was dismissed by the user.
_NOTIFICATION_BOUNCEABLE = (
    NotificationStatus.SENT,
    NotificationStatus.READY,
    NotificationStatus.EXCEPTION,
)
_RECIPIENT_BOUNCEABLE = (RecipientStatus.SENT, RecipientStatus.PENDING, RecipientStatus.DEFERRED)
_REPLY_CODE = re.compile(r"(?<!\d)([45]\d\d)(?!\d)")
# A signed VERP address anywhere in the returned text: ``bounce+n42.<20 hex>@domain``.
# A signed reply address (``chatter.reply_address``): ``reply+<message>.<notification>.<sig>@``.
_REPLY_IN_TEXT = re.compile(r"reply\+\d{1,18}\.\d{1,18}\.[0-9a-f]{20}@[a-z0-9.-]+", re.I)
_VERP_IN_TEXT = re.compile(
    r"([a-z0-9._=-]{1,64})\+([nr]\d{1,18})\.([0-9a-f]{20})@([a-z0-9.-]+)", re.I
)
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
    inbound_id = getattr(inbound_mail, "pk", None)
    ref = _verp_ref(rcpt)
    complaint = complaint_parse(message)
    if complaint is not None:
        return _process_complaint(
            complaint=complaint, ref=ref, message=message, rcpt=rcpt, inbound_id=inbound_id
        )
    report = bounce_parse(message)
    if ref is not None:
        target = _verp_target(ref)
        if target is not None:
            return _process_verp(target=target, report=report, rcpt=rcpt, inbound_id=inbound_id)
        # A signed reference whose mail is gone: read the report like one to bounce@.
    return _process_report(
        report=report, tokens=_returned_targets(message), rcpt=rcpt, inbound_id=inbound_id
    )


# The returned copy's headers sit near the top of their part: a bounded read finds them.
_TEXT_LIMIT = 1024 * 1024


def _message_text(message) -> str:
    """What the bounce returned, as text: its source, and every part decoded (each bounded)."""
    chunks = []
    try:
        chunks.append(message.as_string()[:_TEXT_LIMIT])
    except Exception:  # noqa: BLE001 - a damaged header: the decoded parts still count
        pass
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001
            payload = None
        if isinstance(payload, bytes):
            chunks.append(payload[:_TEXT_LIMIT].decode("utf-8", errors="replace"))
    # Quoted-printable soft line breaks can cut an address in two.
    return "\n".join(chunks).replace("=\r\n", "").replace("=\n", "")


def _returned_targets(message) -> list["_Target"]:
    """The recipients of ours whose own signed address the bounce carries anywhere.

    Two secrets only one recipient's copy had: its VERP envelope sender (in a Return-Path the
    final MTA wrote, or quoted by the reporter) and its signed Reply-To (``reply+…``), which
    every returned header block holds even when no Return-Path was written (RFC 5321 §4.4).
    """
    text = _message_text(message)
    targets: dict[str, _Target] = {}
    refs = [
        parse_bounce_address(f"{local}+{token}.{signature}@{domain}", bounce_local=local)
        for local, token, signature, domain in _VERP_IN_TEXT.findall(text)
    ]
    refs += [
        VerpRef(kind="n", pk=reply.notification_id)
        for reply in map(parse_reply_address, _REPLY_IN_TEXT.findall(text))
        if reply is not None
    ]
    for ref in refs:
        if ref is None or f"{ref.kind}{ref.pk}" in targets:
            continue
        target = _verp_target(ref)
        if target is not None:
            targets[target.ref] = target
    return list(targets.values())


def _verp_ref(rcpt: str) -> VerpRef | None:
    domain = rcpt.strip("<>").rpartition("@")[2].lower()
    bounce_local = (
        AliasDomain.objects.filter(domain__iexact=domain)
        .values_list("bounce_local", flat=True)
        .first()
    ) or "bounce"
    return parse_bounce_address(rcpt, bounce_local=bounce_local)


def _process_verp(*, target: "_Target", report: BounceReport, rcpt: str, inbound_id) -> str:
    failed = report.failed
    if not failed:
        if report.delayed:
            return _delayed(rcpt=rcpt, report=report, inbound_id=inbound_id)
        if not report.from_mailer_daemon or _NOT_BOUNCE_SUBJECT.search(report.subject):
            # The Return-Path also receives vacation replies and the like (protocol.md §3.2).
            return _ignored(
                rcpt=rcpt, inbound_id=inbound_id, why="not a delivery failure (auto-reply?)"
            )
        # A mailer daemon's failure notice in a format nobody knows: the VERP address still
        # says exactly who it was for. Soft, so an unread text never counts toward the blacklist.
        failed = [
            RecipientReport(address=target.address, action=FAILED, status="5.0.0", assumed=True)
        ]
    # The VERP address is the proof; the block about that address is the reason (a forwarded
    # address may be named instead, then the first failure is).
    chosen = next((r for r in failed if target.address in r.candidates), failed[0])
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


def _process_report(*, report: BounceReport, tokens: list["_Target"], rcpt: str, inbound_id) -> str:
    if not report.recipients:
        if report.looks_like_bounce:
            return _unmatched(
                rcpt=rcpt,
                report=report,
                inbound_id=inbound_id,
                why="a bounce, but neither its report nor flufl.bounce names a recipient",
            )
        return _ignored(rcpt=rcpt, inbound_id=inbound_id, why="not a bounce")
    failed = report.failed
    if not failed:
        if report.delayed:
            return _delayed(rcpt=rcpt, report=report, inbound_id=inbound_id)
        return _ignored(
            rcpt=rcpt, inbound_id=inbound_id, why="no failed recipient (delivered or relayed)"
        )
    outcomes = []
    for recipient_report in failed:
        proven = next((t for t in tokens if t.address in recipient_report.candidates), None)
        if proven is not None:
            outcomes.append(
                _apply(
                    target=proven,
                    recipient_report=recipient_report,
                    report=report,
                    inbound_id=inbound_id,
                )
            )
            continue
        outcomes.append(
            _unproven(
                recipient_report=recipient_report,
                report=report,
                tokens=tokens,
                rcpt=rcpt,
                inbound_id=inbound_id,
            )
        )
    return "; ".join(outcomes)


def _unproven(
    *,
    recipient_report: RecipientReport,
    report: BounceReport,
    tokens: list["_Target"],
    rcpt: str,
    inbound_id,
) -> str:
    """A failure named without its recipient's token: reported, never counted."""
    target = _report_target(report=report, addresses=recipient_report.candidates)
    ours = _message_id_is_ours(report)
    if target is not None:
        why = (
            f"names {target.address}, a recipient of our mail {report.original_message_id}, "
            "but carries no VERP token of that recipient's copy"
        )
        if tokens:
            why += f" (the token it carries is {', '.join(t.address for t in tokens)}'s)"
    elif ours:
        why = (
            f"the Message-ID {report.original_message_id} is ours, but "
            f"{', '.join(recipient_report.candidates)} was not one of its recipients"
        )
    else:
        why = (
            f"no mail of ours with Message-ID {report.original_message_id or '(none given)'} "
            "and no VERP token"
        )
    contacts = list(Contact.objects.filter(email__in=recipient_report.candidates))
    if not contacts and target is None:
        return _unmatched(
            rcpt=rcpt,
            report=report,
            inbound_id=inbound_id,
            why=why,
            recipient_report=recipient_report,
        )
    for contact in contacts:
        contact_bounce_unverified(
            contact=contact,
            status=recipient_report.status,
            reason=f"Reported, not verified: {why}.\n\n{report.reason_for(recipient_report)}",
            inbound_mail_id=inbound_id,
        )
    log_event(
        logger,
        "bounce.unverified",
        message_id=report.original_message_id,
        rcpt=",".join(recipient_report.candidates),
        to=rcpt,
        inbound=inbound_id,
        status=recipient_report.status,
        severity=recipient_report.severity,
        reason=why,
    )
    return f"bounce.unverified: {_named(recipient_report)} ({why})"


def _named(recipient_report: RecipientReport) -> str:
    """``addresses status severity``: what a recipient block said, for the stored outcome."""
    addresses = ",".join(recipient_report.candidates)
    return f"{addresses} {recipient_report.status or '-'} {recipient_report.severity}"


def _message_id_is_ours(report: BounceReport) -> bool:
    ids = [i for i in (report.original_message_id, report.original_in_reply_to) if i]
    return bool(ids) and (
        OutgoingMail.objects.filter(message_id__in=ids).exists()
        or ChatterMessage.objects.filter(message_id__in=ids).exists()
    )


def _report_target(*, report: BounceReport, addresses: tuple[str, ...]) -> _Target | None:
    """The recipient of ours a report names: by the original Message-ID and an address.

    The Message-ID is looked up among the outgoing mail still kept, then among chatter messages
    (sent notification mail is auto-deleted; its Message-ID is the message's). A resent
    notification has a fresh Message-ID and replies to its message, so In-Reply-To is the
    second key. Only to say what an unverified report is about: it proves nothing.
    """
    for message_id in filter(None, (report.original_message_id, report.original_in_reply_to)):
        for address in addresses:
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
            return f"bounce.duplicate: {target.ref} {target.address} already bounced"
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
            policy=recipient_report.severity == POLICY,
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
        "bounce.policy" if recipient_report.severity == POLICY else "bounce.applied",
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
    event = "bounce.policy" if recipient_report.severity == POLICY else "bounce.applied"
    return f"{event}: {target.ref} {target.address} {recipient_report.status}"


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
    return f"bounce.delayed: {addresses} (a warning, not a bounce)"


def _unmatched(
    *,
    rcpt: str,
    report: BounceReport,
    inbound_id,
    why: str,
    recipient_report: RecipientReport | None = None,
) -> str:
    addresses = (
        ",".join(recipient_report.candidates)
        if recipient_report is not None
        else ",".join(r.address for r in report.recipients)
    )
    log_event(
        logger,
        "bounce.unmatched",
        message_id=report.original_message_id,
        rcpt=addresses,
        to=rcpt,
        inbound=inbound_id,
        status=recipient_report.status if recipient_report is not None else "",
        reason=why,
    )
    if recipient_report is not None:
        return f"bounce.unmatched: {_named(recipient_report)} ({why})"
    return f"bounce.unmatched: {why}"


def _ignored(*, rcpt: str, inbound_id, why: str) -> str:
    log_event(logger, "bounce.ignored", rcpt=rcpt, inbound=inbound_id, reason=why)
    return f"bounce.ignored: {why}"


def _process_complaint(
    *, complaint: ComplaintReport, ref: VerpRef | None, message, rcpt: str, inbound_id
) -> str:
    """A feedback-loop report: suppress exactly the recipient whose copy it returns.

    The copy is known by its signed VERP address: the one the report was sent to, or the
    original's Return-Path inside it. ``Original-Rcpt-To`` alone proves nothing (anyone can
    write one), so a report without a token is kept and logged, never suppressing anyone.
    """
    if not complaint.is_complaint:
        return _ignored(
            rcpt=rcpt,
            inbound_id=inbound_id,
            why=f"feedback report of type {complaint.feedback_type or '(none)'}, not a complaint",
        )
    target = _verp_target(ref) if ref is not None else None
    if target is None:
        targets = _returned_targets(message)
        if complaint.original_rcpt_to:
            targets = [t for t in targets if t.address == complaint.original_rcpt_to] or targets
        target = targets[0] if len(targets) == 1 else None
    if target is None:
        log_event(
            logger,
            "complaint.unverified",
            message_id=complaint.original_message_id,
            rcpt=complaint.original_rcpt_to or "(redacted)",
            to=rcpt,
            inbound=inbound_id,
            reason="no VERP token of one copy of ours in the report",
        )
        return (
            f"complaint.unverified: {complaint.original_rcpt_to or '(redacted)'} "
            "(no VERP token of one copy of ours)"
        )
    contact = (
        target.notification.contact
        if target.notification is not None
        else Contact.objects.get_or_create(
            email=target.address, defaults={"name": target.address.split("@")[0]}
        )[0]
    )
    now = timezone.now()
    first = contact_complaint_record(
        contact=contact, reason=complaint.reason(), at=now, inbound_mail_id=inbound_id
    )
    recipient_id = target.recipient.pk if target.recipient is not None else None
    complaint_received.send(
        sender=ComplaintReport, recipient_id=recipient_id, contact_id=contact.pk, at=now
    )
    log_event(
        logger,
        "complaint.applied",
        message_id=complaint.original_message_id,
        rcpt=contact.email,
        ref=target.ref,
        inbound=inbound_id,
        feedback_type=complaint.feedback_type,
        feedback_id=complaint.feedback_id,
        first=first,
    )
    return f"complaint.applied: {target.ref} {contact.email} ({complaint.feedback_type})"
