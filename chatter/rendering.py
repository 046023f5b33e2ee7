"""How a chatter message looks as an email (subject, sender, bodies, threading headers)."""

from email.utils import formataddr

from django.conf import settings
from django.template.loader import render_to_string

from .html_text import html_to_text
from .models import Message


def _catchall_address() -> str:
    from inbound.models import AliasDomain

    domain = AliasDomain.objects.filter(domain=settings.MAILHUB_MAIL_DOMAIN).first()
    return domain.catchall_address if domain else f"catchall@{settings.MAILHUB_MAIL_DOMAIN}"


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
        "from_addr": formataddr((author_name, settings.MAILHUB_DEFAULT_FROM)),
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
