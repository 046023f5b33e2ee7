"""Customers never see other followers' email addresses (envelope, failures list and dialog).

A customer who wrote a message sees its delivery status, by name only; the relay's refusal text
has its addresses hidden. Staff see the addresses (they correct them).
"""

import pytest
from django.test import Client
from django.urls import reverse

from chatter.models import NotificationStatus
from chatter.services import contact_for_user, follower_add
from tests.support.chatter import ContactFactory, TicketFactory
from tests.support.envelope import message_with_statuses

pytestmark = pytest.mark.django_db

OTHERS = ("alice.cofollower@customer.test", "Bob.Private@Other-Corp.test")


def _scene(author_user):
    ticket = TicketFactory(title="Shared ticket")
    author = contact_for_user(user=author_user)
    follower_add(record=ticket, contact=author, ignore_existing=True)
    alice = ContactFactory(name="Alice Cofollower", email=OTHERS[0])
    bob = ContactFactory(name="Bob Private", email=OTHERS[1])
    for contact in (alice, bob):
        follower_add(record=ticket, contact=contact)
    sent = message_with_statuses(
        record=ticket, author=author, statuses={alice: NotificationStatus.SENT}, subject="ok"
    )
    failed = message_with_statuses(
        record=ticket,
        author=author,
        statuses={alice: NotificationStatus.SENT, bob: NotificationStatus.EXCEPTION},
        subject="bad",
    )
    return ticket, sent, failed


def _pages(client: Client, ticket, sent, failed) -> dict[str, bytes]:
    ids = f"{sent.pk},{failed.pk}"
    return {
        "record page (envelope popover)": client.get(ticket.get_absolute_url()),
        "failures list": client.get(reverse("failures:list")),
        "failures dialog": client.get(reverse("failures:dialog", args=[failed.pk])),
        "failures dialog (fetch)": client.get(
            reverse("failures:dialog", args=[failed.pk]), headers={"X-Requested-With": "fetch"}
        ),
        "live envelopes": client.get(reverse("failures:envelopes"), {"ids": ids}),
        "refused resend": client.post(
            reverse("failures:resend", args=[failed.pk]), {"resend": "nonsense"}
        ),
    }


def test_a_customer_author_sees_names_but_never_the_other_followers_addresses(plain_user):
    ticket, sent, failed = _scene(plain_user)
    client = Client()
    client.force_login(plain_user)
    pages = _pages(client, ticket, sent, failed)
    for where, response in pages.items():
        if where == "refused resend":
            assert response.status_code in (302, 400), where
        else:
            assert response.status_code == 200, where
        body = response.content.decode().lower()
        for address in OTHERS:
            assert address.lower() not in body, f"{address} shown to a customer on the {where}"
            local = address.split("@")[0].lower()
            assert f"{local}@" not in body, f"{address}'s local part shown on the {where}"
    # The customer still sees who and what: the envelope and the dialog are there, by name.
    assert "Alice Cofollower" in pages["record page (envelope popover)"].content.decode()
    dialog = pages["failures dialog"].content.decode()
    assert "Bob Private" in dialog and "(address hidden)" in dialog


def test_staff_see_the_addresses(staff_user):
    ticket, sent, failed = _scene(staff_user)
    client = Client()
    client.force_login(staff_user)
    pages = _pages(client, ticket, sent, failed)
    record = pages["record page (envelope popover)"].content.decode().lower()
    assert all(address.lower() in record for address in OTHERS)
    assert OTHERS[1].lower() in pages["failures dialog"].content.decode().lower()
    assert OTHERS[1].lower() in pages["failures list"].content.decode().lower()
