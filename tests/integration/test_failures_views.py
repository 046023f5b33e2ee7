"""The red envelope through HTTP: who sees it, the Sending Failures dialog, its actions, the
failures page and the live-update endpoint."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chatter.models import Contact, Notification, NotificationStatus
from chatter.services import contact_for_user, follower_add
from tests.support.chatter import ContactFactory, TicketFactory, UserFactory
from tests.support.envelope import message_with_statuses

pytestmark = pytest.mark.django_db

EXC, SENT, READY = NotificationStatus.EXCEPTION, NotificationStatus.SENT, NotificationStatus.READY


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def ticket():
    return TicketFactory(title="Broken printer")


@pytest.fixture
def nobody():
    return ContactFactory(name="Nobody Home", email="nobody@reject.test")


@pytest.fixture
def alice():
    return ContactFactory(name="Alice Martin", email="alice@customer.test")


@pytest.fixture
def failed(ticket, staff_user, nobody, alice):
    """A staff user's message: Alice received it, the relay refused Nobody."""
    return message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={alice: SENT, nobody: EXC},
    )


def _envelope(html: str, message_id: int) -> str:
    """The markup of one message's envelope (it ends where the message's header ends)."""
    start = html.find(f'id="envelope-{message_id}"')
    return html[start : html.find("</header>", start)] if start >= 0 else ""


def test_author_sees_a_red_envelope_button_and_the_counter(staff_client, ticket, failed):
    html = staff_client.get(ticket.get_absolute_url()).content.decode()
    envelope = _envelope(html, failed.pk)
    assert 'aria-label="Delivery failure"' in envelope
    assert "envelope-failed" in envelope
    assert reverse("failures:dialog", args=[failed.pk]) in envelope
    counter = re.search(r'<a class="counter[^>]*id="failures-counter".*?</a>', html, re.S)[0]
    assert "counter-danger" in counter and '<span class="badge">1</span>' in counter


def test_all_sent_shows_an_outline_envelope_with_each_recipient_status(
    staff_client, staff_user, ticket, alice, nobody
):
    message = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        statuses={alice: SENT, nobody: NotificationStatus.CANCELED},
    )
    html = staff_client.get(ticket.get_absolute_url()).content.decode()
    envelope = _envelope(html, message.pk)
    assert 'aria-label="Delivery status"' in envelope and "envelope-failed" not in envelope
    assert "Sent" in envelope and "alice@customer.test" in envelope
    assert "Canceled" in envelope and "nobody@reject.test" in envelope
    assert '<span class="badge">0</span>' in html


def test_other_followers_see_no_envelope_and_cannot_open_or_act(client, ticket, failed, nobody):
    other = UserFactory(username="carla")
    follower_add(record=ticket, contact=contact_for_user(user=other))
    client.force_login(other)
    page = client.get(ticket.get_absolute_url())
    assert page.status_code == 200 and "Broken printer" in page.content.decode()
    assert f'id="envelope-{failed.pk}"' not in page.content.decode()
    assert client.get(reverse("failures:dialog", args=[failed.pk])).status_code == 404
    assert client.post(reverse("failures:ignore", args=[failed.pk])).status_code == 404
    assert client.post(reverse("failures:resend", args=[failed.pk])).status_code == 404
    envelopes = client.get(reverse("failures:envelopes"), {"ids": str(failed.pk)}).json()
    assert envelopes["envelopes"] == {} and envelopes["failure_count"] == 0
    assert Notification.objects.get(message=failed, contact=nobody).status == EXC


def test_anonymous_is_sent_to_login(client, failed):
    response = client.get(reverse("failures:dialog", args=[failed.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_customer_author_sees_the_failures_of_their_own_message(client, ticket, nobody):
    customer = UserFactory(username="dora")
    message = message_with_statuses(
        record=ticket, author=contact_for_user(user=customer), statuses={nobody: EXC}
    )
    client.force_login(customer)
    html = client.get(ticket.get_absolute_url()).content.decode()
    assert 'aria-label="Delivery failure"' in _envelope(html, message.pk)
    dialog = client.get(reverse("failures:dialog", args=[message.pk])).content.decode()
    assert "Nobody Home" in dialog
    # A customer cannot rewrite another contact's address (only internal users can), nor read it.
    assert re.search(r'name="email-\d+" value="" readonly', dialog)
    assert "nobody@reject.test" not in dialog


def test_dialog_lists_recipient_failure_words_and_the_servers_words(staff_client, failed):
    html = staff_client.get(reverse("failures:dialog", args=[failed.pk])).content.decode()
    assert "Sending Failures" in html
    assert "Nobody Home" in html and 'value="nobody@reject.test"' in html
    assert "alice@customer.test" not in html  # delivered: not a failure line
    assert "Refused by the mail server" in html
    assert "See Error Details" in html
    assert "550 5.1.1 &lt;nobody@reject.test&gt;: mailbox unavailable" in html
    assert re.search(r'role="switch" name="resend" value="\d+" checked', html)
    for label in ("Send &amp; close", "Ignore all", "Close"):
        assert label in html
    # Without JavaScript it is a page with a way back to the message.
    assert f"#message-{failed.pk}" in html


def test_ignore_all_cancels_every_failure_and_sends_nothing(staff_client, ticket, failed, nobody):
    from outbox.models import OutgoingMail

    mails_before = OutgoingMail.objects.count()
    response = staff_client.post(reverse("failures:ignore", args=[failed.pk]))
    assert response.status_code == 302
    assert response["Location"].endswith(f"{ticket.get_absolute_url()}#message-{failed.pk}")
    assert Notification.objects.get(message=failed, contact=nobody).status == "canceled"
    assert Notification.objects.get(message=failed, contact__name="Alice Martin").status == SENT
    assert OutgoingMail.objects.count() == mails_before
    html = staff_client.get(ticket.get_absolute_url()).content.decode()
    assert 'aria-label="Delivery status"' in _envelope(html, failed.pk)
    assert "1 delivery failure ignored." in html
    assert '<span class="badge">0</span>' in html


def test_ignore_all_from_the_modal_answers_json_with_the_white_envelope(staff_client, failed):
    response = staff_client.post(
        reverse("failures:ignore", args=[failed.pk]), headers={"X-Requested-With": "fetch"}
    )
    data = response.json()
    assert data["ok"] and data["failure_count"] == 0 and data["message_id"] == failed.pk
    assert 'aria-label="Delivery status"' in data["envelope"]
    assert data["notice"] == "1 delivery failure ignored."


def test_actions_need_post_and_a_csrf_token(staff_user, failed, nobody):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.get(reverse("failures:ignore", args=[failed.pk])).status_code == 405
    assert browser.post(reverse("failures:ignore", args=[failed.pk])).status_code == 403
    assert browser.post(reverse("failures:resend", args=[failed.pk])).status_code == 403
    assert Notification.objects.get(message=failed, contact=nobody).status == EXC


def test_toggled_off_recipients_are_canceled_and_nothing_is_sent(staff_client, failed, nobody):
    from outbox.models import OutgoingMail

    mails_before = OutgoingMail.objects.count()
    line = Notification.objects.get(message=failed, contact=nobody)
    response = staff_client.post(
        reverse("failures:resend", args=[failed.pk]), {f"email-{line.pk}": "nobody@reject.test"}
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.status == "canceled"
    assert OutgoingMail.objects.count() == mails_before


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("nobody@@customer", "is not a valid email address: type it as name@example.com."),
        ("alice@customer.test", "already belongs to the contact Alice Martin"),
    ],
)
def test_a_bad_address_is_refused_with_a_clear_message_and_nothing_changes(
    staff_client, failed, nobody, typed, error
):
    line = Notification.objects.get(message=failed, contact=nobody)
    response = staff_client.post(
        reverse("failures:resend", args=[failed.pk]),
        {"resend": str(line.pk), f"email-{line.pk}": typed},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html and f'value="{typed}"' in html and 'aria-invalid="true"' in html
    nobody.refresh_from_db()
    line.refresh_from_db()
    assert nobody.email == "nobody@reject.test" and line.status == EXC


def test_a_bad_address_in_the_modal_comes_back_as_the_dialog(staff_client, failed, nobody):
    line = Notification.objects.get(message=failed, contact=nobody)
    response = staff_client.post(
        reverse("failures:resend", args=[failed.pk]),
        {"resend": str(line.pk), f"email-{line.pk}": "not an address"},
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code == 400
    data = response.json()
    assert not data["ok"] and "is not a valid email address" in data["dialog"]
    assert "<html" not in data["dialog"]  # the fragment, not a whole page


def test_failures_page_groups_the_users_failed_messages_per_record(
    client, staff_user, ticket, nobody, alice
):
    author = UserFactory(username="erin")
    erin = contact_for_user(user=author)
    quote_like = TicketFactory(title="Second ticket")
    first = message_with_statuses(record=ticket, author=erin, statuses={nobody: EXC})
    second = message_with_statuses(
        record=ticket, author=erin, subject="Reminder", statuses={nobody: EXC}
    )
    third = message_with_statuses(
        record=quote_like, author=erin, subject="Other", statuses={alice: "bounce"}
    )
    # Someone else's failure is not erin's business.
    someone = message_with_statuses(
        record=ticket,
        author=contact_for_user(user=staff_user),
        subject="Staff's",
        statuses={nobody: EXC},
    )
    client.force_login(author)
    html = client.get(reverse("failures:list")).content.decode()
    assert html.count('class="failure-group"') == 2
    assert re.search(rf'href="{ticket.get_absolute_url()}">[^<]*Broken printer</a>', html)
    assert re.search(rf'href="{quote_like.get_absolute_url()}">[^<]*Second ticket</a>', html)
    for message, record in ((first, ticket), (second, ticket), (third, quote_like)):
        assert f'id="envelope-{message.pk}"' in html
        assert f"{record.get_absolute_url()}#message-{message.pk}" in html
    assert f'id="envelope-{someone.pk}"' not in html
    assert '<span class="badge">3</span>' in html

    response = client.post(
        reverse("failures:record_ignore", args=[first.content_type_id, ticket.pk])
    )
    assert response.status_code == 302
    assert Notification.objects.filter(message__in=[first, second], status="canceled").count() == 2
    assert Notification.objects.get(message=someone).status == EXC  # not erin's
    html = client.get(reverse("failures:list")).content.decode()
    assert html.count('class="failure-group"') == 1 and "2 delivery failures ignored." in html
    # Nothing left there to ignore: no silent success.
    again = client.post(reverse("failures:record_ignore", args=[first.content_type_id, ticket.pk]))
    assert again.status_code == 404


def test_staff_see_every_failure_on_the_failures_page(staff_client, ticket, nobody):
    erin = contact_for_user(user=UserFactory(username="erin"))
    message = message_with_statuses(record=ticket, author=erin, statuses={nobody: EXC})
    html = staff_client.get(reverse("failures:list")).content.decode()
    assert (
        f'id="envelope-{message.pk}"' in html and "Nobody Home &lt;nobody@reject.test&gt;" in html
    )


def test_empty_failures_page_says_so(staff_client):
    html = staff_client.get(reverse("failures:list")).content.decode()
    assert "No delivery failures" in html


def test_envelopes_endpoint_answers_the_visible_envelopes_and_whether_to_keep_polling(
    staff_client, staff_user, ticket, alice, nobody, failed
):
    sending = message_with_statuses(
        record=ticket, author=contact_for_user(user=staff_user), statuses={alice: READY}
    )
    url = reverse("failures:envelopes")
    data = staff_client.get(url, {"ids": f"{failed.pk},{sending.pk},999999,x"}).json()
    assert set(data["envelopes"]) == {str(failed.pk), str(sending.pk)}
    assert data["pending"] is True and data["failure_count"] == 1
    assert 'data-state="pending"' in data["envelopes"][str(sending.pk)]
    assert 'data-state="failed"' in data["envelopes"][str(failed.pk)]
    Notification.objects.filter(message=sending).update(status=SENT)
    data = staff_client.get(url, {"ids": f"{sending.pk}"}).json()
    assert data["pending"] is False and 'data-state="done"' in data["envelopes"][str(sending.pk)]


def test_failures_page_and_envelopes_cost_a_fixed_number_of_queries(staff_client, ticket):
    def queries(count: int) -> int:
        contacts = Contact.objects.bulk_create(
            [Contact(name=f"q{count}-{i}", email=f"q{count}-{i}@reject.test") for i in range(3)]
        )
        ids = [
            message_with_statuses(
                record=TicketFactory(), author=None, statuses={c: EXC for c in contacts}
            ).pk
            for _ in range(count)
        ]
        staff_client.get(reverse("failures:list"))  # warm per-process caches
        with CaptureQueriesContext(connection) as page:
            assert staff_client.get(reverse("failures:list")).status_code == 200
        with CaptureQueriesContext(connection) as poll:
            staff_client.get(reverse("failures:envelopes"), {"ids": ",".join(map(str, ids))})
        return len(page), len(poll)

    assert queries(2) == queries(20)


def test_send_and_close_fixes_the_address_and_hands_the_line_back_to_the_outbox(
    staff_client, failed, nobody
):
    from outbox.models import MailRecipient

    line = Notification.objects.get(message=failed, contact=nobody)
    response = staff_client.post(
        reverse("failures:resend", args=[failed.pk]),
        {"resend": str(line.pk), f"email-{line.pk}": "  Nobody@Customer.test "},
        headers={"X-Requested-With": "fetch"},
    )
    data = response.json()
    assert data["ok"] and data["notice"] == "Sending again to 1 recipient."
    assert 'data-state="pending"' in data["envelope"] and data["failure_count"] == 0
    nobody.refresh_from_db()
    line.refresh_from_db()
    assert nobody.email == "nobody@customer.test"
    assert line.status == READY and line.failure_reason == ""
    recipient = MailRecipient.objects.get(notification=line)
    assert recipient.address == "nobody@customer.test"
    # A new mail with its own Message-ID, threaded under the message.
    assert recipient.mail.message_id != failed.message_id
    assert recipient.mail.in_reply_to == failed.message_id


def test_only_lines_still_failing_are_resent(staff_client, failed, nobody):
    from outbox.models import MailRecipient

    line = Notification.objects.get(message=failed, contact=nobody)
    # Another tab ignored it meanwhile: Send & close must not resurrect it.
    Notification.objects.filter(pk=line.pk).update(status="canceled")
    response = staff_client.post(
        reverse("failures:resend", args=[failed.pk]), {"resend": str(line.pk)}
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.status == "canceled"
    assert not MailRecipient.objects.filter(notification=line).exists()


def test_a_customer_author_cannot_rewrite_an_address(client, ticket, nobody):
    customer = UserFactory(username="fred")
    message = message_with_statuses(
        record=ticket, author=contact_for_user(user=customer), statuses={nobody: EXC}
    )
    line = Notification.objects.get(message=message)
    client.force_login(customer)
    response = client.post(
        reverse("failures:resend", args=[message.pk]),
        {"resend": str(line.pk), f"email-{line.pk}": "fred-owns-this@evil.test"},
    )
    assert response.status_code == 302
    nobody.refresh_from_db()
    line.refresh_from_db()
    # Sent again to the same address; the contact is untouched.
    assert nobody.email == "nobody@reject.test" and line.status == READY


@pytest.mark.parametrize(
    ("failure_type", "reason", "words"),
    [
        ("mail_smtp_refused", "550 5.1.1 no such user", "Refused by the mail server"),
        ("mail_bounce", "5.1.1 user unknown", "Bounce"),
        (
            "unknown",
            "Connection reset by peer\ntraceback…",
            "Unknown error: Connection reset by peer",
        ),
        ("", "", "Unknown error"),
    ],
)
def test_failure_type_in_words(failure_type, reason, words):
    from chatter.failures import failure_reason_words

    line = Notification(status=EXC, failure_type=failure_type, failure_reason=reason)
    assert failure_reason_words(line) == words
