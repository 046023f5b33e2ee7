"""Support export: the ``.eml`` of a mail and a plain-text bundle of its delivery history.

The seed's "Information for Support" asks for the original mail as ``.eml`` and for what
happened to it. Inbound mail is exported byte for byte as the listener stored it; outbound mail
as the MIME that was sent when the outbox kept it, else rebuilt from the queue row (or, for an
auto-deleted notification mail, from the chatter message) with a header saying so.
"""

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.utils import timezone

from chatter.models import Message, Notification
from inbound.models import InboundMail
from outbox.mime import with_envelope
from outbox.models import MailAttempt, MailRecipient, OutgoingMail, RecipientStatus
from outbox.services import copy_reply_to
from outbox.verp import recipient_bounce_address

KINDS = ("message", "notification", "mail", "inbound")
REBUILT_HEADER = "X-MailHub-Rebuilt"
LOG_LINES_LIMIT = 200


@dataclass
class SupportCase:
    """Everything known about one mail, gathered from whichever object support started from."""

    kind: str
    pk: int
    message: Message | None = None
    notification: Notification | None = None
    mails: list[OutgoingMail] = field(default_factory=list)
    inbound: list[InboundMail] = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        ids = [m.message_id for m in self.mails] + [i.message_id for i in self.inbound]
        if self.message:
            ids.append(self.message.message_id)
        return list(dict.fromkeys(i for i in ids if i))

    @property
    def label(self) -> str:
        return f"{self.kind} {self.pk}"


def support_case(*, kind: str, pk: int) -> SupportCase:
    """Gather the objects around ``kind``/``pk``; Http404 when it does not exist."""
    case = SupportCase(kind=kind, pk=pk)
    mails = OutgoingMail.objects.select_related("server")
    if kind == "message":
        case.message = _get(Message.objects.select_related("author", "subtype"), pk)
        case.mails = list(mails.filter(chatter_message=case.message).order_by("id"))
        case.inbound = list(InboundMail.objects.filter(chatter_message=case.message))
    elif kind == "notification":
        case.notification = _get(Notification.objects.select_related("message", "contact"), pk)
        case.message = case.notification.message
        case.mails = list(mails.filter(pk=case.notification.mail_id))
    elif kind == "mail":
        mail = _get(mails.select_related("chatter_message"), pk)
        case.mails = [mail]
        case.message = mail.chatter_message
    elif kind == "inbound":
        inbound = _get(InboundMail.objects.select_related("chatter_message"), pk)
        case.inbound = [inbound]
        case.message = inbound.chatter_message
    else:
        raise Http404(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    return case


def _get(queryset, pk: int):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(f"{queryset.model._meta.verbose_name} {pk} does not exist (deleted?).")
    return obj


# --- .eml ---------------------------------------------------------------------------------------


def case_eml(case: SupportCase) -> tuple[bytes, str]:
    """(bytes, filename) of the mail support should look at first."""
    if case.inbound:
        inbound = case.inbound[0]
        return bytes(inbound.raw), f"inbound-{inbound.pk}.eml"
    if case.mails:
        mail = case.mails[0]
        return mail_eml(mail), f"mail-{mail.pk}.eml"
    if case.message:
        return message_eml(case.message, case.notification), f"message-{case.message.pk}.eml"
    raise Http404("Nothing to export.")


def mail_eml(mail: OutgoingMail, recipient: MailRecipient | None = None) -> bytes:
    """The bytes that left for one recipient (``recipient``, else the first that failed, else
    the first): the stored MIME with that copy's To and Reply-To in front, as the outbox sent it
    (``outbox.mime.with_envelope``). Rebuilt from the queue row when nothing was stored."""
    if mail.mime:
        common = bytes(mail.mime)
        if recipient is None:
            rows = list(mail.recipients.order_by("id"))
            failed = [
                r for r in rows if r.status in (RecipientStatus.FAILED, RecipientStatus.BOUNCED)
            ]
            recipient = (failed or rows or [None])[0]
        if recipient is None or common.startswith(b"Return-Path:"):
            return common
        sender = recipient_bounce_address(
            notification_id=recipient.notification_id, recipient_id=recipient.pk
        )
        reply_to = copy_reply_to(mail, recipient) if mail.chatter_message_id else ""
        return with_envelope(common, sender=sender, recipient=recipient.address, reply_to=reply_to)
    recipients = list(mail.recipients.values_list("address", flat=True))
    msg = _build(
        message_id=mail.message_id,
        from_addr=mail.from_addr,
        to=recipients,
        reply_to=mail.reply_to,
        subject=mail.subject,
        date=mail.sent_at or mail.created_at,
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        text=mail.body_text,
        html=mail.body_html,
        extra=mail.headers or {},
        system=mail.system,
    )
    msg[REBUILT_HEADER] = "from the queue row; the MIME as sent was not stored"
    return msg.as_bytes()


def message_eml(message: Message, notification: Notification | None = None) -> bytes:
    """A chatter message whose mail was auto-deleted after sending: rebuilt from its content."""
    from chatter.rendering import notification_mail_content

    content = notification_mail_content(message=message)
    if notification is not None:
        to = [notification.contact.email]
    else:
        to = list(
            message.notifications.filter(kind="email").values_list("contact__email", flat=True)
        )
    msg = _build(
        message_id=message.message_id,
        from_addr=content["from_addr"],
        to=to,
        reply_to=content["reply_to"],
        subject=content["subject"],
        date=message.created_at,
        in_reply_to=content["in_reply_to"],
        references=content["references"],
        text=content["body_text"],
        html=content["body_html"],
        extra={},
        system=False,
    )
    msg[REBUILT_HEADER] = "from the chatter message; the mail was deleted after sending"
    return msg.as_bytes()


def _build(
    *,
    message_id: str,
    from_addr: str,
    to: list[str],
    reply_to: str,
    subject: str,
    date: dt.datetime,
    in_reply_to: str,
    references: str,
    text: str,
    html: str,
    extra: dict,
    system: bool,
) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id or make_msgid(domain=settings.MAILHUB_MAIL_DOMAIN)
    msg["Date"] = format_datetime(date or timezone.now())
    msg["From"] = from_addr
    if to:
        msg["To"] = ", ".join(to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    if system:
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    for name, value in extra.items():
        if name.lower() not in {k.lower() for k in msg.keys()}:
            msg[name] = str(value)
    msg.set_content(text or "")
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


# --- bundle -------------------------------------------------------------------------------------


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in (text or "").splitlines()) or prefix + "-"


def case_bundle(case: SupportCase, *, log_dir: Path | None = None) -> str:
    """The support bundle: what the mail is, its flow, every attempt and outcome, log lines."""
    out: list[str] = []
    add = out.append
    add("MailHub support bundle")
    add(f"Generated: {_when(timezone.now())}")
    add(f"Exported from: {case.label}")
    add(f"Message-IDs: {' '.join(case.message_ids) or '-'}")
    add("")
    add("== Flow")
    if case.inbound:
        add("Incoming: received by the MailHub listener (the .eml is the raw source as received).")
    if case.mails:
        add("Outgoing: sent by MailHub through the relay named below.")
    elif case.message and not case.inbound:
        add(
            "Outgoing: the mail was deleted after sending (auto-delete); its content is the "
            "chatter message and its result the notifications below."
        )
    if case.message and case.message.in_reply_to:
        add(f"A reply to: {case.message.in_reply_to}")
    msg = case.message
    if msg is not None:
        add("")
        add("== Chatter message")
        add(f"Record: {msg.content_type.app_label}.{msg.content_type.model} #{msg.object_id}")
        add(f"Subject: {msg.subject or '-'}")
        add(f"Author: {msg.author or '-'}")
        add(f"Kind: {msg.get_kind_display()}  Subtype: {msg.subtype}")
        add(f"Posted: {_when(msg.created_at)}")
        add(f"Message-ID: {msg.message_id}")
        notifications = (
            [case.notification]
            if case.notification
            else list(msg.notifications.select_related("contact").order_by("id"))
        )
        add("")
        add("== Notifications")
        if not notifications:
            add("(none)")
        for n in notifications:
            add(f"- {n.contact} [{n.get_kind_display()}] status={n.status}")
            if n.failure_type:
                add(f"    failure: {n.get_failure_type_display()} ({n.failure_type})")
            if n.failure_reason:
                add(_indent(n.failure_reason))
    add("")
    add("== Outgoing mail")
    if not case.mails:
        add("(none kept in the queue)")
    attempts = {
        mail_id: [] for mail_id in (m.pk for m in case.mails)
    }  # one query for all attempts, one for all recipients
    for a in MailAttempt.objects.filter(mail__in=case.mails).order_by("at", "id"):
        attempts[a.mail_id].append(a)
    recipients: dict[int, list[MailRecipient]] = {m.pk: [] for m in case.mails}
    for r in MailRecipient.objects.filter(mail__in=case.mails).order_by("id"):
        recipients[r.mail_id].append(r)
    for mail in case.mails:
        add(f"Mail {mail.pk}: {mail.get_state_display()} ({mail.state})")
        add(f"  Message-ID: {mail.message_id}")
        add(f"  From: {mail.from_addr}  Subject: {mail.subject or '-'}")
        add(f"  Server: {mail.server or 'default relay'}  Attempts: {mail.attempts}")
        add(f"  Created: {_when(mail.created_at)}  Sent: {_when(mail.sent_at)}")
        add(f"  Next attempt: {_when(mail.next_attempt_at)}")
        if mail.failure_type or mail.failure_reason:
            add(f"  Failure: {mail.failure_type or '-'}")
            add(_indent(mail.failure_reason))
        add("  Recipients:")
        for r in recipients[mail.pk] or []:
            code = r.code if r.code is not None else "-"
            add(f"    - {r.address}: {r.status} code={code}")
            if r.response:
                add(_indent(r.response, "        "))
        if not recipients[mail.pk]:
            add("    (none)")
        add("  Attempts:")
        for a in attempts[mail.pk]:
            code = a.code if a.code is not None else "-"
            head = (
                f"    - {_when(a.at)} via {a.server or '-'} rcpt={a.recipient or '*'} code={code}"
            )
            add(head + (f" {a.error_class}" if a.error_class else ""))
            if a.text:
                add(_indent(a.text, "        "))
        if not attempts[mail.pk]:
            add("    (none)")
    if case.inbound:
        add("")
        add("== Inbound mail")
        for i in case.inbound:
            add(f"Inbound {i.pk}: received {_when(i.received_at)} from {i.peer or '-'}")
            add(f"  MAIL FROM: {i.mail_from or '<>'}  RCPT TO: {i.rcpt_to}")
            add(f"  Message-ID: {i.message_id or '-'}  Subject: {i.subject or '-'}")
            add(f"  Decision: {i.decision or '-'} code={i.code or '-'}")
            if i.reason:
                add(_indent(i.reason))
    add("")
    add("== Log lines (mailhub.log and mailhub.log.1)")
    lines = log_lines(case.message_ids, log_dir=log_dir or Path(settings.LOG_DIR))
    out.extend(lines or ["(none found; older days are in the dated .gz files, see zgrep)"])
    add("")
    add("== For support, please also say")
    add("- Is it a generic issue or specific to one use case? Which one?")
    add("- Did any mail setting change recently (relay, domain, DNS records)?")
    add("- An example of a mail of the same kind that worked, if there is one.")
    return "\n".join(out) + "\n"


def log_lines(message_ids: list[str], *, log_dir: Path) -> list[str]:
    """Lines of the two plain log files mentioning one of the Message-IDs (bounded)."""
    if not message_ids:
        return []
    found: list[str] = []
    for name in ("mailhub.log.1", "mailhub.log"):
        path = log_dir / name
        if not path.exists():
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if any(mid in line for mid in message_ids):
                    found.append(line.rstrip("\n"))
                    if len(found) >= LOG_LINES_LIMIT:
                        return found
    return found


def cases_for_message_id(message_id: str) -> list[tuple[str, int, str]]:
    """(kind, pk, description) of everything carrying this Message-ID (search box)."""
    value = message_id.strip()
    if not value:
        return []
    if not value.startswith("<"):
        value = f"<{value}>"
    # Recipient copies carry a ".N" suffix on the chatter message's token (outbox.services).
    local, _, domain = value.strip("<>").partition("@")
    base_local = local.rsplit(".", 1)[0] if "." in local else local
    base = f"<{base_local}@{domain}>"
    found: list[tuple[str, int, str]] = []
    for m in Message.objects.filter(message_id__in={value, base}):
        found.append(("message", m.pk, f"Chatter message: {m.subject or '(no subject)'}"))
    for mail in OutgoingMail.objects.filter(message_id=value):
        found.append(("mail", mail.pk, f"Queue entry ({mail.get_state_display()}): {mail.subject}"))
    for i in InboundMail.objects.filter(message_id=value):
        found.append(("inbound", i.pk, f"Inbound mail to {i.rcpt_to}: {i.subject}"))
    return found
