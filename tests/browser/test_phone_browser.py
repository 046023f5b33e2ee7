"""Phone width (390×844) in a real Chromium: the Sending Failures dialog, /campaigns/ and /ops/
fit the screen and work. Saves docs/screenshots/phone-dialog.png."""

import pytest
from playwright.sync_api import expect

from chatter.models import NotificationStatus
from chatter.services import contact_for_user, follower_add
from tests.support.campaigns import campaign_make, mailing_list_bulk
from tests.support.chatter import ContactFactory, TicketFactory, screenshot_dir
from tests.support.envelope import message_with_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = screenshot_dir()
PHONE = (390, 844)


def _fits(page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"{what} is {width} px wide on a {PHONE[0]} px phone"


def _inside(locator, what: str) -> None:
    box = locator.bounding_box()
    assert box is not None, what
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0] + 0.5, f"{what}: {box}"


def test_sending_failures_dialog_fits_and_works_on_a_phone(login_page, live_server, staff_user):
    ticket = TicketFactory(title="Printer on the 2nd floor jams")
    nobody = ContactFactory(name="Nobody Home", email="nobody.with.a.long.address@reject.test")
    alice = ContactFactory(name="Alice Martin", email="alice@customer.test")
    follower_add(record=ticket, contact=alice)
    message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={alice: NotificationStatus.SENT, nobody: NotificationStatus.EXCEPTION},
        subject="Your <b>invoice</b> & receipt",
    )
    page = login_page(staff_user, "staff-password", viewport=PHONE)
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    _fits(page, "the record page")
    page.get_by_role("button", name="Delivery failure").click()
    dialog = page.get_by_role("dialog", name="Sending Failures")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    _inside(dialog.get_by_role("heading", name="Sending Failures"), "the title")
    send = dialog.get_by_role("button", name="Send & close")
    _inside(send, "Send & close")
    _inside(dialog.get_by_role("textbox").first, "the address field")
    # The subject as the thread shows it (typed text, not markup), not stripped of its "<b>".
    expect(dialog).to_contain_text("did not receive “Your <b>invoice</b> & receipt”")
    page.screenshot(path=str(SCREENSHOTS / "phone-dialog.png"))
    dialog.get_by_role("button", name="Ignore all").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Delivery status")).to_be_visible()


def test_campaigns_and_ops_fit_a_phone(login_page, live_server, staff_user):
    lst = mailing_list_bulk(name="Newsletter subscribers of the spring season", count=3)
    campaign_make(subject="Spring sale: everything must go, even the long subjects", lists=[lst])
    page = login_page(staff_user, "staff-password", viewport=PHONE)
    for path in ("/campaigns/", "/campaigns/lists/", "/ops/"):
        page.goto(f"{live_server.url}{path}")
        _fits(page, path)
    page.goto(f"{live_server.url}/campaigns/")
    page.get_by_role("link", name="Spring sale: everything must go, even the long subjects").click()
    expect(page.get_by_role("heading", name="Spring sale", exact=False)).to_be_visible()
    _fits(page, "the campaign page")
