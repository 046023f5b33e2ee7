"""Envelope fixtures: messages whose email notifications are in a chosen delivery state.

The states are written through the model, as the outbox leaves them, so the UI can be tested
without sending mail; the end-to-end browser tests get theirs from a real worker and relay.
"""

from django.contrib.contenttypes.models import ContentType

from chatter.models import (
    Contact,
    FailureType,
    Message,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from chatter.services import follower_add, subtype_get

REFUSED = "550 5.1.1 <{addr}>: mailbox unavailable"


def message_with_statuses(
    *,
    record,
    author: Contact | None,
    statuses: dict[Contact, str],
    subject: str = "Your invoice",
    body: str = "<p>Please find your invoice attached.</p>",
) -> Message:
    """A Discussions message on ``record`` with one email notification per contact and status.

    Failed ones (``exception``/``bounce``) carry the relay's refusal as their reason.
    """
    message = Message.objects.create(
        content_type=ContentType.objects.get_for_model(record),
        object_id=record.pk,
        author=author,
        subtype=subtype_get(code="discussion"),
        subject=subject,
        body=body,
    )
    if author is not None:
        follower_add(record=record, contact=author, ignore_existing=True)
    rows = []
    for contact, status in statuses.items():
        failed = status in (NotificationStatus.EXCEPTION, NotificationStatus.BOUNCE)
        rows.append(
            Notification(
                message=message,
                contact=contact,
                kind=NotificationKind.EMAIL,
                status=status,
                is_read=True,
                failure_type=(
                    (
                        FailureType.BOUNCE
                        if status == NotificationStatus.BOUNCE
                        else FailureType.SMTP_REFUSED
                    )
                    if failed
                    else ""
                ),
                failure_reason=REFUSED.format(addr=contact.email) if failed else "",
            )
        )
    Notification.objects.bulk_create(rows)
    return message
