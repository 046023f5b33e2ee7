"""Urgent and scheduled mail through a real Celery worker process and a real relay."""

import datetime as dt
import time

import pytest
from django.db import transaction
from django.utils import timezone

from chatter.models import Notification, NotificationStatus
from outbox.models import OutgoingMail
from tests.conftest import wait_for
from tests.support.outbox import enqueue, post_to

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_urgent_mail_leaves_once_after_commit_and_rollback_sends_nothing(
    relay, celery_worker_process
):
    worker = celery_worker_process()
    with pytest.raises(RuntimeError), transaction.atomic():
        post_to("rolled-back@customer.test")
        raise RuntimeError("the user's request failed")
    message = post_to("anna@customer.test")
    wait_for(
        lambda: relay.handler.received,
        timeout=60,
        message=f"the worker did not deliver:\n{worker.output()[-3000:]}",
    )
    wait_for(lambda: not OutgoingMail.objects.exists(), message="sent mail was not deleted")
    time.sleep(1)  # a duplicate or the rolled-back mail would arrive by now
    (received,) = relay.handler.received
    assert received.rcpt_tos == ["anna@customer.test"]
    assert received.message_id == message.message_id
    note = Notification.objects.get(message=message)
    assert note.status == NotificationStatus.SENT


def test_scheduled_mail_wakes_the_queue_at_its_time(relay, celery_worker_process):
    celery_worker_process()
    at = timezone.now() + dt.timedelta(seconds=3)
    (mail,) = enqueue(1, scheduled_at=at)
    wait_for(lambda: relay.handler.received, timeout=60, message="the early run never came")
    assert time.time() >= at.timestamp() - 0.5
    assert relay.handler.message_ids() == [mail.message_id]
