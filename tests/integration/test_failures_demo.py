"""The quick start's demo data: a newcomer sees a red envelope on first start."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from chatter.models import Notification, NotificationStatus
from records.models import Invoice
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_demo_invoice_is_refused_by_the_dev_relay_and_shows_red(
    relay, celery_worker_process, client
):
    # The same relay class as the quick start's dev relay, refusing @reject.test with 550.
    celery_worker_process()
    call_command("seed_demo", stdout=io.StringIO())
    invoice = Invoice.objects.get()
    refused = Notification.objects.filter(
        message__object_id=invoice.pk,
        message__content_type__model="invoice",
        contact__email="nobody@reject.test",
    )
    wait_for(
        lambda: refused.filter(status=NotificationStatus.EXCEPTION).exists(),
        timeout=90,
        message="the demo invoice's mail was never refused by the relay",
    )
    client.force_login(get_user_model().objects.get(username="admin"))
    html = client.get(invoice.get_absolute_url()).content.decode()
    assert 'aria-label="Delivery failure"' in html
    failures_page = client.get("/failures/").content.decode()
    assert failures_page.count('class="failure-group"') == 1
    assert "nobody@reject.test" in failures_page
