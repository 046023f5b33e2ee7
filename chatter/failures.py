"""Delivery failures of chatter messages: the envelope, the Sending Failures dialog, the counter.

Reads (selectors) and writes (services) of one concern, kept apart from the rest of the chatter.

Who sees what: the author of a message (its ``author.user``) sees the delivery status of the
message and may act on its failures; staff see and act on every message; anybody else gets no
envelope and a 404 from the dialog and its actions, so a failure (and the recipients' addresses)
never leaks to another customer following the same record.

A failure is a notification in ``exception`` or ``bounce`` (odoo-behaviour §2.2). "Ignore all"
and toggled-off recipients become ``canceled``; toggled-on recipients are handed back to the
outbox (``outbox.services.notifications_resend``), which puts them in ``ready`` and sends a new
mail right after commit.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.db.models import Prefetch, prefetch_related_objects

from outbox.services import mails_close_ignored, notifications_resend

from .models import (
    FAILURE_STATUSES,
    Contact,
    Message,
    Notification,
    NotificationKind,
    NotificationStatus,
    normalize_email,
)
from .selectors import user_contact_id

# The polling endpoint answers for at most this many messages (a thread page holds 30).
ENVELOPES_MAX = 100
# The failures page lists at most this many failed notifications (newest messages first).
FAILURE_LIST_LIMIT = 500


# --- selectors ----------------------------------------------------------------------------------


def failures_visible(*, user: AbstractBaseUser, message: Message) -> bool:
    """May this user see the delivery status of the message and act on its failures?

    No query: ``message.author`` is loaded with the message and ``author.user_id`` is a column.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff:
        return True
    author = message.author
    return author is not None and author.user_id is not None and author.user_id == user.pk


@dataclass
class Envelope:
    """What the envelope of one message shows: its email recipients and their statuses."""

    message_id: int
    recipients: list[Notification] = field(default_factory=list)
    # Internal users see each recipient's address; a customer who wrote the message sees names
    # only: the other followers' addresses are not theirs to know.
    show_addresses: bool = True

    @property
    def failures(self) -> list[Notification]:
        return [n for n in self.recipients if n.status in FAILURE_STATUSES]

    @property
    def failed(self) -> bool:
        return any(n.status in FAILURE_STATUSES for n in self.recipients)

    @property
    def pending(self) -> bool:
        """A recipient still waits for the outbox: the page keeps polling."""
        return any(n.status == NotificationStatus.READY for n in self.recipients)

    @property
    def state(self) -> str:
        if self.failed:
            return "failed"
        return "pending" if self.pending else "done"

    @property
    def label(self) -> str:
        return "Delivery failure" if self.failed else "Delivery status"

    @property
    def summary(self) -> str:
        """The envelope's tooltip, in words."""
        if self.failed:
            count = len(self.failures)
            plural = "s" if count != 1 else ""
            return f"{count} recipient{plural} not reached: click to fix or resend"
        if self.pending:
            return "Sending…"
        sent = sum(n.status == NotificationStatus.SENT for n in self.recipients)
        canceled = len(self.recipients) - sent
        if not canceled:
            return "Delivered to the mail server" if sent else ""
        if not sent:
            return "Not sent: cancelled"
        return f"Delivered to the mail server for {sent}; {canceled} cancelled (not sent)"


# Anything shaped like an address (local@domain, with or without <>) in a relay's answer.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


def addresses_hidden(text: str) -> str:
    """``text`` with every email address replaced: what a customer may read of a relay's answer
    (``550 5.1.1 <bob@x.test>: mailbox unavailable`` names another follower)."""
    return _ADDRESS.sub("(address hidden)", text)


def reason_for(*, notification: Notification, show_addresses: bool) -> str:
    reason = notification.failure_reason
    return reason if show_addresses else addresses_hidden(reason)


def envelope_of(*, message: Message, show_addresses: bool = True) -> Envelope | None:
    """The envelope of a message whose notifications (with contacts) are prefetched, or None when
    no email notification exists (nothing was emailed: no envelope)."""
    recipients = [n for n in message.notifications.all() if n.kind == NotificationKind.EMAIL]
    if not recipients:
        return None
    for notification in recipients:
        notification.reason_shown = reason_for(
            notification=notification, show_addresses=show_addresses
        )
    return Envelope(message_id=message.pk, recipients=recipients, show_addresses=show_addresses)


def envelopes_attach(*, messages: Iterable[Message], user: AbstractBaseUser) -> None:
    """Set ``message.envelope`` (an ``Envelope`` or None) on loaded messages, without queries.

    The messages must come with ``author`` and ``notifications__contact`` prefetched, as
    ``chatter.selectors.thread_page`` loads them. Messages the user may not see the failures of
    get None, and show no envelope.
    """
    show_addresses = bool(user.is_staff)
    for message in messages:
        visible = failures_visible(user=user, message=message)
        message.envelope = (
            envelope_of(message=message, show_addresses=show_addresses) if visible else None
        )


def _notifications_prefetch() -> Prefetch:
    return Prefetch(
        "notifications",
        queryset=Notification.objects.select_related("contact").order_by("id"),
    )


def envelopes_for(*, user: AbstractBaseUser, message_ids: Sequence[int]) -> list[Message]:
    """The messages among ``message_ids`` the user may see the envelope of, envelopes attached.

    Two queries whatever the number of messages (the messages, then their notifications).
    """
    ids = list(dict.fromkeys(message_ids))[:ENVELOPES_MAX]
    if not ids or not getattr(user, "is_authenticated", False):
        return []
    qs = Message.objects.filter(pk__in=ids).select_related("author")
    if not user.is_staff:
        qs = qs.filter(author__user=user)
    messages = list(qs.prefetch_related(_notifications_prefetch()).order_by("-id"))
    envelopes_attach(messages=messages, user=user)
    return messages


def message_for_failures(*, user: AbstractBaseUser, message_id: int) -> Message | None:
    """The message if the user may open its Sending Failures dialog, else None (→ 404)."""
    message = (
        Message.objects.filter(pk=message_id)
        .select_related("author", "content_type")
        .prefetch_related(_notifications_prefetch())
        .first()
    )
    if message is None or not failures_visible(user=user, message=message):
        return None
    envelopes_attach(messages=[message], user=user)
    return message


def message_failure_lines(*, message: Message) -> list[Notification]:
    """The failed email notifications of the message: one dialog line each."""
    return [
        n
        for n in message.notifications.all()
        if n.kind == NotificationKind.EMAIL and n.status in FAILURE_STATUSES
    ]


def failure_reason_words(notification: Notification) -> str:
    """The failure type in words, as the dialog's line shows it (odoo's format_failure_reason)."""
    label = notification.get_failure_type_display() if notification.failure_type else ""
    if not label or notification.failure_type == "unknown":
        reason = notification.failure_reason.strip().splitlines()
        first = reason[0] if reason else ""
        return f"Unknown error: {first}" if first else "Unknown error"
    return label


def _failed_notifications(*, user: AbstractBaseUser) -> models.QuerySet:
    """Failed email notifications of the messages the user wrote (every message for staff)."""
    qs = Notification.objects.filter(kind=NotificationKind.EMAIL, status__in=FAILURE_STATUSES)
    if user.is_staff:
        return qs
    contact_id = user_contact_id(user=user)
    if contact_id is None:
        return qs.none()
    return qs.filter(message__author_id=contact_id)


def failure_count(*, user: AbstractBaseUser) -> int:
    """How many messages have failures the user can see (the top bar's counter; one query)."""
    return _failed_notifications(user=user).values("message_id").distinct().count()


@dataclass
class FailureGroup:
    """The failed messages of one record, as the failures page lists them."""

    record: models.Model | None
    content_type_id: int
    object_id: int
    messages: list[Message] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.record is None:
            return "Deleted record"
        return getattr(self.record, "chatter_title", str(self.record))

    @property
    def url(self) -> str:
        return self.record.get_absolute_url() if self.record is not None else ""


def failure_groups(*, user: AbstractBaseUser) -> list[FailureGroup]:
    """The user's messages with failures, grouped per record, the newest failure first.

    A fixed number of queries: the failed notifications' message ids, the messages with their
    notifications, then one query per record type for the records.
    """
    message_ids = list(
        _failed_notifications(user=user)
        .order_by("-message_id")
        .values_list("message_id", flat=True)
        .distinct()[:FAILURE_LIST_LIMIT]
    )
    messages = list(
        Message.objects.filter(pk__in=message_ids)
        .select_related("author", "content_type")
        .prefetch_related(_notifications_prefetch())
        .order_by("-id")
    )
    prefetch_related_objects(messages, "record")
    envelopes_attach(messages=messages, user=user)
    groups: dict[tuple[int, int], FailureGroup] = {}
    for message in messages:
        key = (message.content_type_id, message.object_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(
                record=message.record, content_type_id=key[0], object_id=key[1]
            )
        group.messages.append(message)
    return list(groups.values())


# --- services -----------------------------------------------------------------------------------


def _cancel(*, notification_ids: Iterable[int]) -> int:
    """Guarded update: only notifications still failing become ``canceled``; returns how many.

    A failed mail whose failures are all ignored now leaves the outbox's failure views (it keeps
    its history); Retry in the queue will not resend the ignored recipients.
    """
    ids = list(
        Notification.objects.filter(
            pk__in=list(notification_ids), kind=NotificationKind.EMAIL, status__in=FAILURE_STATUSES
        ).values_list("pk", flat=True)
    )
    if not ids:
        return 0
    count = Notification.objects.filter(pk__in=ids, status__in=FAILURE_STATUSES).update(
        status=NotificationStatus.CANCELED
    )
    mails_close_ignored(notification_ids=ids)
    return count


@transaction.atomic
def message_failures_ignore(*, message: Message) -> int:
    """ "Ignore all": every failed email notification of the message becomes ``canceled``.

    Nothing is sent; the envelope turns white. Returns how many notifications changed.
    """
    return _cancel(
        notification_ids=Notification.objects.filter(message=message).values_list("pk", flat=True)
    )


@transaction.atomic
def record_failures_ignore(*, user: AbstractBaseUser, content_type_id: int, object_id: int) -> int:
    """ "Ignore all" of one group of the failures page: the failures the user sees on a record."""
    ids = _failed_notifications(user=user).filter(
        message__content_type_id=content_type_id, message__object_id=object_id
    )
    return _cancel(notification_ids=ids.values_list("pk", flat=True))


@dataclass(frozen=True)
class ResendResult:
    resent: int
    canceled: int
    addresses_fixed: int


def _addresses_fix(*, lines: Sequence[Notification], addresses: Mapping[int, str]) -> int:
    """Write the corrected addresses to the contacts; ``ValidationError`` keyed by line id.

    A contact's address is unique: an address that belongs to another contact is refused with a
    message naming it, so the user can post to that contact instead of merging two people.
    """
    errors: dict[str, list[str]] = {}
    changes: list[tuple[Contact, str]] = []
    line_of = {line.contact_id: line.pk for line in lines}
    for line in lines:
        if line.pk not in addresses:
            continue
        email = normalize_email(addresses[line.pk])
        if email == line.contact.email:
            continue
        key = f"email-{line.pk}"
        try:
            validate_email(email)
        except ValidationError:
            errors[key] = [
                f"“{addresses[line.pk].strip() or '(empty)'}” is not a valid email address: "
                "type it as name@example.com."
            ]
            continue
        owner = Contact.objects.filter(email=email).exclude(pk=line.contact_id).first()
        if owner is not None:
            errors[key] = [
                f"{email} already belongs to the contact {owner.name}: "
                "correct the address, or post to that contact instead."
            ]
            continue
        changes.append((line.contact, email))
    if errors:
        raise ValidationError(errors)
    for contact, email in changes:
        contact.email = email
        try:
            with transaction.atomic():
                contact.save(update_fields=["email"])
        except IntegrityError:
            # Another request gave the address to another contact since the check above.
            raise ValidationError(
                {f"email-{line_of[contact.pk]}": [f"{email} was just given to another contact."]}
            ) from None
    return len(changes)


@transaction.atomic
def message_failures_resend(
    *,
    message: Message,
    resend_ids: Iterable[int],
    addresses: Mapping[int, str] | None = None,
) -> ResendResult:
    """ "Send & close" of the Sending Failures dialog.

    ``resend_ids`` are the lines toggled on (Try Again): their corrected addresses
    (``addresses``, by notification id) are written to the contacts, then the outbox puts the
    same notifications back to ``ready`` and sends a new mail after commit. Every other failed
    line is toggled off and becomes ``canceled``. Raises ``ValidationError`` (keys
    ``email-<notification id>``) when an address is invalid or taken; nothing changes then.
    """
    lines = list(
        Notification.objects.select_for_update()
        .filter(message=message, kind=NotificationKind.EMAIL, status__in=FAILURE_STATUSES)
        .select_related("contact")
        .order_by("id")
    )
    wanted = set(resend_ids)
    resend = [n for n in lines if n.pk in wanted]
    cancel = [n.pk for n in lines if n.pk not in wanted]
    fixed = _addresses_fix(lines=resend, addresses=addresses or {})
    canceled = _cancel(notification_ids=cancel)
    if resend:
        notifications_resend(notifications=resend)
    return ResendResult(resent=len(resend), canceled=canceled, addresses_fixed=fixed)
