"""Bodies of received mail already posted, sanitised again from their stored source."""

from chatter.models import Message

from .models import InboundMail
from .services import inbound_body


def inbound_bodies_rebuild(*, batch_size: int = 200) -> int:
    """Rebuild every posted mail's shown body with today's sanitiser; returns how many.

    A posted body is sanitised once and stored; when the sanitiser's rules get stricter (a
    spelling of a remote image that an older rule let through), bodies stored before keep what
    they had until rebuilt from the ``.eml`` kept with them.
    """
    rows = (
        InboundMail.objects.filter(chatter_message__isnull=False)
        .only("pk", "raw", "received_at", "remote_images", "chatter_message_id")
        .order_by("pk")
    )
    count = 0
    for row in rows.iterator(chunk_size=batch_size):
        html, blocked, _ = inbound_body(inbound_mail=row)
        Message.objects.filter(pk=row.chatter_message_id).update(body=html)
        if row.remote_images != blocked:
            InboundMail.objects.filter(pk=row.pk).update(remote_images=blocked)
        count += 1
    return count
