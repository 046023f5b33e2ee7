"""Hot paths whose cost must not grow: fan-out to N followers, and the record page's thread."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatter.models import Message, Notification, Subtype
from chatter.selectors import thread_page
from chatter.services import contact_for_user, message_post
from outbox.models import MailRecipient
from tests.support.chatter import TicketFactory, followers_bulk_create

pytestmark = pytest.mark.django_db


def _post_queries(followers: int) -> int:
    ticket = TicketFactory()
    followers_bulk_create(record=ticket, count=followers, prefix=f"n{followers}-")
    with CaptureQueriesContext(connection) as queries:
        message = message_post(record=ticket, author=None, body="<p>fan-out</p>", subject="Hi")
    assert Notification.objects.filter(message=message).count() == followers
    assert MailRecipient.objects.filter(mail__chatter_message=message).count() == followers
    return len(queries)


def test_fan_out_query_count_does_not_grow_with_followers():
    small, large = _post_queries(10), _post_queries(1000)
    assert small == large, f"10 followers: {small} queries, 1,000 followers: {large}"


def _messages_bulk(ticket, count: int, author) -> None:
    ct = ContentType.objects.get_for_model(ticket)
    subtype = Subtype.objects.get(code=Subtype.DISCUSSION)
    Message.objects.bulk_create(
        [
            Message(
                content_type=ct,
                object_id=ticket.pk,
                author=author,
                subtype=subtype,
                body=f"<p>m{i}</p>",
            )
            for i in range(count)
        ]
    )
    # Every message carries notifications and an attachment-free body like a real thread.
    notifications = [
        Notification(message=m, contact=author, kind="email", status="sent")
        for m in Message.objects.filter(object_id=ticket.pk, content_type=ct)
    ]
    Notification.objects.bulk_create(notifications)


def _page_queries(client, staff_user, count: int) -> tuple[int, str]:
    ticket = TicketFactory()
    _messages_bulk(ticket, count, author=contact_for_user(user=staff_user))
    followers_bulk_create(record=ticket, count=5, prefix=f"p{count}-")
    url = ticket.get_absolute_url()
    client.get(url)  # warm caches that are per process (content types), not per page
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_record_page_query_count_does_not_grow_with_the_thread(client, staff_user):
    client.force_login(staff_user)
    small, small_page = _page_queries(client, staff_user, 20)
    large, large_page = _page_queries(client, staff_user, 2000)
    assert small == large, f"20 messages: {small} queries, 2,000 messages: {large}"
    # Newest first, paginated: the big thread shows its newest page and says how many there are.
    assert "m1999" in large_page and "m0<" not in large_page
    assert "2000 messages" in large_page


def test_thread_page_prefetches_everything_a_message_shows(staff_user):
    ticket = TicketFactory()
    _messages_bulk(ticket, 40, author=contact_for_user(user=staff_user))
    with CaptureQueriesContext(connection) as loading:
        messages = list(thread_page(record=ticket, page=1).object_list)
    # count, page of messages (with author and subtype), attachments, notifications (+contacts)
    assert len(loading) == 4
    with CaptureQueriesContext(connection) as queries:
        for message in messages:
            _ = message.author.name, message.subtype.internal, list(message.attachments.all())
            _ = [(n.status, n.contact.email) for n in message.notifications.all()]
    assert len(queries) == 0
    assert [m.body for m in messages][:2] == ["<p>m39</p>", "<p>m38</p>"]
