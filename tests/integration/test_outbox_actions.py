"""Retry, Send Now, Cancel Email, the red envelope's resend, and waking the queue."""

import datetime as dt

import pytest
from django.utils import timezone

from chatter.models import FailureType, Notification, NotificationStatus
from outbox.models import MailRecipient, MailState, OutgoingMail, RecipientStatus
from outbox.services import (
    mails_cancel,
    mails_retry,
    mails_send,
    mails_send_now,
    notifications_resend,
)
from tests.support.outbox import enqueue, post_to

pytestmark = pytest.mark.django_db


def test_retry_resends_only_the_failed_recipient(
    relay, outbox_settings, django_capture_on_commit_callbacks
):
    message = post_to("anna@customer.test", "nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    assert mail.state == MailState.EXCEPTION
    relay.handler.rcpt_rules.clear()  # the mailbox exists now
    with django_capture_on_commit_callbacks() as callbacks:
        assert mails_retry(mail_ids=[mail.pk]) == 1
    assert callbacks, "Retry wakes the queue manager after commit"
    note = Notification.objects.get(message=message, contact__email="nobody@reject.test")
    assert (note.status, note.failure_type, note.failure_reason) == (
        NotificationStatus.READY,
        "",
        "",
    )
    mails_send()
    delivered = [r for m in relay.handler.received for r in m.rcpt_tos]
    assert sorted(delivered) == ["anna@customer.test", "nobody@reject.test"]
    note.refresh_from_db()
    assert note.status == NotificationStatus.SENT
    assert not OutgoingMail.objects.exists()


def test_retry_refuses_mail_that_was_sent(relay, outbox_settings):
    (mail,) = enqueue(1)
    mails_send()
    assert mails_retry(mail_ids=[mail.pk]) == 0
    mails_send()
    assert len(relay.handler.received) == 1


def test_cancel_stops_queued_mail_and_its_notifications(relay, outbox_settings):
    message = post_to("anna@customer.test")
    mail = OutgoingMail.objects.get()
    assert mails_cancel(mail_ids=[mail.pk]) == 1
    mails_send()
    assert relay.handler.received == []
    mail.refresh_from_db()
    assert mail.state == MailState.CANCEL
    assert MailRecipient.objects.get(mail=mail).status == RecipientStatus.CANCELED
    note = Notification.objects.get(message=message)
    assert note.status == NotificationStatus.CANCELED
    # Retry brings a cancelled mail back.
    assert mails_retry(mail_ids=[mail.pk]) == 1
    mails_send()
    assert [m.message_id for m in relay.handler.received] == [mail.message_id]


def test_send_now_sends_scheduled_mail_at_once(
    relay, outbox_settings, django_capture_on_commit_callbacks
):
    later = timezone.now() + dt.timedelta(days=2)
    (mail,) = enqueue(1, scheduled_at=later)
    mails_send()
    assert relay.handler.received == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert mails_send_now(mail_ids=[mail.pk]) == 1
    assert len(callbacks) == 1
    mails_send(mail_ids=[mail.pk])
    assert relay.handler.message_ids() == [mail.message_id]


def test_resend_uses_a_fresh_message_id_threaded_under_the_message(relay, outbox_settings):
    message = post_to("nobody@reject.test")
    mails_send()
    failed_mail = OutgoingMail.objects.get()
    note = Notification.objects.get(message=message)
    assert note.failure_type == FailureType.SMTP_REFUSED
    relay.handler.rcpt_rules.clear()
    (new_mail,) = notifications_resend(notifications=[note])
    note.refresh_from_db()
    assert (note.status, note.failure_reason, note.mail_id) == (
        NotificationStatus.READY,
        "",
        new_mail.pk,
    )
    assert new_mail.message_id not in (failed_mail.message_id, message.message_id)
    mails_send()
    (received,) = relay.handler.received
    assert received.message_id == new_mail.message_id
    assert received.message["In-Reply-To"] == message.message_id
    assert message.message_id in received.message["References"]
    note.refresh_from_db()
    assert note.status == NotificationStatus.SENT
    failed_mail.refresh_from_db()  # the old failed mail keeps its own Message-ID and state
    assert failed_mail.state == MailState.EXCEPTION
