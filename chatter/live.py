"""What changed in an open record page since it loaded: new messages, envelopes, counters.

One poll of ``chatter.views.thread_live`` answers it with a fixed number of queries, whatever
the thread's length and however many messages the page shows: the new messages (at most one
thread page, with everything ``_message.html`` shows prefetched), the listed envelopes (two
queries for up to ``failures.ENVELOPES_MAX``), and the top bar's two counters.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Prefetch

from . import failures
from .models import Message, Notification
from .selectors import THREAD_PAGE_SIZE, topbar_counters


@dataclass
class ThreadUpdates:
    messages: list[Message] = field(default_factory=list)  # newest first
    envelopes: list[Message] = field(default_factory=list)
    counters: dict = field(default_factory=dict)


def thread_messages_after(
    *, record: models.Model, after_id: int, include_internal: bool
) -> list[Message]:
    """The record's messages newer than ``after_id`` (newest first, at most one thread page)."""
    ct = ContentType.objects.get_for_model(record)
    qs = (
        Message.objects.filter(content_type=ct, object_id=record.pk, pk__gt=after_id)
        .select_related("author", "subtype")
        .prefetch_related(
            "attachments",
            "inbound_sources",
            Prefetch(
                "notifications",
                queryset=Notification.objects.select_related("contact").order_by("id"),
            ),
        )
        .order_by("-id")
    )
    if not include_internal:
        qs = qs.filter(subtype__internal=False)
    return list(qs[:THREAD_PAGE_SIZE])


def thread_updates(
    *,
    user: AbstractBaseUser,
    record: models.Model,
    after_id: int | None,
    envelope_ids: Sequence[int],
) -> ThreadUpdates:
    """New messages after ``after_id`` (None: the page shows an older page, no new ones),
    the envelopes of ``envelope_ids`` and the counters, for a user who may see the record."""
    updates = ThreadUpdates()
    if after_id is not None:
        updates.messages = thread_messages_after(
            record=record, after_id=after_id, include_internal=bool(user.is_staff)
        )
        failures.envelopes_attach(messages=updates.messages, user=user)
    new_ids = {m.pk for m in updates.messages}
    updates.envelopes = failures.envelopes_for(
        user=user, message_ids=[i for i in envelope_ids if i not in new_ids]
    )
    updates.counters = topbar_counters(user=user)
    return updates
