"""How a chatter message looks as an email (subject, sender, bodies, threading headers)."""

from email.utils import formataddr

import nh3
from django.conf import settings
from django.template.loader import render_to_string

from .models import Message
from .reply_address import ReplyRef, reply_address


def _catchall_address() -> str:
    from inbound.models import AliasDomain

    domain = AliasDomain.objects.filter(domain=settings.MAILHUB_MAIL_DOMAIN).first()
    return domain.catchall_address if domain else f"catchall@{settings.MAILHUB_MAIL_DOMAIN}"


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
        {**context, "body_text": nh3.clean(message.body, tags=set()).strip()},
    )
    return {
        # The author's name, our notification address (odoo-behaviour §9.3: encapsulated sender).
        "from_addr": formataddr((author_name, settings.MAILHUB_DEFAULT_FROM)),
        # The copies carry their own (``notification_reply_to``); this is the fallback.
        "reply_to": _catchall_address(),
        "subject": message.subject or title,
        "body_html": body_html,
        "body_text": body_text,
        "references": " ".join(filter(None, [message.references, message.message_id])).strip()
        if message.references
        else "",
        "in_reply_to": message.in_reply_to,
        # The files posted with the message (chatter.Attachment rows), for the MIME builder.
        "attachments": list(message.attachments.all()),
    }
