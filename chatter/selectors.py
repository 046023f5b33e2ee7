"""Reads of the chatter: who may see what, threads, followers, the inbox and the counters."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.paginator import Page, Paginator
from django.db import models
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects

from .models import (
    ChatterMixin,
    Contact,
    Follower,
    Message,
    Notification,
    NotificationKind,
    Subtype,
)

THREAD_PAGE_SIZE = 30
INBOX_PAGE_SIZE = 50


def user_contact_id(*, user: AbstractBaseUser) -> int | None:
    """The id of the user's contact, or None (no query once ``user.contact`` is cached)."""
    if not getattr(user, "is_authenticated", False):
        return None
    contact = getattr(user, "contact", None)
    return contact.pk if contact is not None else None


def _record_key(record: models.Model) -> tuple[ContentType, int]:
    return ContentType.objects.get_for_model(record), record.pk


def record_visible_to(*, user: AbstractBaseUser, record: models.Model) -> bool:
    """May this user see the record and its chatter? Staff see all; others what they follow."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff:
        return True
    contact_id = user_contact_id(user=user)
    if contact_id is None:
        return False
    ct, pk = _record_key(record)
    return Follower.objects.filter(content_type=ct, object_id=pk, contact_id=contact_id).exists()


def user_can_see_message(*, user: AbstractBaseUser, message: Message) -> bool:
    """A message is visible with its record; internal notes only to internal (staff) users."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff:
        return True
    if message.subtype.internal:
        return False
    record = message.record
    return record is not None and record_visible_to(user=user, record=record)


def chatter_record_get(*, content_type_id: int, object_id: int) -> models.Model | None:
    """The record a chatter URL points at, if its model has a chatter and the row exists."""
    try:
        ct = ContentType.objects.get_for_id(content_type_id)
    except ContentType.DoesNotExist:
        return None
    model = ct.model_class()
    if model is None or not issubclass(model, ChatterMixin):
        return None
    return model._default_manager.filter(pk=object_id).first()


def records_visible_qs(*, user: AbstractBaseUser, model: type[models.Model]) -> QuerySet:
    """The rows of a record model the user may see (for list pages)."""
    qs = model._default_manager.all()
    if user.is_staff:
        return qs
    contact_id = user_contact_id(user=user)
    if contact_id is None:
        return qs.none()
    followed = Follower.objects.filter(
        content_type=ContentType.objects.get_for_model(model), contact_id=contact_id
    ).values("object_id")
    return qs.filter(pk__in=followed)


def thread_page(
    *, record: models.Model, page: int | str | None = 1, include_internal: bool = True
) -> Page:
    """One page of a record's thread, newest first, with everything the partials display.

    The number of queries does not depend on the thread's length: one count, one page of messages
    with author and subtype, then one query each for attachments and notifications (with their
    contacts, which the delivery envelope lists).
    """
    messages = thread_messages(record=record, include_internal=include_internal)
    return Paginator(messages, THREAD_PAGE_SIZE).get_page(page)


def thread_messages(*, record: models.Model, include_internal: bool) -> QuerySet[Message]:
    """A record's messages, newest first, with what the message partials display prefetched
    (author, subtype, attachments, notifications with their contacts): the thread page and the
    live poll read the same rows the same way."""
    ct, pk = _record_key(record)
    messages = (
        Message.objects.filter(content_type=ct, object_id=pk)
        .select_related("author", "subtype")
        .prefetch_related(
            "attachments",
            Prefetch(
                "notifications",
                queryset=Notification.objects.select_related("contact").order_by("id"),
            ),
        )
        .order_by("-id")
    )
    if not include_internal:
        messages = messages.filter(subtype__internal=False)
    return messages


def followers_of(*, record: models.Model) -> list[Follower]:
    """The record's followers with their contacts and followed subtypes (two queries)."""
    ct, pk = _record_key(record)
    return list(
        Follower.objects.filter(content_type=ct, object_id=pk)
        .select_related("contact", "contact__user")
        .prefetch_related("subtypes")
        .order_by("contact__name", "id")
    )


def subtypes_all() -> list[Subtype]:
    return list(Subtype.objects.order_by("internal", "name"))


def contact_search(*, query: str, limit: int = 10, exclude_ids=()) -> list[Contact]:
    """Contacts whose name or email contains the query (case-insensitive), best first."""
    query = (query or "").strip()
    if not query:
        return []
    qs = Contact.objects.filter(Q(name__icontains=query) | Q(email__icontains=query))
    if exclude_ids:
        qs = qs.exclude(pk__in=list(exclude_ids))
    return list(qs.select_related("user").order_by("name", "id")[:limit])


def inbox_page(*, user: AbstractBaseUser, page: int | str | None = 1, unread_only: bool = True):
    """The user's inbox notifications, newest first, with the message, author and record."""
    contact_id = user_contact_id(user=user)
    qs = Notification.objects.filter(contact_id=contact_id, kind=NotificationKind.INBOX)
    if contact_id is None:
        qs = qs.none()
    if unread_only:
        qs = qs.filter(is_read=False)
    qs = qs.select_related(
        "message", "message__author", "message__subtype", "message__content_type"
    ).order_by("-message_id", "-id")
    result = Paginator(qs, INBOX_PAGE_SIZE).get_page(page)
    # The record of each message, fetched per content type (not per notification).
    prefetch_related_objects([n.message for n in result.object_list], "record")
    return result


def topbar_counters(*, user: AbstractBaseUser) -> dict:
    """Unread inbox notifications and messages with delivery failures (two queries).

    The failure count means: messages with at least one ``exception`` or ``bounce``
    notification, the user's own messages unless the user is staff.
    """
    contact_id = user_contact_id(user=user)
    unread = 0
    if contact_id:
        unread = Notification.objects.filter(
            contact_id=contact_id, kind=NotificationKind.INBOX, is_read=False
        ).count()
    from .failures import failure_count

    return {"inbox_unread": unread, "failure_count": failure_count(user=user)}


def message_recipients(
    *,
    content_type: ContentType,
    object_id: int,
    subtype: Subtype,
    mentions: Iterable[Contact] = (),
    author: Contact | None,
) -> list[Contact]:
    """Who is notified of a post on a record: the public rule of every chatter post.

    Followers of the record subscribed to ``subtype``, plus the ``mentions``, minus the
    ``author`` (nobody is told about their own post); on an internal subtype (a note) only
    internal contacts remain, so a customer never receives a note. Used by
    ``chatter.services.message_post`` and by the inbound gateway, which notifies after the
    mail's attachments are stored. One query for the followers whatever their number;
    mentions are already loaded.
    """
    followers = Contact.objects.filter(
        follows__content_type=content_type,
        follows__object_id=object_id,
        follows__subtypes=subtype,
    ).select_related("user")
    by_id: dict[int, Contact] = {c.pk: c for c in followers}
    for contact in mentions:
        by_id.setdefault(contact.pk, contact)
    if author is not None:
        by_id.pop(author.pk, None)
    recipients = list(by_id.values())
    if subtype.internal:
        recipients = [c for c in recipients if c.is_internal]
    return recipients
