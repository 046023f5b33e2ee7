"""How a chatter message looks as an email (subject, sender, bodies, threading headers)."""

from django.conf import settings
from django.template.loader import render_to_string

from outbox.mime import address_text

from .html_text import html_to_text
from .models import Message, MessageKind, new_message_id
from .reply_address import ReplyRef, reply_address


def _catchall_address() -> str:
    from inbound.models import AliasDomain

    domain = AliasDomain.objects.filter(domain=settings.MAILHUB_MAIL_DOMAIN).first()
    return domain.catchall_address if domain else f"catchall@{settings.MAILHUB_MAIL_DOMAIN}"


def notification_threading(*, message: Message) -> dict:
    """Message-ID, In-Reply-To and References of the mail that carries ``message``.

    A message posted here goes out under its own Message-ID (ours). A message that came in by
    mail carries the id its sender chose: the notification never reuses it (a stranger's id
    is not ours to send, RFC 5322 §3.6.4 wants it unique to one message); it gets one of ours
    and threads under the original as a reply would, so replies to it still find the record
    through References.
    """
    if message.kind != MessageKind.EMAIL:
        # What the message answers; never its own id (References names the parents only).
        return {
            "message_id": message.message_id,
            "references": message.references,
            "in_reply_to": message.in_reply_to,
        }
    return {
        "message_id": new_message_id(),
        "references": " ".join(filter(None, [message.references, message.message_id])),
        "in_reply_to": message.message_id,
    }


def notification_reply_to(*, message_id: int, notification_id: int) -> str:
    """The Reply-To of one recipient's copy: a signed address naming the thread and recipient,
    so the reply routes even when a relay rewrites our Message-ID and drops References."""
    return reply_address(
        ref=ReplyRef(message_id=message_id, notification_id=notification_id),
        domain=settings.MAILHUB_MAIL_DOMAIN,
    )


def notification_mail_content(*, message: Message) -> dict:
    """The parts every recipient's copy of a message shares (built once per post)."""
    record = message.record
    title = getattr(record, "chatter_title", str(record))
    author_name = message.author.name if message.author else "MailHub"
    context = {
        "message": message,
        "record": record,
        "title": title,
        "base_url": settings.MAILHUB_BASE_URL,
    }
    body_html = render_to_string("chatter/email/notification.html", context)
    body_text = render_to_string(
        "chatter/email/notification.txt",
        {**context, "body_text": html_to_text(message.body)},
    )
    return {
        # The author's name, our notification address (odoo-behaviour §9.3: encapsulated sender).
        "from_addr": address_text(author_name, settings.MAILHUB_DEFAULT_FROM),
        # The copies carry their own (``notification_reply_to``); this is the fallback.
        "reply_to": _catchall_address(),
        "subject": message.subject or title,
        "body_html": body_html,
        "body_text": body_text,
        **notification_threading(message=message),
        # The files posted with the message (chatter.Attachment rows), for the MIME builder.
        "attachments": list(message.attachments.all()),
    }
