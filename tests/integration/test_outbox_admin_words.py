"""Admin → Emails says what happened, in the server's words, and Retry keeps what the user
decided in the Sending Failures dialog (real relay on loopback, real outbox)."""

import re

import pytest
from django.contrib.auth import get_user_model

from chatter.failures import message_failures_ignore, message_failures_resend
from chatter.models import Notification, NotificationStatus
from diagnostics.selectors import queue_depth
from outbox.models import MailAttempt, MailState, OutgoingMail
from outbox.services import mails_retry, mails_send
from tests.support.outbox import enqueue, post_to

pytestmark = pytest.mark.django_db


def _failed_depth() -> int:
    return {state: n for state, _, n in queue_depth()}["exception"]


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@shop.test", "pw")
    client.force_login(admin)
    return client


def _texts(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_send_now_says_sent_deferred_or_failed_per_mail(relay, outbox_settings, admin_client):
    sent, deferred, failed = (
        enqueue(1, to="anna@customer.test")[0],
        enqueue(1, to="dana@defer.test")[0],
        enqueue(1, to="nobody@reject.test")[0],
    )
    response = admin_client.post(
        "/admin/outbox/outgoingmail/",
        {"action": "action_send_now", "_selected_action": [sent.pk, deferred.pk, failed.pk]},
        follow=True,
    )
    said = "\n".join(_texts(response))
    assert f"Mail {sent.pk} " in said and re.search(rf"Mail {sent.pk} “[^”]*”: sent\.", said)
    assert re.search(rf"Mail {deferred.pk} “[^”]*”: deferred again by the server: 451", said)
    assert "next attempt" in said
    assert re.search(rf"Mail {failed.pk} “[^”]*”: failed: .*550", said)
    assert "sent now" not in said

    # The list's "Last error" quotes the 451 of the deferred mail (its row has no reason).
    page = admin_client.get("/admin/outbox/outgoingmail/").content.decode()
    row = re.search(
        rf"<tr[^>]*>(?:(?!</tr>).)*?/{deferred.pk}/change/(?:(?!</tr>).)*</tr>", page, re.S
    )
    assert row and "451" in row.group(0)
    assert MailAttempt.objects.filter(mail=deferred, code=451).exists()


def test_retry_keeps_ignored_and_corrected_recipients(relay, outbox_settings):
    message = post_to("anna@customer.test", "nobody@reject.test", "nemo@reject.test")
    mails_send()
    old = OutgoingMail.objects.get(state=MailState.EXCEPTION)
    nobody = Notification.objects.get(message=message, contact__email="nobody@reject.test")
    nemo = Notification.objects.get(message=message, contact__email="nemo@reject.test")

    # The dialog: nobody's address corrected and tried again, nemo switched off.
    message_failures_resend(
        message=message, resend_ids=[nobody.pk], addresses={nobody.pk: "nobody@customer.test"}
    )
    mails_send()
    relay.handler.received.clear()
    relay.handler.rcpt_rules.clear()  # every mailbox exists now

    assert mails_retry(mail_ids=[old.pk]) == 0  # nobody left to resend on the old mail
    mails_send()
    assert relay.handler.received == []
    nemo.refresh_from_db()
    assert nemo.status == NotificationStatus.CANCELED  # stays ignored, envelope stays white


def test_ignore_all_takes_the_mail_out_of_the_failure_views(relay, outbox_settings, admin_client):
    message = post_to("nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    assert mail.state == MailState.EXCEPTION
    assert _failed_depth() == 1
    failed_list = "/admin/outbox/outgoingmail/?state__exact=exception"
    assert f"/{mail.pk}/change/" in admin_client.get(failed_list).content.decode()

    assert message_failures_ignore(message=message) == 1
    mail.refresh_from_db()
    assert mail.state == MailState.CANCEL and mail.attempts >= 1  # history kept
    assert _failed_depth() == 0
    assert f"/{mail.pk}/change/" not in admin_client.get(failed_list).content.decode()

    relay.handler.rcpt_rules.clear()
    assert mails_retry(mail_ids=[mail.pk]) == 0
    note = Notification.objects.get(message=message)
    assert note.status == NotificationStatus.CANCELED


def test_email_detail_has_human_labels_and_action_buttons(relay, outbox_settings, admin_client):
    post_to("nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    page = admin_client.get(f"/admin/outbox/outgoingmail/{mail.pk}/change/").content.decode()
    assert " object (" not in page
    assert "nobody@reject.test: Failed (550" in page
    assert "Refused by the mail server" in page
    for label in ("Retry", "Cancel Email"):
        assert f'class="button">{label}</button>' in page
    assert "Send Now</button>" not in page  # only for outgoing mail

    listing = admin_client.get("/admin/outbox/outgoingmail/").content.decode()
    assert "Refused by the mail server" in listing and "mail_smtp_refused<" not in listing

    response = admin_client.post(f"/admin/outbox/outgoingmail/{mail.pk}/do/cancel/", follow=True)
    assert any("1 mail(s) cancelled." == t for t in _texts(response))
    mail.refresh_from_db()
    assert mail.state == MailState.CANCEL


def test_eml_export_is_the_bytes_that_left_per_recipient(relay, outbox_settings, admin_client):
    from outbox.models import MailRecipient

    post_to("anna@customer.test", "nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    anna = MailRecipient.objects.get(mail=mail, address="anna@customer.test")
    url = f"/admin/outbox/outgoingmail/{mail.pk}/eml/"

    # Default: the copy of the recipient that failed, with its own To and reply address (no
    # Return-Path header: the envelope carries the VERP address, RFC 5321 §4.4).
    failed = admin_client.get(url).content
    assert failed.startswith(b"To: nobody@reject.test\r\n")
    assert b"\r\nReply-To: reply+" in failed
    assert b"Return-Path:" not in failed

    # Anna's copy is byte for byte what the relay received (the relay adds nothing).
    (received,) = relay.handler.received
    sent = admin_client.get(url, {"recipient": anna.pk}).content
    assert sent.replace(b"\r\n", b"\n") == received.data.replace(b"\r\n", b"\n")
    assert b"To: anna@customer.test" in sent

    detail = admin_client.get(f"/admin/outbox/outgoingmail/{mail.pk}/change/").content.decode()
    assert f"{url}?recipient={anna.pk}" in detail
