"""Reads for the pages of inbound mail."""

from dataclasses import dataclass

from django.core.cache import cache

from .models import InboundMail
from .services import inbound_body

# Bump when the sanitiser's output changes, so cached bodies are built again.
BODY_CACHE_VERSION = 2
BODY_CACHE_SECONDS = 3600


@dataclass(frozen=True)
class ShownAttachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ShownBody:
    html: str  # safe HTML
    remote_images_blocked: bool
    attachments: list[ShownAttachment]


def inbound_body_shown(*, inbound_mail: InboundMail, show_images: bool) -> ShownBody:
    """The body of a received mail as its page shows it, sanitised once, not on every view.

    A posted mail's sanitised body is stored on its chatter message (with images blocked) and
    its files as attachments: that is what the page shows. Otherwise (a mail that was not posted,
    or remote images asked for) the body is sanitised once and cached.
    """
    message = inbound_mail.chatter_message
    if message is not None and not show_images:
        return ShownBody(
            html=message.body,
            remote_images_blocked=inbound_mail.remote_images,
            attachments=[
                ShownAttachment(a.filename, a.content_type, a.size)
                for a in message.attachments.all()
            ],
        )
    # received_at too: a key must never name another row that got the same id (a restored backup).
    received = inbound_mail.received_at.timestamp() if inbound_mail.received_at else 0
    key = f"inbound-body:{BODY_CACHE_VERSION}:{inbound_mail.pk}:{received}:{int(show_images)}"
    shown = cache.get(key)
    if shown is None:
        html, blocked, parts = inbound_body(
            inbound_mail=inbound_mail, allow_remote_images=show_images
        )
        shown = ShownBody(
            html=html,
            remote_images_blocked=blocked,
            attachments=[
                ShownAttachment(p.filename, p.content_type, len(p.content)) for p in parts
            ],
        )
        cache.set(key, shown, BODY_CACHE_SECONDS)
    return shown
