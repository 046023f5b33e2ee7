"""Record list and create pages: staff see and create records, others see what they follow."""

import pytest

from chatter.models import Follower
from chatter.services import contact_for_user, follower_add
from records.models import Invoice, Quote, Ticket
from tests.support.chatter import InvoiceFactory, QuoteFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("factory", [TicketFactory, QuoteFactory, InvoiceFactory])
def test_each_record_type_has_list_and_detail_with_chatter(client, staff_user, factory):
    record = factory(title="Visible one")
    client.force_login(staff_user)
    listing = client.get(f"/records/{record.slug}/").content.decode()
    assert record.get_absolute_url() in listing and "Visible one" in listing
    detail = client.get(record.get_absolute_url()).content.decode()
    assert 'id="chatter"' in detail and "Visible one" in detail


def test_customers_list_only_records_they_follow(client):
    user = UserFactory(username="cust", email="cust@customer.test")
    mine, other = TicketFactory(title="Mine"), TicketFactory(title="Not mine")
    follower_add(record=mine, contact=contact_for_user(user=user))
    client.force_login(user)
    page = client.get("/records/ticket/").content.decode()
    assert "Mine" in page and "Not mine" not in page
    assert client.get(other.get_absolute_url()).status_code == 404
    assert "New ticket" not in page


def test_staff_create_a_record_and_follow_it(client, staff_user):
    client.force_login(staff_user)
    response = client.post("/records/quote/new/", {"title": "Roof repair", "amount": "1200.50"})
    quote = Quote.objects.get()
    assert response.status_code == 302 and response["Location"] == quote.get_absolute_url()
    assert quote.created_by == staff_user and str(quote.amount) == "1200.50"
    assert Follower.objects.get(object_id=quote.pk).contact.user == staff_user


def test_create_form_errors_are_shown_and_customers_cannot_create(client, staff_user):
    client.force_login(staff_user)
    response = client.post("/records/invoice/new/", {"title": "", "amount": "abc"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not Invoice.objects.exists()
    client.force_login(UserFactory(username="c2", email="c2@customer.test"))
    assert client.post("/records/ticket/new/", {"title": "x"}).status_code == 404
    assert not Ticket.objects.exists()


def test_unknown_record_type_is_404(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/records/spaceship/").status_code == 404
