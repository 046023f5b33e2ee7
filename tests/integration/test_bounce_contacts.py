"""Contact pages: "bouncing" and the blacklist state shown, staff lift a blacklist with a reason."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from chatter.models import BounceEvent, BounceEventKind
from chatter.services import contact_for_user
from chatter.suppression import contact_bounce_record
from tests.support.chatter import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def blacklisted_contact(email: str = "gone@customer.test"):
    contact = ContactFactory(name="Gone Customer", email=email)
    now = timezone.now()
    for days in (40, 30, 20, 10, 0):
        contact = contact_bounce_record(
            contact=contact,
            hard=True,
            status="5.1.1",
            reason="Diagnostic-Code: smtp; 550 5.1.1 User unknown",
            at=now - dt.timedelta(days=days),
        )
    assert contact.blacklisted
    return contact


def test_list_shows_bouncing_and_blacklisted_and_filters(staff_client):
    fine = ContactFactory(name="Fine", email="fine@customer.test")
    bouncing = contact_bounce_record(
        contact=ContactFactory(name="Bouncy", email="bouncy@customer.test"), hard=True
    )
    gone = blacklisted_contact()

    page = staff_client.get("/contacts/").content.decode()
    assert 'data-contact="fine@customer.test"' in page
    row = page.split('data-contact="bouncy@customer.test"')[1].split("</tr>")[0]
    assert "Bouncing" in row and "Blacklisted" not in row
    row = page.split('data-contact="gone@customer.test"')[1].split("</tr>")[0]
    assert "Blacklisted" in row

    only_bouncing = staff_client.get("/contacts/?state=bouncing").content.decode()
    assert bouncing.email in only_bouncing and gone.email in only_bouncing
    assert fine.email not in only_bouncing
    only_blacklisted = staff_client.get("/contacts/?state=blacklisted").content.decode()
    assert gone.email in only_blacklisted and bouncing.email not in only_blacklisted
    found = staff_client.get("/contacts/?q=bouncy").content.decode()
    assert bouncing.email in found and fine.email not in found


def test_detail_shows_state_reason_and_history(staff_client):
    gone = blacklisted_contact()

    page = staff_client.get(f"/contacts/{gone.pk}/").content.decode()

    assert 'id="contact-blacklisted"' in page
    assert 'id="contact-bouncing"' in page
    assert "gets no email" in page
    assert "Automatically blacklisted: 5 hard bounces" in page
    assert page.count('class="event-hard"') == 5
    assert "550 5.1.1 User unknown" in page
    assert "Remove from blacklist" in page


def test_staff_remove_an_address_from_the_blacklist_with_a_reason(staff_client, staff_user):
    gone = blacklisted_contact()

    refused = staff_client.post(f"/contacts/{gone.pk}/unblacklist/", {"unblacklist-reason": ""})
    assert refused.status_code == 400
    assert "Say why" in refused.content.decode()
    gone.refresh_from_db()
    assert gone.blacklisted

    response = staff_client.post(
        f"/contacts/{gone.pk}/unblacklist/",
        {"unblacklist-reason": "Customer called: mailbox recreated"},
        follow=True,
    )

    page = response.content.decode()
    gone.refresh_from_db()
    assert not gone.blacklisted and gone.bounce_count == 0
    assert "was removed from the blacklist" in page
    assert "Receives email." in page
    assert "Removed from blacklist by staff" in page
    assert "Customer called: mailbox recreated" in page
    assert BounceEvent.objects.filter(
        contact=gone, kind=BounceEventKind.UNBLACKLISTED, by=staff_user
    ).exists()


def test_staff_can_blacklist_by_hand(staff_client):
    contact = ContactFactory(email="spamtrap@customer.test")
    staff_client.post(
        f"/contacts/{contact.pk}/blacklist/", {"blacklist-reason": "Asked to never be mailed"}
    )
    contact.refresh_from_db()
    assert contact.blacklisted
    assert contact.blacklist_reason == "Blacklisted by staff: Asked to never be mailed"


def test_customers_see_only_their_own_contact_and_cannot_lift_a_blacklist():
    gone = blacklisted_contact("carla@customer.test")
    carla = UserFactory(username="carla", email="carla@customer.test")
    assert contact_for_user(user=carla).pk == gone.pk
    other = ContactFactory(email="other@customer.test")
    client = Client()
    client.force_login(carla)

    assert client.get("/contacts/").url == f"/contacts/{gone.pk}/"
    own = client.get(f"/contacts/{gone.pk}/").content.decode()
    assert "Blacklisted" in own and "Remove from blacklist" not in own
    assert client.get(f"/contacts/{other.pk}/").status_code == 404
    forbidden = client.post(f"/contacts/{gone.pk}/unblacklist/", {"unblacklist-reason": "me"})
    assert forbidden.status_code == 403
    gone.refresh_from_db()
    assert gone.blacklisted


def test_contact_pages_need_a_login(client):
    contact = ContactFactory()
    for url in ("/contacts/", f"/contacts/{contact.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.url
