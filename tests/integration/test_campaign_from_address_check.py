"""A campaign's From address is checked when it is saved, as the outbox will write it."""

import html

import pytest

from campaigns.models import Campaign
from tests.support.campaigns import mailing_list_bulk

pytestmark = pytest.mark.django_db


def _post(client, url: str, from_addr: str, lst):
    return client.post(
        url,
        {
            "subject": "Spring sale",
            "mailing_lists": [lst.pk],
            "body_html": "<p>Hi!</p>",
            "from_addr": from_addr,
        },
    )


@pytest.mark.parametrize(
    "from_addr",
    ["zoë@mailhub.test", "Zoë <jürgen@mailhub.test>", "東京@mailhub.test"],
)
def test_a_from_address_that_needs_smtputf8_is_refused_on_the_form(client, staff_user, from_addr):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    response = _post(client, "/campaigns/new/", from_addr, lst)
    page = html.unescape(response.content.decode())
    assert response.status_code == 400  # the form again, with the error
    assert "This From address cannot be sent" in page and "SMTPUTF8" in page
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("from_addr", ["not an address", "a@x.test, b@y.test"])
def test_a_from_that_is_not_one_address_is_refused(client, staff_user, from_addr):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    response = _post(client, "/campaigns/new/", from_addr, lst)
    assert response.status_code == 400  # the form again, with the error
    assert "This From address cannot be sent" in html.unescape(response.content.decode())
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("from_addr", ["Zoë Müller <sales@mailhub.test>", "sales@bücher.test", ""])
def test_non_ascii_names_and_idn_domains_are_accepted(client, staff_user, from_addr):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    response = _post(client, "/campaigns/new/", from_addr, lst)
    assert response.status_code == 302
    assert Campaign.objects.get().from_addr == from_addr


def test_editing_a_campaign_checks_the_from_address_too(client, staff_user):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    _post(client, "/campaigns/new/", "", lst)
    campaign = Campaign.objects.get()
    response = _post(client, f"/campaigns/{campaign.pk}/edit/", "zoë@mailhub.test", lst)
    assert "SMTPUTF8" in html.unescape(response.content.decode())
    campaign.refresh_from_db()
    assert campaign.from_addr == ""
