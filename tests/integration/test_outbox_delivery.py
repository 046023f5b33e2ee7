"""Delivery against a real SMTP relay on loopback (aiosmtpd): outcomes per recipient."""

import datetime as dt

import pytest
from django.utils import timezone

from chatter.models import FailureType, Notification, NotificationStatus
from outbox.models import MailAttempt, MailRecipient, MailState, OutgoingMail, RecipientStatus
from outbox.services import mails_send
from outbox.verp import parse_bounce_address
from tests.conftest import free_port
from tests.support.outbox import enqueue, post_to

pytestmark = pytest.mark.django_db


def _status(message) -> dict[str, Notification]:
    return {n.contact.email: n for n in Notification.objects.filter(message=message)}


def test_notification_delivered_and_auto_deleted(relay, outbox_settings):
    message = post_to("anna@customer.test", "ben@customer.test")
    mails_send()
    received = relay.handler.received
    assert sorted(r for m in received for r in m.rcpt_tos) == [
        "anna@customer.test",
        "ben@customer.test",
    ]
    # Each recipient's envelope sender is its own signed VERP address.
    refs = {parse_bounce_address(m.mail_from) for m in received}
    notes = _status(message)
    assert {(r.kind, r.pk) for r in refs} == {("n", n.pk) for n in notes.values()}
    assert all(n.status == NotificationStatus.SENT for n in notes.values())
    assert not OutgoingMail.objects.exists()  # auto-deleted once sent
    assert received[0].message["Subject"] == "Status"
    assert received[0].message["To"] in ("anna@customer.test", "ben@customer.test")


def test_one_refused_recipient_fails_exactly_its_notification(relay, outbox_settings):
    message = post_to("anna@customer.test", "nobody@reject.test", "ben@customer.test")
    mails_send()
    notes = _status(message)
    assert notes["anna@customer.test"].status == NotificationStatus.SENT
    assert notes["ben@customer.test"].status == NotificationStatus.SENT
    failed = notes["nobody@reject.test"]
    assert failed.status == NotificationStatus.EXCEPTION
    assert failed.failure_type == FailureType.SMTP_REFUSED
    assert failed.failure_reason == (
        "Mail delivery failed via SMTP server '127.0.0.1'.\nSMTPRecipientsRefused: 550\n"
        "5.1.1 <nobody@reject.test>: mailbox unavailable"
    )
    mail = OutgoingMail.objects.get()  # the failed copy stays for Retry and inspection
    assert mail.state == MailState.EXCEPTION
    attempt = MailAttempt.objects.get(mail=mail, recipient="nobody@reject.test")
    assert (attempt.code, attempt.error_class) == (550, "SMTPRecipientsRefused")


def test_5xx_at_data_fails_at_once_with_the_servers_words(relay, outbox_settings):
    relay.handler.data_reply = "554 5.7.1 Message rejected as spam"
    (mail,) = enqueue(1)
    mails_send()
    mail.refresh_from_db()
    assert mail.state == MailState.EXCEPTION
    assert mail.attempts == 1
    assert "SMTPDataError: 554\n5.7.1 Message rejected as spam" in mail.failure_reason
    recipient = mail.recipients.get()
    assert (recipient.status, recipient.code) == (RecipientStatus.FAILED, 554)


def test_4xx_is_retried_with_backoff_then_failed(relay, outbox_settings):
    outbox_settings.MAILHUB_RETRY_DELAYS = [60]
    message = post_to("later@defer.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    assert mail.state == MailState.OUTGOING
    assert mail.attempts == 1
    assert mail.next_attempt_at > timezone.now() + dt.timedelta(seconds=50)
    assert _status(message)["later@defer.test"].status == NotificationStatus.READY
    mails_send()  # not due yet: nothing is attempted
    assert MailAttempt.objects.filter(mail=mail).count() == 1
    for expected_attempts in (2, 3):
        OutgoingMail.objects.filter(pk=mail.pk).update(next_attempt_at=timezone.now())
        mails_send()
        mail.refresh_from_db()
        assert mail.attempts == expected_attempts
    assert mail.state == MailState.EXCEPTION
    note = _status(message)["later@defer.test"]
    assert note.status == NotificationStatus.EXCEPTION
    assert note.failure_type == FailureType.SMTP
    assert "451" in note.failure_reason and "try again later" in note.failure_reason
    assert relay.handler.received == []


def test_relay_down_loses_nothing(relay, outbox_settings):
    # Nothing listens on a fresh free port: the client gets "connection refused".
    outbox_settings.MAILHUB_RELAY_PORT = free_port()
    message = post_to("anna@customer.test")
    (queued,) = enqueue(1)
    mails_send()
    mails = list(OutgoingMail.objects.order_by("id"))
    assert [m.state for m in mails] == [MailState.OUTGOING, MailState.OUTGOING]
    assert all(m.next_attempt_at is not None for m in mails)
    assert MailAttempt.objects.filter(error_class="ConnectionRefusedError").count() == 2
    assert _status(message)["anna@customer.test"].status == NotificationStatus.READY
    outbox_settings.MAILHUB_RELAY_PORT = relay.port
    OutgoingMail.objects.update(next_attempt_at=timezone.now())
    mails_send()
    assert sorted(m.message_id for m in relay.handler.received) == sorted(
        [queued.message_id, message.message_id]
    )
    assert _status(message)["anna@customer.test"].status == NotificationStatus.SENT


def test_message_id_is_stable_across_retries(relay, outbox_settings):
    relay.handler.data_reply = "451 4.3.0 busy"
    (mail,) = enqueue(1)
    mails_send()
    relay.handler.data_reply = None
    OutgoingMail.objects.filter(pk=mail.pk).update(next_attempt_at=timezone.now())
    mails_send()
    mail.refresh_from_db()
    assert mail.state == MailState.SENT
    assert relay.handler.message_ids() == [mail.message_id]
    assert MailRecipient.objects.get(mail=mail).status == RecipientStatus.SENT
