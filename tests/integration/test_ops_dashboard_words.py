"""/ops/ says the truth: a bounce rate of the mail sent in its window, and the real last and
next runs of the scheduled tasks (recorded by a real worker process)."""

import datetime as dt

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from chatter.models import BounceEvent, BounceEventKind, Message, Notification
from chatter.services import subtype_get
from diagnostics import selectors
from outbox.models import DailyQuota
from tests.conftest import wait_for
from tests.support.chatter import ContactFactory, TicketFactory


def _bounce(*, sent_days_ago: int, contact, ticket) -> None:
    message = Message.objects.create(
        content_type=ContentType.objects.get_for_model(ticket),
        object_id=ticket.pk,
        subtype=subtype_get(code="discussion"),
        body="<p>x</p>",
    )
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - dt.timedelta(days=sent_days_ago)
    )
    note = Notification.objects.create(
        message=message, contact=contact, kind="email", status="bounce"
    )
    BounceEvent.objects.create(
        contact=contact, kind=BounceEventKind.HARD, at=timezone.now(), notification=note
    )


@pytest.mark.django_db
def test_bounce_rate_counts_bounces_of_the_mail_sent_in_the_window():
    ticket = TicketFactory()
    today = timezone.now().date()
    DailyQuota.objects.create(day=today, used=1)
    # Three late bounces today of mail sent 40 days ago, one of today's single mail.
    for index in range(3):
        _bounce(sent_days_ago=40, contact=ContactFactory(email=f"old{index}@x.test"), ticket=ticket)
    _bounce(sent_days_ago=0, contact=ContactFactory(email="new@x.test"), ticket=ticket)
    bounced, sent, rate = selectors.bounce_rate(selectors.mail_per_day(days=30))
    assert (bounced, sent, rate) == (1, 1, 100.0)
    assert selectors.bounce_rate(selectors.mail_per_day(days=1))[2] <= 100.0


@pytest.mark.django_db(transaction=True)
def test_ops_shows_the_real_last_run_and_the_next_due_time(
    celery_worker_process, client, staff_user
):
    every = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    task, _ = PeriodicTask.objects.update_or_create(
        name="Mail: Auto-vacuum of sent and cancelled mail",
        defaults={"task": "outbox.mails_vacuum", "interval": every, "last_run_at": None},
    )
    client.force_login(staff_user)
    assert "never" in client.get("/ops/").content.decode()

    celery_worker_process()
    from outbox.tasks import mails_vacuum

    mails_vacuum.delay()
    wait_for(
        lambda: PeriodicTask.objects.get(pk=task.pk).last_run_at is not None,
        timeout=30,
        message="the worker records the run",
    )
    task.refresh_from_db()
    assert abs((timezone.now() - task.last_run_at).total_seconds()) < 30
    page = client.get("/ops/").content.decode()
    assert task.last_run_at.strftime("%Y-%m-%d %H:%M") in page
    due = (task.last_run_at + dt.timedelta(minutes=15)).strftime("%Y-%m-%d %H:%M")
    assert due in page
