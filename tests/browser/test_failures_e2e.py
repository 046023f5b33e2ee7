"""The red envelope end to end: real Chromium, the running app, a real Celery worker and relay.

A message to a recipient the relay refuses turns the envelope red by itself; the dialog shows
the server's words; fixing the address and Send & close delivers it and the envelope turns
outline; another failure, Ignore all, turns it white and nothing is sent; a second user cannot
open the dialog. The screenshots in docs/screenshots come from this test (test-results/).
"""

import time

import pytest

from chatter.models import Contact, Notification, NotificationStatus
from chatter.services import contact_for_user, contact_get_or_create, follower_add
from records.models import Ticket
from records.services import record_create
from tests.conftest import wait_for
from tests.support.chatter import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The worker has to start (a few seconds on a busy machine) before the first mail leaves.
DELIVERY_TIMEOUT_MS = 90_000


def _post(page, subject: str, body: str) -> int:
    page.fill("#composer input[name=subject]", subject)
    page.fill("#composer textarea[name=body]", body)
    page.click("#composer-submit")
    article = page.locator(f"#chatter-thread .o-message:has-text('{body}')")
    article.wait_for()
    return int(article.get_attribute("data-message-id"))


def _delivered_to(relay, address: str) -> list:
    return [m for m in relay.handler.received if address in m.rcpt_tos]


def test_red_envelope_fix_and_resend_then_ignore_all(
    relay, celery_worker_process, login_page, live_server, staff_user, test_results_dir
):
    worker = celery_worker_process()
    ticket = record_create(
        model=Ticket, title="Printer on the 2nd floor jams", created_by=staff_user
    )
    nobody = contact_get_or_create(email="nobody@reject.test", name="Nobody Home")
    follower_add(record=ticket, contact=nobody)
    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")

    # 1. The relay refuses the recipient: the envelope turns red without a reload.
    first = _post(page, "Your technician visit", "A technician comes tomorrow at 9.")
    page.evaluate("window.__sameDocument = true")
    try:
        page.locator(f"#envelope-{first}[data-state=failed]").wait_for(timeout=DELIVERY_TIMEOUT_MS)
    except Exception:
        pytest.fail(f"the envelope never turned red; worker log:\n{worker.output()[-3000:]}")
    assert page.evaluate("window.__sameDocument === true")
    assert page.locator("#failures-counter .badge").inner_text() == "1"
    envelope = page.locator(f"#envelope-{first}").get_by_role("button", name="Delivery failure")
    assert envelope.evaluate("b => getComputedStyle(b).color") == "rgb(192, 57, 43)"

    # 2. The dialog lists the recipient and the server's own words.
    envelope.click()
    dialog = page.locator("dialog#failures-dialog")
    dialog.wait_for(state="visible")
    line = dialog.locator(".failure-line")
    assert line.count() == 1
    assert line.locator(".failure-name").inner_text() == "Nobody Home"
    line.get_by_text("See Error Details").click()
    reason = line.locator(".failure-reason").inner_text()
    assert reason.startswith("Mail delivery failed via SMTP server '127.0.0.1'.")
    assert "550" in reason and "5.1.1 <nobody@reject.test>: mailbox unavailable" in reason
    assert line.locator(".failure-words").inner_text() == "Refused by the mail server"
    page.screenshot(path=str(test_results_dir / "envelope-dialog.png"))

    # 3. Fix the typo, Send & close: the relay receives it and the envelope turns outline.
    line.locator("input[type=email]").fill("nobody@customer.test")
    dialog.get_by_role("button", name="Send & close").click()
    dialog.wait_for(state="hidden")
    page.locator(f"#envelope-{first}[data-state=done]").wait_for(timeout=DELIVERY_TIMEOUT_MS)
    resent = wait_for(lambda: _delivered_to(relay, "nobody@customer.test"), timeout=30)
    assert len(resent) == 1 and "technician comes tomorrow" in resent[0].data.decode()
    assert Contact.objects.get(pk=nobody.pk).email == "nobody@customer.test"
    assert page.locator("#failures-counter .badge").inner_text() == "0"
    assert page.locator(f"#envelope-{first} .envelope-failed").count() == 0

    # 4. Another failure, seen from the failures counter, then Ignore all: white, nothing sent.
    follower_add(record=ticket, contact=contact_get_or_create(email="ghost@reject.test"))
    second = _post(page, "Parts ordered", "The spare drum is ordered.")
    page.locator(f"#envelope-{second}[data-state=failed]").wait_for(timeout=DELIVERY_TIMEOUT_MS)
    page.locator("#failures-counter.counter-danger").wait_for()
    # The thread now shows both states: the new message red, the resent one outline.
    page.locator("#chatter-thread").screenshot(path=str(test_results_dir / "envelope-red.png"))
    page.click("#failures-counter")
    group = page.locator(".failure-group")
    assert group.count() == 1
    assert "Printer on the 2nd floor jams" in group.locator("h2").inner_text()
    assert "ghost@reject.test" in group.inner_text()
    page.screenshot(path=str(test_results_dir / "envelope-failures.png"), full_page=True)
    group.locator(f"a[href$='#message-{second}']").click()
    page.wait_for_url(f"**{ticket.get_absolute_url()}*")

    received_before = len(relay.handler.received)
    page.locator(f"#envelope-{second}").get_by_role("button", name="Delivery failure").click()
    dialog.wait_for(state="visible")
    dialog.get_by_role("button", name="Ignore all").click()
    dialog.wait_for(state="hidden")
    page.locator(f"#envelope-{second}[data-state=done]").wait_for()
    assert page.locator("#failures-counter .badge").inner_text() == "0"
    assert Notification.objects.get(
        message_id=second, contact__email="ghost@reject.test"
    ).status == (NotificationStatus.CANCELED)
    time.sleep(2)  # a resend, if any, would reach the relay by now
    assert len(relay.handler.received) == received_before
    assert not _delivered_to(relay, "ghost@reject.test")

    # 5. Another user following the record sees no envelope and cannot open the dialog.
    carla = UserFactory(username="carla")
    follower_add(record=ticket, contact=contact_for_user(user=carla))
    other = login_page(carla, "password")
    other.goto(f"{live_server.url}{ticket.get_absolute_url()}")
    assert other.locator(f"#message-{first}").is_visible()
    assert other.locator("[data-envelope-for]").count() == 0
    assert other.goto(f"{live_server.url}/failures/message/{first}/").status == 404
