"""The open record page's live update (/chatter/<ct>/<pk>/live/): what it answers, who to,
and a fixed number of queries whatever the thread's length and the page's messages."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chatter.models import Contact, Message, Notification, NotificationStatus
from chatter.services import contact_for_user, follower_add, subtype_get
from tests.support.chatter import ContactFactory, TicketFactory, UserFactory
from tests.support.envelope import message_with_statuses

pytestmark = pytest.mark.django_db


def _live(client, ticket, **params):
    ct = ContentType.objects.get_for_model(ticket).pk
    return client.get(f"/chatter/{ct}/{ticket.pk}/live/", params)


def _post(ticket, *, author=None, internal=False, body="<p>reply</p>") -> Message:
    return Message.objects.create(
        content_type=ContentType.objects.get_for_model(ticket),
        object_id=ticket.pk,
        author=author,
        subtype=subtype_get(code="note" if internal else "discussion"),
        body=body,
    )


def test_live_update_brings_new_messages_envelopes_and_the_counter(client, staff_user):
    client.force_login(staff_user)
    ticket = TicketFactory()
    nobody = ContactFactory(name="Nobody", email="nobody@reject.test")
    mine = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={nobody: NotificationStatus.READY},
    )
    data = _live(client, ticket, after=mine.pk, ids=mine.pk).json()
    assert data["messages"] == [] and data["failure_count"] == 0
    assert 'data-state="pending"' in data["envelopes"][str(mine.pk)]

    Notification.objects.filter(message=mine).update(status=NotificationStatus.EXCEPTION)
    reply = _post(ticket, author=nobody, body="<p>Thanks, it works</p>")
    data = _live(client, ticket, after=mine.pk, ids=mine.pk).json()
    assert [m["id"] for m in data["messages"]] == [reply.pk]
    assert "Thanks, it works" in data["messages"][0]["html"]
    assert f'id="message-{reply.pk}"' in data["messages"][0]["html"]
    assert 'data-state="failed"' in data["envelopes"][str(mine.pk)]
    assert data["failure_count"] == 1

    # An older thread page (no ``after``) gets envelopes but no new messages.
    assert _live(client, ticket, ids=mine.pk).json()["messages"] == []


def test_customers_get_no_notes_and_strangers_a_404(client):
    ticket = TicketFactory()
    carla = UserFactory(username="carla", email="carla@customer.test")
    follower_add(record=ticket, contact=contact_for_user(user=carla))
    first = _post(ticket)
    _post(ticket, internal=True, body="<p>internal</p>")
    public = _post(ticket, body="<p>public</p>")
    client.force_login(carla)
    data = _live(client, ticket, after=first.pk).json()
    assert [m["id"] for m in data["messages"]] == [public.pk]

    stranger = Client()
    stranger.force_login(UserFactory(username="eve", email="eve@customer.test"))
    assert _live(stranger, ticket, after=0).status_code == 404


def test_one_poll_costs_the_same_whatever_the_thread_and_the_page(client, staff_user):
    client.force_login(staff_user)
    author = contact_for_user(user=staff_user)

    def poll_queries(messages: int, recipients: int) -> int:
        ticket = TicketFactory()
        contacts = Contact.objects.bulk_create(
            [
                Contact(name=f"r{messages}-{i}", email=f"r{messages}-{i}@poll.test")
                for i in range(recipients)
            ]
        )
        shown = [
            message_with_statuses(
                record=ticket, author=author, statuses={c: "sent" for c in contacts}
            ).pk
            for _ in range(messages)
        ]
        for _ in range(messages):  # new since the page loaded
            _post(ticket, author=contacts[0])
        ids = ",".join(map(str, shown))
        _live(client, ticket, after=shown[-1], ids=ids)  # warm per-process caches
        with CaptureQueriesContext(connection) as queries:
            response = _live(client, ticket, after=shown[-1], ids=ids)
        assert len(response.json()["messages"]) == messages
        return len(queries)

    small, large = poll_queries(2, 1), poll_queries(25, 4)
    assert small == large, f"2 messages: {small} queries; 25 messages × 4: {large}"
    assert small <= 12, small


def test_a_cancelled_envelope_does_not_say_delivered(client, staff_user):
    client.force_login(staff_user)
    ticket = TicketFactory()
    alice = ContactFactory(name="Alice", email="alice@customer.test")
    nobody = ContactFactory(name="Nobody", email="nobody@reject.test")
    author = contact_for_user(user=staff_user)
    ignored = message_with_statuses(
        record=ticket, author=author, statuses={nobody: NotificationStatus.CANCELED}
    )
    mixed = message_with_statuses(
        record=ticket,
        author=author,
        statuses={alice: NotificationStatus.SENT, nobody: NotificationStatus.CANCELED},
    )
    data = _live(client, ticket, ids=f"{ignored.pk},{mixed.pk}").json()["envelopes"]
    assert 'title="Not sent: cancelled"' in data[str(ignored.pk)]
    assert "Delivered to the mail server for 1; 1 cancelled (not sent)" in data[str(mixed.pk)]
