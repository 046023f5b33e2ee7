"""A campaign's "Not delivered" table gives the mail server's words for a refused recipient."""

import pytest
from django.utils.html import escape

from campaigns import services
from outbox.services import mails_send
from tests.support.campaigns import campaign_make, mailing_list_bulk

pytestmark = pytest.mark.django_db


def test_not_delivered_reason_is_the_servers_words(relay, outbox_settings, client, staff_user):
    lst = mailing_list_bulk(name="News", count=2, domain="reject.test")
    campaign = campaign_make(subject="Winter sale", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    mails_send()
    client.force_login(staff_user)
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    table = page[page.index("Not delivered") :]
    assert "m0@reject.test" in table
    assert escape("550 5.1.1 <m0@reject.test>") in table
