"""The contact pages in a real Chromium: find a blacklisted address, lift it with a reason."""

import datetime as dt

import pytest
from django.utils import timezone

from chatter.models import Contact
from chatter.suppression import contact_bounce_record
from tests.support.chatter import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_find_a_blacklisted_address_and_remove_it_with_a_reason(
    login_page, live_server, staff_user, test_results_dir
):
    now = timezone.now()
    gina = ContactFactory(name="Gina Gone", email="gina@customer.test")
    for weeks in (9, 7, 5, 3, 1):
        contact_bounce_record(
            contact=gina,
            hard=True,
            status="5.1.1",
            reason="Diagnostic-Code: smtp; 550 5.1.1 <gina@customer.test>: User unknown",
            at=now - dt.timedelta(weeks=weeks),
        )
    contact_bounce_record(contact=ContactFactory(name="Hugo Hops"), hard=True, status="5.1.1")
    ContactFactory(name="Fine Customer")
    page = login_page(staff_user, "staff-password")

    page.goto(live_server.url)
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Blacklisted").click()
    rows = page.locator("table.contact-list tbody tr")
    assert rows.count() == 1
    assert "Gina Gone" in rows.first.inner_text() and "Blacklisted" in rows.first.inner_text()
    page.get_by_role("link", name="Bouncing").click()
    assert page.locator("table.contact-list tbody tr").count() == 2
    page.get_by_role("link", name="Gina Gone").click()

    assert page.locator("#contact-blacklisted").is_visible()
    assert (
        "Automatically blacklisted: 5 hard bounces"
        in page.locator("#contact-delivery").inner_text()
    )
    assert page.locator("#bounce-history tr.event-hard").count() == 5
    page.screenshot(path=str(test_results_dir / "contact-blacklisted.png"), full_page=True)

    # No reason: the browser itself asks for one (required field), nothing changes.
    page.get_by_role("button", name="Remove from blacklist").click()
    assert page.locator("#contact-blacklisted").is_visible()
    page.get_by_label("Reason").fill("Customer called: the mailbox exists again")
    page.get_by_role("button", name="Remove from blacklist").click()

    page.get_by_text("gina@customer.test was removed from the blacklist.").wait_for()
    assert page.locator("#contact-blacklisted").count() == 0
    assert page.locator("#contact-delivery").inner_text() == "Receives email."
    lifted = page.locator("#bounce-history tr.event-unblacklisted").inner_text()
    assert "Removed from blacklist by staff" in lifted
    assert "Customer called: the mailbox exists again" in lifted
    gina = Contact.objects.get(pk=gina.pk)
    assert not gina.blacklisted and gina.bounce_count == 0
