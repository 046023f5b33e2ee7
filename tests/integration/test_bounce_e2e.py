"""A bounce end to end: the envelope turns red in a real Chromium with the remote server's words.

Real parts only: the running app (live server), a real Celery worker that delivers the post to
the relay (aiosmtpd on loopback, which accepts it), the real listener process
(``manage.py runsmtpd``) to which a remote MTA then returns a Postfix DSN at the VERP
Return-Path, with ``MAIL FROM:<>``.
"""

import smtplib
import sys

import pytest

from chatter.models import Notification, NotificationStatus
from chatter.services import contact_get_or_create, follower_add
from records.models import Ticket
from records.services import record_create
from tests.conftest import free_port, wait_for
from tests.support import bounces

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The worker has to start (a few seconds on a busy machine) before the first mail leaves.
DELIVERY_TIMEOUT = 90


def _listener(start_process):
    port = free_port()
    listener = start_process(
        [sys.executable, "manage.py", "runsmtpd", "--listen", f"127.0.0.1:{port}"],
        name="runsmtpd",
    )

    def answers() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                return client.noop()[0] == 250
        except OSError:
            return False

    wait_for(answers, timeout=60, message=f"runsmtpd did not start:\n{listener.output()}")
    return listener, port


def test_a_dsn_for_a_delivered_mail_turns_the_authors_envelope_red_with_the_diagnostic(
    mail_domain,
    relay,
    celery_worker_process,
    start_process,
    login_page,
    live_server,
    staff_user,
    test_results_dir,
):
    worker = celery_worker_process()
    listener, port = _listener(start_process)
    ticket = record_create(model=Ticket, title="Printer on fire", created_by=staff_user)
    bob = contact_get_or_create(email="bob@customer.test", name="Bob Brown")
    follower_add(record=ticket, contact=bob)
    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}{ticket.get_absolute_url()}")

    # 1. The author posts; the worker hands the mail to the relay, which accepts it.
    page.fill("#composer input[name=subject]", "Technician visit")
    page.fill("#composer textarea[name=body]", "A technician comes tomorrow at 9.")
    page.click("#composer-submit")
    article = page.locator("#chatter-thread .o-message:has-text('A technician comes tomorrow')")
    article.wait_for()
    message_pk = int(article.get_attribute("data-message-id"))
    delivered = wait_for(
        lambda: [m for m in relay.handler.received if "bob@customer.test" in m.rcpt_tos],
        timeout=DELIVERY_TIMEOUT,
        message=f"the relay never got the mail; worker log:\n{worker.output()[-3000:]}",
    )
    page.locator(f"#envelope-{message_pk}[data-state=done]").wait_for(timeout=30_000)
    notification = Notification.objects.get(message_id=message_pk, contact=bob)
    assert notification.status == NotificationStatus.SENT
    verp, original_id = delivered[0].mail_from, delivered[0].message_id
    assert verp.startswith("bounce+n") and verp.endswith("@mailhub.test")

    # 2. Later, the customer's server gives up: its DSN comes back to the VERP Return-Path.
    dsn = bounces.postfix_dsn(message_id=original_id, recipient="bob@customer.test", sender=verp)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.sendmail("<>", [verp], dsn) == {}

    # 3. When the author looks again, the envelope is red and the dialog says why. (The page
    # polls only while a delivery is pending; a bounce comes long after, so it shows on load.)
    wait_for(
        lambda: Notification.objects.get(pk=notification.pk).status == NotificationStatus.BOUNCE,
        timeout=30,
        message=f"the bounce was not recorded; listener log:\n{listener.output()[-3000:]}",
    )
    page.reload()
    page.locator(f"#envelope-{message_pk}[data-state=failed]").wait_for(timeout=30_000)
    envelope = page.locator(f"#envelope-{message_pk}").get_by_role(
        "button", name="Delivery failure"
    )
    assert envelope.evaluate("b => getComputedStyle(b).color") == "rgb(192, 57, 43)"
    assert page.locator("#failures-counter .badge").inner_text() == "1"
    envelope.click()
    dialog = page.locator("dialog#failures-dialog")
    dialog.wait_for(state="visible")
    line = dialog.locator(".failure-line")
    assert line.count() == 1
    assert line.locator(".failure-name").inner_text() == "Bob Brown"
    assert line.locator(".failure-words").inner_text() == "Bounce"
    line.get_by_text("See Error Details").click()
    reason = line.locator(".failure-reason").inner_text()
    assert "Status: 5.1.1 (permanent failure: bad destination mailbox address)" in reason
    assert (
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@customer.test>: Recipient address rejected: "
        "User unknown in local recipient table"
    ) in reason
    assert "Reported by: mx.customer.test" in reason
    page.screenshot(path=str(test_results_dir / "bounce-dialog.png"))

    # 4. The contact page says the address bounces.
    page.goto(f"{live_server.url}/contacts/{bob.pk}/")
    assert page.locator("#contact-bouncing").inner_text() == "Bouncing"
    assert page.locator("#contact-bounce-count").inner_text().startswith("1")
    assert "Recipient address rejected" in page.locator("#bounce-history").inner_text()
