"""Live status in a real Chromium: the open thread follows the server without a reload.

A staff user keeps a ticket open while the outbox and the inbound gateway work: the envelope of
their message turns red when the relay refuses it, white again once it is delivered, a
customer's reply appears at the top of the thread, and the top bar's Failures counter follows,
each within 2 s. Saves docs/screenshots/live-reply.png.
"""

import re

import pytest
from playwright.sync_api import expect

from chatter.models import Notification, NotificationStatus
from chatter.services import contact_for_user, message_post
from records.models import Ticket
from records.services import record_create
from tests.support.chatter import ContactFactory, screenshot_dir
from tests.support.envelope import message_with_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = screenshot_dir()
LIVE = 2_000  # ms: what the issue asks of the live status


def test_open_thread_shows_envelope_changes_replies_and_the_counter(login_page, staff_user):
    ticket = record_create(model=Ticket, title="Printer jams", created_by=staff_user)
    alice = ContactFactory(name="Alice Customer", email="alice@customer.test")
    mine = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={alice: NotificationStatus.READY},
        subject="We are on it",
        body="<p>A technician comes by tomorrow.</p>",
    )
    page = login_page(staff_user, "staff-password")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="Printer jams").click()
    message = page.get_by_role("article").filter(has_text="A technician comes by")
    failures = page.get_by_role("banner").get_by_role("link", name=re.compile(r"^Failures"))
    expect(message.get_by_role("button", name="Delivery status")).to_be_visible()
    expect(failures).to_have_text("Failures 0")

    # The relay refuses the mail: red envelope and the counter, without a reload.
    Notification.objects.filter(message=mine).update(
        status=NotificationStatus.EXCEPTION, failure_reason="550 5.1.1 mailbox unavailable"
    )
    expect(message.get_by_role("button", name="Delivery failure")).to_be_visible(timeout=LIVE)
    expect(failures).to_have_text("Failures 1", timeout=LIVE)

    # Retried and delivered: white again, the counter back to 0.
    Notification.objects.filter(message=mine).update(
        status=NotificationStatus.SENT, failure_reason=""
    )
    expect(message.get_by_role("button", name="Delivery status")).to_be_visible(timeout=LIVE)
    expect(failures).to_have_text("Failures 0", timeout=LIVE)

    # The customer's reply arrives: at the top of the thread, announced.
    message_post(record=ticket, author=alice, body="<p>Thanks, see you tomorrow!</p>")
    reply = page.get_by_role("article").filter(has_text="see you tomorrow")
    expect(reply).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("status").filter(has_text="new message")).to_have_text("1 new message")
    articles = page.get_by_role("article")
    expect(articles.first).to_contain_text("Alice Customer")
    expect(articles).to_have_count(2)
    page.screenshot(path=str(SCREENSHOTS / "live-reply.png"))


def test_a_hidden_tab_stops_polling_and_catches_up_when_shown(login_page, staff_user):
    ticket = record_create(model=Ticket, title="Quiet ticket", created_by=staff_user)
    page = login_page(staff_user, "staff-password")
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + ticket.get_absolute_url())
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/live/" in r.url else None)
    page.wait_for_timeout(1_800)
    assert polls, "the open thread polls"
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    polls.clear()
    page.wait_for_timeout(3_500)
    assert polls == [], "no polling in a hidden tab"
    alice = ContactFactory(name="Alice Customer", email="alice@customer.test")
    message_post(record=ticket, author=alice, body="<p>Anyone there?</p>")
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(page.get_by_role("article").filter(has_text="Anyone there?")).to_be_visible(timeout=LIVE)
