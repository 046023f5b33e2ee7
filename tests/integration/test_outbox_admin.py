"""The admin email queue, mail servers' Test connection, and the queue manager's schedule."""

import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from chatter.models import Notification, NotificationStatus
from outbox.models import MailServer, MailState, OutgoingMail
from outbox.schedule import QUEUE_TASK, QUEUE_TASK_NAME, VACUUM_TASK
from outbox.services import mails_send
from tests.support.outbox import enqueue, post_to

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/outbox/outgoingmail/"


@pytest.fixture
def staff_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(
        "root", "root@mailhub.test", "root-password"
    )
    client.force_login(admin_user)
    return client


def test_queue_lists_state_attempts_and_last_error(staff_client, relay, outbox_settings):
    post_to("nobody@reject.test", subject="Invoice overdue")
    enqueue(1)
    mails_send()
    page = staff_client.get(CHANGELIST).content.decode()
    assert "Emails" in page
    assert "Invoice overdue" in page
    assert "Delivery Failed" in page
    assert "SMTPRecipientsRefused: 550" in page  # last error column
    failed_only = staff_client.get(CHANGELIST, {"state__exact": "exception"}).content.decode()
    assert "Invoice overdue" in failed_only and "Mail 0" not in failed_only
    by_recipient = staff_client.get(CHANGELIST, {"q": "nobody@reject.test"}).content.decode()
    assert "Invoice overdue" in by_recipient and "Mail 0" not in by_recipient


def test_detail_shows_failure_reason_and_attempt_history(staff_client, relay, outbox_settings):
    post_to("nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    page = staff_client.get(f"{CHANGELIST}{mail.pk}/change/").content.decode()
    assert "Mail delivery failed via SMTP server" in page
    assert "Attempt history" in page
    assert "mailbox unavailable" in page
    eml = staff_client.get(f"{CHANGELIST}{mail.pk}/eml/")
    assert eml["Content-Type"] == "message/rfc822"
    assert f"Message-ID: {mail.message_id}".encode() in eml.content  # the MIME as sent


def test_bulk_retry_and_cancel_actions(staff_client, relay, outbox_settings):
    message = post_to("nobody@reject.test")
    mails_send()
    mail = OutgoingMail.objects.get()
    relay.handler.rcpt_rules.clear()
    response = staff_client.post(
        CHANGELIST, {"action": "action_retry", "_selected_action": [mail.pk]}, follow=True
    )
    assert "1 mail(s) queued again." in response.content.decode()
    mails_send()
    assert Notification.objects.get(message=message).status == NotificationStatus.SENT
    (queued,) = enqueue(1)
    response = staff_client.post(
        CHANGELIST,
        {"action": "action_cancel", "_selected_action": [queued.pk]},
        follow=True,
    )
    assert "1 mail(s) cancelled." in response.content.decode()
    queued.refresh_from_db()
    assert queued.state == MailState.CANCEL
    response = staff_client.post(
        CHANGELIST, {"action": "action_send_now", "_selected_action": [queued.pk]}, follow=True
    )
    assert "only to outgoing mail" in response.content.decode()


def test_test_connection_reports_the_servers_words(staff_client, relay):
    server = MailServer.objects.create(name="Loopback", host="127.0.0.1", port=relay.port)
    response = staff_client.post(
        "/admin/outbox/mailserver/",
        {"action": "action_test_connection", "_selected_action": [server.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Connection Test Successful for Loopback" in page
    assert "RCPT TO → 250" in page
    relay.handler.rcpt_rules.insert(0, ("*", "550 5.7.1 relaying denied"))
    page = staff_client.post(
        "/admin/outbox/mailserver/",
        {"action": "action_test_connection", "_selected_action": [server.pk]},
        follow=True,
    ).content.decode()
    assert "Connection Test Failed for Loopback" in page
    assert "relaying denied" in page


def test_schedules_exist_and_queue_refuses_under_five_minutes(staff_client):
    queue = PeriodicTask.objects.get(name=QUEUE_TASK_NAME)
    assert queue.task == QUEUE_TASK
    assert (queue.interval.every, queue.interval.period) == (60, "minutes")
    assert PeriodicTask.objects.filter(task=VACUUM_TASK, interval__period="days").exists()
    fast = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    queue.interval = fast
    with pytest.raises(ValidationError, match="more often than every 5 minutes"):
        queue.save()
    page = staff_client.post(
        f"/admin/django_celery_beat/periodictask/{queue.pk}/change/",
        {
            "name": QUEUE_TASK_NAME,
            "regtask": QUEUE_TASK,
            "task": QUEUE_TASK,
            "interval": fast.pk,
            "enabled": "on",
            "args": "[]",
            "kwargs": "{}",
            "headers": "{}",
        },
    ).content.decode()
    assert "more often than every 5 minutes (15 is recommended)" in page
    queue.refresh_from_db()
    assert queue.interval.every == 60


def test_staff_reach_the_queue_from_the_top_bar(staff_client):
    page = staff_client.get("/").content.decode()
    assert f'href="{CHANGELIST}">Emails</a>' in page
