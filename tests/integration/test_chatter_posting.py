"""Posting on a record: who is notified, how, and what the outbox receives."""

import re

import pytest
from django.core.exceptions import ValidationError

from chatter.models import (
    Contact,
    FailureType,
    Follower,
    Message,
    Notification,
    NotificationKind,
    NotificationPreference,
    NotificationStatus,
    Subtype,
)
from chatter.services import (
    AlreadyFollowing,
    contact_for_user,
    contact_preference_set,
    follower_add,
    follower_subtypes_set,
    message_post,
)
from outbox.models import MailRecipient, OutgoingMail
from records.services import record_create
from tests.support.chatter import ContactFactory, StaffFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


def _notified(message: Message) -> dict[str, Notification]:
    return {n.contact.email: n for n in message.notifications.select_related("contact")}


@pytest.fixture
def ticket():
    return TicketFactory()


@pytest.fixture
def agent():
    """An internal user who handles notifications in MailHub."""
    contact = contact_for_user(user=StaffFactory(username="agent", email="agent@mailhub.test"))
    return contact_preference_set(contact=contact, preference=NotificationPreference.INBOX)


@pytest.fixture
def colleague():
    """An internal user who keeps the default: notifications by email."""
    return contact_for_user(user=StaffFactory(username="colleague", email="col@mailhub.test"))


@pytest.fixture
def customer():
    return ContactFactory(name="Carla Customer", email="carla@customer.test")


def test_message_reaches_followers_by_their_preference(ticket, agent, colleague, customer):
    author = contact_for_user(user=StaffFactory(username="writer", email="writer@mailhub.test"))
    for contact in (agent, colleague, customer):
        follower_add(record=ticket, contact=contact)

    message = message_post(record=ticket, author=author, body="<p>Hello</p>", subject="Status")

    notified = _notified(message)
    assert set(notified) == {"agent@mailhub.test", "col@mailhub.test", "carla@customer.test"}
    inbox = notified["agent@mailhub.test"]
    assert (inbox.kind, inbox.status, inbox.is_read) == (
        NotificationKind.INBOX,
        NotificationStatus.SENT,
        False,
    )
    for email in ("col@mailhub.test", "carla@customer.test"):
        assert notified[email].kind == NotificationKind.EMAIL
        assert notified[email].status == NotificationStatus.READY
    # Email notifications were handed to the outbox: the post's content stored once, one
    # envelope recipient per email notification, none for the inbox.
    addresses = set(MailRecipient.objects.values_list("address", flat=True))
    assert addresses == {"col@mailhub.test", "carla@customer.test"}
    assert OutgoingMail.objects.filter(chatter_message=message, subject="Status").count() == 1
    assert all(n.mail_id for n in notified.values() if n.kind == NotificationKind.EMAIL)


def test_author_is_not_notified_and_follows_afterwards(ticket, colleague, customer):
    follower_add(record=ticket, contact=customer)
    message = message_post(record=ticket, author=colleague, body="<p>On it</p>")
    assert set(_notified(message)) == {"carla@customer.test"}
    assert Follower.objects.filter(object_id=ticket.pk, contact=colleague).exists()
    # The customer answers: the colleague (now a follower) is notified, the customer is not.
    reply = message_post(record=ticket, author=customer, body="<p>Thanks</p>")
    assert set(_notified(reply)) == {"col@mailhub.test"}


def test_internal_note_never_reaches_a_customer(ticket, agent, colleague, customer):
    note = Subtype.objects.get(code=Subtype.NOTE)
    discussion = Subtype.objects.get(code=Subtype.DISCUSSION)
    follower_add(record=ticket, contact=agent, subtypes=[discussion, note])
    follower_add(record=ticket, contact=colleague, subtypes=[discussion, note])
    follower_add(record=ticket, contact=customer)
    # Even when a customer is mentioned explicitly, or forced onto the Note subtype in the DB.
    Follower.objects.get(contact=customer).subtypes.add(note)

    message = message_post(
        record=ticket,
        author=None,
        body="<p>Customer is difficult</p>",
        subtype_code=Subtype.NOTE,
        mentions=[customer],
    )

    assert set(_notified(message)) == {"agent@mailhub.test", "col@mailhub.test"}
    assert not MailRecipient.objects.filter(address="carla@customer.test").exists()


def test_note_reaches_only_followers_of_the_note_subtype(ticket, agent, colleague):
    follower_add(record=ticket, contact=agent)  # default subtypes: Discussions only
    follower_add(
        record=ticket, contact=colleague, subtypes=[Subtype.objects.get(code=Subtype.NOTE)]
    )
    note = message_post(record=ticket, author=None, body="<p>n</p>", subtype_code=Subtype.NOTE)
    assert set(_notified(note)) == {"col@mailhub.test"}
    talk = message_post(record=ticket, author=None, body="<p>d</p>")
    assert set(_notified(talk)) == {"agent@mailhub.test"}


def test_mentioned_contacts_are_notified_without_following(ticket, customer):
    outsider = ContactFactory(email="outsider@partner.test")
    follower_add(record=ticket, contact=customer)
    message = message_post(
        record=ticket, author=None, body="<p>FYI</p>", mentions=[outsider, customer]
    )
    assert set(_notified(message)) == {"carla@customer.test", "outsider@partner.test"}
    assert not Follower.objects.filter(contact=outsider).exists()


def test_blacklisted_recipient_is_canceled_not_mailed(ticket, customer):
    Contact.objects.filter(pk=customer.pk).update(blacklisted=True)
    customer.refresh_from_db()
    follower_add(record=ticket, contact=customer)
    message = message_post(record=ticket, author=None, body="<p>x</p>")
    notification = _notified(message)["carla@customer.test"]
    assert notification.status == NotificationStatus.CANCELED
    assert notification.failure_type == FailureType.BLACKLISTED
    assert notification.failure_reason == "Blacklisted Address"
    assert not MailRecipient.objects.exists()


def test_message_ids_are_unguessable_and_thread_under_the_first(ticket):
    first = message_post(record=ticket, author=None, body="<p>1</p>")
    second = message_post(record=ticket, author=None, body="<p>2</p>")
    pattern = re.compile(r"^<[A-Za-z0-9_-]{32}@mailhub\.test>$")
    assert pattern.match(first.message_id) and pattern.match(second.message_id)
    assert first.message_id != second.message_id
    assert second.in_reply_to == first.message_id
    assert first.message_id in second.references


def test_creator_follows_the_record_they_create():
    user = StaffFactory(username="creator", email="creator@mailhub.test")
    ticket = record_create(model=type(TicketFactory.build()), title="New", created_by=user)
    follower = Follower.objects.get(object_id=ticket.pk)
    assert follower.contact.user == user
    assert [s.code for s in follower.subtypes.all()] == [Subtype.DISCUSSION]


def test_a_contact_follows_a_record_once(ticket, customer):
    follower_add(record=ticket, contact=customer)
    with pytest.raises(AlreadyFollowing, match="already follows"):
        follower_add(record=ticket, contact=customer)
    assert Follower.objects.filter(contact=customer).count() == 1


def test_customers_cannot_follow_internal_notes(ticket, customer):
    follower = follower_add(record=ticket, contact=customer)
    with pytest.raises(ValidationError, match="cannot follow internal notes"):
        follower_subtypes_set(follower=follower, subtypes=list(Subtype.objects.all()))
    assert [s.code for s in follower.subtypes.all()] == [Subtype.DISCUSSION]


def test_only_internal_users_may_pick_the_inbox():
    customer_user = UserFactory(username="cust", email="cust@customer.test")
    contact = contact_for_user(user=customer_user)
    with pytest.raises(ValidationError, match="Only internal users"):
        contact_preference_set(contact=contact, preference=NotificationPreference.INBOX)
    # Enforced by the model on save, not only in forms.
    contact.notification_preference = NotificationPreference.INBOX
    with pytest.raises(ValidationError):
        contact.save()
    contact.refresh_from_db()
    assert contact.notification_preference == NotificationPreference.EMAIL
    # A contact without a user (a customer) is refused too.
    with pytest.raises(ValidationError):
        ContactFactory(notification_preference=NotificationPreference.INBOX)


def test_contact_email_is_normalised():
    contact = ContactFactory(email="  Mixed.Case@Example.TEST ")
    assert contact.email == "mixed.case@example.test"
