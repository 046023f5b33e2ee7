"""The admin lists contacts, messages and records, and a record added there is followed."""

import pytest

from chatter.models import Follower
from chatter.services import follower_add, message_post
from records.models import Ticket
from tests.support.chatter import ContactFactory, TicketFactory

pytestmark = pytest.mark.django_db


def test_admin_changelists_render(admin_client):
    ticket = TicketFactory(title="Admin sees me")
    contact = ContactFactory(name="Listed Contact")
    follower_add(record=ticket, contact=contact)
    message_post(record=ticket, author=contact, body="<p>hello</p>", subject="Admin subject")
    pages = {
        "/admin/chatter/contact/?q=listed": "Listed Contact",
        "/admin/chatter/message/": "Message",
        "/admin/chatter/follower/": "Listed Contact",
        "/admin/chatter/notification/": "Notification",
        "/admin/records/ticket/": "Admin sees me",
        "/admin/records/quote/": "quote",
        "/admin/records/invoice/": "invoice",
    }
    for url, text in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert text.lower() in response.content.decode().lower(), url


def test_record_added_in_admin_is_followed_by_its_creator(admin_client, admin_user):
    response = admin_client.post(
        "/admin/records/ticket/add/", {"title": "From admin", "state": "new"}
    )
    assert response.status_code == 302
    ticket = Ticket.objects.get(title="From admin")
    assert ticket.created_by == admin_user
    assert Follower.objects.get(object_id=ticket.pk).contact.user == admin_user
