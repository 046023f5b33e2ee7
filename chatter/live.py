"""What changed in an open record page since it loaded: new messages, envelopes, counters.

One poll of ``chatter.views.thread_live`` answers it with a fixed number of queries, whatever
the thread's length and however many messages the page shows: the new messages (at most one
thread page, with everything ``_message.html`` shows prefetched), the listed envelopes (two
queries for up to ``failures.ENVELOPES_MAX``), and the top bar's two counters.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from . import failures
from .models import Message
from .selectors import THREAD_PAGE_SIZE, thread_messages, topbar_counters


@dataclass
class ThreadUpdates:
    messages: list[Message] = field(default_factory=list)  # newest first
    envelopes: list[Message] = field(default_factory=list)
    counters: dict = field(default_factory=dict)


def thread_messages_after(
    *, record: models.Model, after_id: int, include_internal: bool
) -> list[Message]:
    """The record's messages newer than ``after_id`` (newest first, at most one thread page)."""
    qs = thread_messages(record=record, include_internal=include_internal)
    return list(qs.filter(pk__gt=after_id).prefetch_related("inbound_sources")[:THREAD_PAGE_SIZE])


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
