"""The red envelope in a real Chromium: keyboard, modal, live update, Ignore all, access.

Delivery states are written through the model here (as the outbox leaves them); the end-to-end
test with a real worker and relay is ``test_failures_e2e.py``.
"""

import pytest

from chatter.models import Notification, NotificationStatus
from chatter.services import contact_for_user, follower_add
from tests.support.chatter import ContactFactory, TicketFactory, UserFactory
from tests.support.envelope import message_with_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RED = "rgb(192, 57, 43)"  # --danger


@pytest.fixture
def scene(staff_user):
    ticket = TicketFactory(title="Printer on the 2nd floor jams")
    nobody = ContactFactory(name="Nobody Home", email="nobody@reject.test")
    alice = ContactFactory(name="Alice Martin", email="alice@customer.test")
    follower_add(record=ticket, contact=alice)
    message = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={alice: NotificationStatus.SENT, nobody: NotificationStatus.EXCEPTION},
    )
    return ticket, message, nobody


def _mark_no_reload(page) -> None:
    page.evaluate("window.__sameDocument = true")


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_keyboard_opens_a_modal_that_traps_focus_and_closes_on_escape(
    login_page, live_server, staff_user, scene, test_results_dir
):
    ticket, message, _nobody = scene
    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    envelope = page.get_by_role("button", name="Delivery failure")
    assert envelope.count() == 1
    assert envelope.evaluate("b => getComputedStyle(b).color") == RED

    envelope.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#failures-dialog")
    dialog.wait_for(state="visible")
    assert dialog.evaluate("d => d.matches(':modal')")
    assert dialog.get_by_role("heading").inner_text() == "Sending Failures"
    # Focus starts inside, and Tab keeps it inside: the page behind is inert.
    for _ in range(12):
        assert page.evaluate(
            "document.getElementById('failures-dialog').contains(document.activeElement)"
        )
        page.keyboard.press("Tab")
    assert page.locator("#composer-submit").evaluate("b => b.matches(':modal *')") is False

    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    # Focus is back on the envelope, so keyboard users do not lose their place.
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Delivery failure"


def test_dialog_shows_the_error_details_and_ignore_all_turns_the_envelope_white(
    login_page, live_server, staff_user, scene, test_results_dir
):
    ticket, message, nobody = scene
    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    _mark_no_reload(page)
    assert page.locator("#failures-counter .badge").inner_text() == "1"
    page.locator(".record-layout").screenshot(path=str(test_results_dir / "envelope-red-ui.png"))
    page.get_by_role("button", name="Delivery failure").click()
    dialog = page.locator("dialog#failures-dialog")
    dialog.wait_for(state="visible")
    line = dialog.locator(".failure-line")
    assert line.count() == 1
    assert line.locator(".failure-name").inner_text() == "Nobody Home"
    assert line.locator("input[type=email]").input_value() == "nobody@reject.test"
    assert line.locator(".failure-words").inner_text() == "Refused by the mail server"
    reason = line.locator(".failure-reason")
    assert reason.is_hidden()
    line.get_by_text("See Error Details").click()
    assert reason.inner_text() == "550 5.1.1 <nobody@reject.test>: mailbox unavailable"
    page.screenshot(path=str(test_results_dir / "envelope-dialog-ui.png"))
    switch = line.get_by_role("switch")
    assert switch.is_checked()
    # With every Try Again toggle off, Ignore all becomes the main action.
    switch.uncheck()
    assert "primary" in (dialog.get_by_role("button", name="Ignore all").get_attribute("class"))

    dialog.get_by_role("button", name="Ignore all").click()
    dialog.wait_for(state="hidden")
    white = page.get_by_role("button", name="Delivery status")
    white.wait_for()
    assert page.get_by_role("button", name="Delivery failure").count() == 0
    assert white.evaluate("b => getComputedStyle(b).color") != RED
    assert page.locator("#failures-counter .badge").inner_text() == "0"
    assert page.locator("#envelope-live").inner_text() == "1 delivery failure ignored."
    assert _same_document(page)
    assert Notification.objects.get(message=message, contact=nobody).status == "canceled"

    # The outline envelope lists each recipient's status.
    white.click()
    popover = page.locator(f"#envelope-pop-{message.pk}")
    popover.wait_for(state="visible")
    page.screenshot(path=str(test_results_dir / "envelope-popover-ui.png"))
    text = popover.inner_text()
    assert "Sent" in text and "alice@customer.test" in text
    assert "Canceled" in text and "nobody@reject.test" in text


def test_envelope_follows_the_outbox_without_a_reload(login_page, live_server, staff_user):
    ticket = TicketFactory(title="Chairs")
    bruno = ContactFactory(name="Bruno Keller", email="bruno@customer.test")
    message = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={bruno: NotificationStatus.READY},
    )
    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    _mark_no_reload(page)
    slot = page.locator(f"#envelope-{message.pk}")
    assert slot.get_attribute("data-state") == "pending"
    assert "sending" in slot.inner_text()

    # The outbox reports a refusal: the page polls and turns the envelope red by itself.
    Notification.objects.filter(message=message).update(
        status=NotificationStatus.EXCEPTION,
        failure_type="mail_smtp_refused",
        failure_reason="550 5.1.1 <bruno@customer.test>: mailbox unavailable",
    )
    page.locator(f"#envelope-{message.pk}[data-state=failed]").wait_for(timeout=10_000)
    page.locator("#failures-counter.counter-danger").wait_for()
    assert page.locator("#failures-counter .badge").inner_text() == "1"
    assert _same_document(page)
    # Nothing is sending any more: the page stops asking.
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/failures/envelopes/" in r.url else None)
    page.wait_for_timeout(3000)
    assert polls == []


def test_another_user_sees_no_envelope_and_cannot_open_the_dialog(login_page, live_server, scene):
    ticket, message, _nobody = scene
    carla = UserFactory(username="carla")
    follower_add(record=ticket, contact=contact_for_user(user=carla))
    page = login_page(carla, "password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    assert page.locator(f"#message-{message.pk}").is_visible()
    assert page.locator(f"#envelope-{message.pk}").count() == 0
    assert page.get_by_role("button", name="Delivery failure").count() == 0
    assert page.locator("#failures-counter .badge").inner_text() == "0"
    response = page.goto(f"{live_server.url}/failures/message/{message.pk}/")
    assert response.status == 404


def test_without_javascript_the_dialog_is_a_page_and_its_forms_work(
    browser, live_server, staff_user, scene
):
    ticket, message, nobody = scene
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", staff_user.get_username())
        page.fill("#id_password", "staff-password")
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.goto(f"{live_server.url}{ticket.get_absolute_url()}")
        with page.expect_navigation():
            page.get_by_role("button", name="Delivery failure").click()
        assert f"/failures/message/{message.pk}/" in page.url
        assert page.get_by_role("heading", name="Sending Failures").is_visible()
        page.get_by_text("See Error Details").click()
        assert "mailbox unavailable" in page.locator(".failure-reason").inner_text()
        page.get_by_role("switch").uncheck()
        with page.expect_navigation():
            page.get_by_role("button", name="Send & close").click()
        assert page.url.endswith(f"{ticket.get_absolute_url()}#message-{message.pk}")
        assert page.locator(".flash").inner_text() == "1 ignored."
        assert page.get_by_role("button", name="Delivery status").count() == 1
        assert Notification.objects.get(message=message, contact=nobody).status == "canceled"
    finally:
        context.close()
