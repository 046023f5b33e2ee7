"""The chatter in a real Chromium: follow, post, log a note, see the thread."""

import pytest

from chatter.models import Follower, Message, Subtype
from records.models import Ticket
from records.services import record_create
from tests.support.chatter import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_fixture_logs_in(login_page, staff_user):
    page = login_page(staff_user, "staff-password")
    assert page.locator("#inbox-counter").is_visible()


def test_follow_post_and_log_note_on_a_ticket(login_page, staff_user, test_results_dir):
    ticket = record_create(model=Ticket, title="Printer on fire", created_by=staff_user)
    ContactFactory(name="Carla Customer", email="carla@customer.test")
    page = login_page(staff_user, "staff-password")

    page.click("text=Tickets")
    page.click("text=Printer on fire")
    assert page.locator("#record-title").inner_text() == "Printer on fire"
    assert page.locator("#followers-count").inner_text() == "1"  # the creator

    # Add a follower through the contact picker (live search, then pick the suggestion).
    page.click("#followers > summary")
    page.fill("#follower-add input[type=search]", "carla")
    page.click("#follower-add .picker-option:has-text('Carla Customer')")
    page.click("#follower-add-submit")
    page.wait_for_selector(".follower:has-text('carla@customer.test')")
    assert page.locator("#followers-count").inner_text() == "2"
    assert page.locator(".flash").inner_text() == "Carla Customer now follows this record."
    page.locator("#followers").screenshot(path=str(test_results_dir / "chatter-followers.png"))

    # Send a message (emailed to Carla) and log an internal note.
    page.fill("#composer input[name=subject]", "About your printer")
    page.fill("#composer textarea[name=body]", "We are sending a technician <today>.")
    page.click("#composer-submit")
    page.wait_for_selector("#chatter-thread .o-message:has-text('technician')")

    page.check("#composer input[name=action][value=note]")
    assert page.locator("#composer-submit").inner_text() == "Log"
    assert page.locator("#composer .composer-subject").is_hidden()
    page.fill("#composer textarea[name=body]", "Customer called twice already.")
    page.click("#composer-submit")
    page.wait_for_selector("#chatter-thread .o-message:has-text('called twice')")

    thread = page.locator("#chatter-thread .o-message")
    assert thread.count() == 2
    # Newest first: the note, then the message (typed text shown as text, not markup).
    assert "called twice" in thread.nth(0).inner_text()
    assert "Note" in thread.nth(0).locator(".tag-note").inner_text()
    assert "technician <today>." in thread.nth(1).inner_text()
    assert "About your printer" in thread.nth(1).inner_text()

    message, note = Message.objects.order_by("id")
    assert message.subtype.code == Subtype.DISCUSSION and note.subtype.code == Subtype.NOTE
    assert list(message.notifications.values_list("contact__email", flat=True)) == [
        "carla@customer.test"
    ]
    assert not note.notifications.filter(contact__email="carla@customer.test").exists()
    assert Follower.objects.filter(object_id=ticket.pk).count() == 2

    shot = test_results_dir / "chatter-record.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
