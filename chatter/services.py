"""Writes of the chatter: contacts, followers and posting messages."""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from .models import (
    Attachment,
    Contact,
    FailureType,
    Follower,
    Message,
    MessageKind,
    Notification,
    NotificationKind,
    NotificationPreference,
    NotificationStatus,
    Subtype,
    normalize_email,
)
from .selectors import message_recipients


class AlreadyFollowing(Exception):
    """A contact follows a record once."""


def contact_for_user(*, user: AbstractBaseUser) -> Contact:
    """The contact of a user, created on first use from the user's name and email."""
    try:
        return user.contact
    except Contact.DoesNotExist:
        pass
    email = normalize_email(user.email) or f"{user.get_username()}@users.invalid"
    contact, _ = Contact.objects.get_or_create(
        email=email, defaults={"name": user.get_full_name() or user.get_username()}
    )
    if contact.user_id is None:
        contact.user = user
        contact.save(update_fields=["user"])
    return contact


def contact_get_or_create(*, email: str, name: str = "") -> Contact:
    """The contact of an address, created (named after the address if no name) when new.

    Raises ``ValidationError`` when the address is not a valid email address.
    """
    email = normalize_email(email)
    validate_email(email)
    contact, _ = Contact.objects.get_or_create(
        email=email, defaults={"name": name or email.split("@")[0]}
    )
    return contact


# The standard subtypes (odoo-behaviour §3.1). Migration 0003 creates them; they are re-created
# on demand when missing (e.g. after a test database flush) so posting never fails for lack of one.
STANDARD_SUBTYPES = {
    Subtype.DISCUSSION: {"name": "Discussions", "internal": False, "default": True},
    Subtype.NOTE: {"name": "Note", "internal": True, "default": False},
}


def subtypes_ensure() -> None:
    """Create the standard subtypes that are missing (idempotent)."""
    for code, defaults in STANDARD_SUBTYPES.items():
        Subtype.objects.get_or_create(code=code, defaults=defaults)


def subtype_get(*, code: str) -> Subtype:
    try:
        return Subtype.objects.get(code=code)
    except Subtype.DoesNotExist:
        if code not in STANDARD_SUBTYPES:
            raise
        subtypes_ensure()
        return Subtype.objects.get(code=code)


def _record_key(record: models.Model) -> tuple[ContentType, int]:
    return ContentType.objects.get_for_model(record), record.pk


def follower_add(
    *,
    record: models.Model,
    contact: Contact,
    subtypes: Sequence[Subtype] | None = None,
    ignore_existing: bool = False,
) -> Follower | None:
    """Make a contact follow a record; default subtypes are those flagged ``default``."""
    ct, pk = _record_key(record)
    if subtypes is None:
        defaults = Subtype.objects.filter(default=True)
        if not contact.is_internal:
            # Customers get only public subtypes (odoo-behaviour §3.2, _add_default_followers).
            defaults = defaults.filter(internal=False)
        subtypes = list(defaults)
        if not subtypes and not Subtype.objects.exists():
            subtypes_ensure()
            subtypes = list(defaults.all())
    else:
        _check_subtypes(contact=contact, subtypes=subtypes)
    try:
        with transaction.atomic():
            follower = Follower.objects.create(content_type=ct, object_id=pk, contact=contact)
    except IntegrityError:
        if ignore_existing:
            return None
        raise AlreadyFollowing(f"{contact} already follows this record.") from None
    follower.subtypes.set(subtypes)
    return follower


def _check_subtypes(*, contact: Contact, subtypes: Sequence[Subtype]) -> None:
    if not contact.is_internal and any(s.internal for s in subtypes):
        raise ValidationError(
            f"{contact.name} is not an internal user and cannot follow internal notes; "
            "untick the internal subtypes."
        )


def follower_subtypes_set(*, follower: Follower, subtypes: Sequence[Subtype]) -> Follower:
    """Choose which kinds of messages a follower is notified of (none keeps them following)."""
    _check_subtypes(contact=follower.contact, subtypes=subtypes)
    follower.subtypes.set(subtypes)
    return follower


def follower_remove(*, record: models.Model, contact: Contact) -> bool:
    ct, pk = _record_key(record)
    deleted, _ = Follower.objects.filter(content_type=ct, object_id=pk, contact=contact).delete()
    return bool(deleted)


@transaction.atomic
def message_post(
    *,
    record: models.Model,
    author: Contact | None,
    body: str,
    subtype_code: str = Subtype.DISCUSSION,
    subject: str = "",
    kind: str = MessageKind.COMMENT,
    mentions: Sequence[Contact] = (),
    in_reply_to: str = "",
    references: str = "",
    message_id: str | None = None,
    notify: bool = True,
    attachments: Sequence[File] = (),
) -> Message:
    """Post on a record's chatter and notify its recipients, in bulk.

    ``body`` must already be safe HTML (see ``chatter.content``). Email notifications are handed
    to the outbox in one call; the mail leaves after the transaction commits.
    """
    ct, pk = _record_key(record)
    subtype = subtype_get(code=subtype_code)
    if not references and not in_reply_to:
        # Thread every message under the record's first message so mail clients group them.
        first = (
            Message.objects.filter(content_type=ct, object_id=pk)
            .order_by("id")
            .values_list("message_id", flat=True)
            .first()
        )
        if first:
            in_reply_to = first
            references = first
    fields = {}
    if message_id:
        fields["message_id"] = message_id
    message = Message.objects.create(
        content_type=ct,
        object_id=pk,
        author=author,
        subtype=subtype,
        kind=kind,
        subject=subject,
        body=body,
        in_reply_to=in_reply_to,
        references=references,
        **fields,
    )
    for upload in attachments:
        attachment_create(message=message, file=upload)
    if author is not None and kind != MessageKind.NOTIFICATION:
        # Odoo subscribes the author of every post but system notifications (odoo §3.2).
        follower_add(record=record, contact=author, ignore_existing=True)
    if notify:
        recipients = message_recipients(
            content_type=ct, object_id=pk, subtype=subtype, mentions=mentions, author=author
        )
        notifications_create(message=message, recipients=recipients)
    return message


def notifications_create(
    *, message: Message, recipients: Sequence[Contact], automatic: bool = False
) -> list[Notification]:
    """One notification per recipient: inbox (sent at once) or email (ready, handed to outbox).

    ``automatic``: the message is an auto-reply or other automatic mail, so the mail about it
    says it is automatic too (RFC 3834 §5) and no responder answers it.
    """
    rows = []
    for contact in recipients:
        inbox = (
            contact.notification_preference == NotificationPreference.INBOX and contact.is_internal
        )
        notification = Notification(
            message=message,
            contact=contact,
            kind=NotificationKind.INBOX if inbox else NotificationKind.EMAIL,
            status=NotificationStatus.SENT if inbox else NotificationStatus.READY,
            is_read=not inbox,
        )
        if not inbox and contact.blacklisted:
            # Suppressed addresses get no mail; the reason shows in the delivery popover.
            notification.status = NotificationStatus.CANCELED
            notification.failure_type = FailureType.BLACKLISTED
            notification.failure_reason = "Blacklisted Address"
        rows.append(notification)
    Notification.objects.bulk_create(rows)
    emails = [
        n for n in rows if n.kind == NotificationKind.EMAIL and n.status == NotificationStatus.READY
    ]
    if emails:
        from outbox.services import mail_create_for_notifications

        mail_create_for_notifications(message=message, notifications=emails, automatic=automatic)
    return rows


def attachment_create(
    *,
    message: Message,
    file: File | None = None,
    filename: str = "",
    content: bytes | None = None,
    content_type: str = "",
    content_id: str = "",
) -> Attachment:
    """Store a file on a message: an upload (``file``) or raw bytes (``content`` + ``filename``)."""
    if file is None:
        if content is None:
            raise ValueError("attachment_create needs file= or content=")
        file = ContentFile(content, name=filename or "attachment")
    name = (filename or getattr(file, "name", "") or "attachment").rsplit("/", 1)[-1]
    attachment = Attachment(
        message=message,
        filename=name[:255],
        content_type=content_type
        or getattr(file, "content_type", None)
        or "application/octet-stream",
        size=file.size or 0,
        content_id=content_id,
    )
    # The stored name is not the user's: it only has to be unique; the download uses ``filename``.
    attachment.file.save("file", file, save=False)
    attachment.save()
    return attachment


def notification_mark_read(*, notification_id: int, contact: Contact) -> bool:
    """Mark one of the contact's inbox notifications read; False if it was not unread."""
    updated = Notification.objects.filter(
        pk=notification_id, contact=contact, kind=NotificationKind.INBOX, is_read=False
    ).update(is_read=True, read_at=timezone.now())
    return updated == 1


def notifications_mark_all_read(*, contact: Contact) -> int:
    """Mark every unread inbox notification of the contact read; returns how many changed."""
    return Notification.objects.filter(
        contact=contact, kind=NotificationKind.INBOX, is_read=False
    ).update(is_read=True, read_at=timezone.now())


def contact_preference_set(*, contact: Contact, preference: str) -> Contact:
    """Change how a user receives notifications; the model refuses the inbox to customers."""
    contact.notification_preference = preference
    contact.full_clean(exclude=["email", "name", "user"])
    contact.save(update_fields=["notification_preference"])
    return contact
