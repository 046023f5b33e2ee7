"""The bounce a fetched mail gets where the SMTP listener would have answered 5xx.

A listener's refusal is reported by the sender's own server; a fetched mail was already
accepted by the mailbox's provider, so nobody would tell the sender. We write the DSN ourselves
(RFC 3464 ``multipart/report``, RFC 6522), as Odoo does for fetched mail nobody takes, but
never to a null sender, to automatic mail (RFC 3834 §2) or to a mailing list (RFC 2369), so two
robots never bounce mail at each other.
"""

from dataclasses import dataclass
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import format_datetime, getaddresses

from django.conf import settings
from django.utils import timezone

from inbound.parsing import header_facts, header_section, normalize_address

LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "Mailing-List")


@dataclass(frozen=True)
class BounceTarget:
    """Who the DSN goes to, or why there is none (``address`` empty, ``skip`` says why)."""

    address: str
    skip: str = ""


def _headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(header_section(raw))


def bounce_target(*, raw: bytes) -> BounceTarget:
    """The envelope sender the mailbox recorded (``Return-Path``, RFC 5321 §4.4), else From."""
    headers = _headers(raw)
    return_path = str(headers.get("Return-Path", "") or "").strip()
    if return_path in ("<>", ""):
        if "Return-Path" in headers:
            return BounceTarget("", "null sender")
    facts = header_facts(raw, null_sender=return_path == "<>")
    address = normalize_address(return_path) if return_path else facts.from_email
    if not address:
        return BounceTarget("", "no sender address")
    if facts.automatic or facts.is_dsn or facts.from_mailer_daemon:
        return BounceTarget("", "automatic mail")
    if address.split("@")[0] in ("mailer-daemon", "postmaster"):
        return BounceTarget("", "automatic mail")
    if any(name in headers for name in LIST_HEADERS):
        return BounceTarget("", "mailing list")
    if not getaddresses([address])[0][1]:
        return BounceTarget("", "no sender address")
    return BounceTarget(address)


def mailer_daemon() -> str:
    return f"MAILER-DAEMON@{settings.MAILHUB_MAIL_DOMAIN}"


def dsn_build(*, raw: bytes, recipients: list[str], reply: str, message_id: str) -> bytes:
    """A ``failed`` DSN for ``recipients`` carrying the listener's ``reply`` (``550 5.1.1 …``)."""
    _, _, rest = reply.partition(" ")
    status = rest.split(" ", 1)[0] if rest[:1] in "245" and "." in rest[:6] else "5.0.0"
    now = timezone.now()
    report = MIMEMultipart("report", report_type="delivery-status")  # RFC 6522 §3
    report["From"] = f"Mail Delivery System <{mailer_daemon()}>"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(now)
    report["Message-ID"] = message_id
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no answer to this, please
    original_id = header_facts(raw).message_id
    report["In-Reply-To"] = original_id
    report["References"] = original_id
    who = ", ".join(recipients) or "(no address of ours)"
    report.attach(
        MIMEText(
            f"This is the mail system at {settings.MAILHUB_MAIL_DOMAIN}.\n\n"
            f"Your message could not be delivered to {who}:\n\n    {reply}\n\n"
            "The headers of your message are attached.\n",
            "plain",
            "utf-8",
        )
    )
    # message/delivery-status: one block for the message, one per recipient (RFC 3464 §2.1).
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {settings.MAILHUB_MAIL_DOMAIN}"
    per_message["Arrival-Date"] = format_datetime(now)
    blocks = [per_message]
    for address in recipients or [f"unknown@{settings.MAILHUB_MAIL_DOMAIN}"]:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {address}"
        block["Action"] = "failed"
        block["Status"] = status
        block["Diagnostic-Code"] = f"smtp; {reply}"
        blocks.append(block)
    status_part = Message()
    status_part["Content-Type"] = "message/delivery-status"
    status_part.set_payload(blocks)
    report.attach(status_part)
    # text/rfc822-headers: the headers only, the body stays with its sender (RFC 6522 §4).
    headers_part = Message()
    headers_part["Content-Type"] = "text/rfc822-headers"
    headers_part.set_payload(header_section(raw).decode("ascii", "replace"))
    report.attach(headers_part)
    return report.as_bytes(policy=SMTP)
