"""Reads for the operations dashboard: mail per day, quota, queue depth, bounce rate, tasks.

Every function here costs one query (or none); the dashboard's total is pinned in a test.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import Coalesce, TruncDate
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from chatter.models import BounceEvent, BounceEventKind
from inbound.models import AliasDomain
from outbox.models import DailyQuota, MailState, OutgoingMail


@dataclass(frozen=True)
class DayCount:
    day: dt.date
    sent: int
    failed: int
    bounced: int

    @property
    def bounce_rate(self) -> float:
        """Bounced / sent that day, in %; no query."""
        return 100.0 * self.bounced / self.sent if self.sent else 0.0


def _day_range(*, days: int, today: dt.date) -> list[dt.date]:
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def mail_per_day(*, days: int = 30, today: dt.date | None = None) -> list[DayCount]:
    """Sent, failed and bounced mail for each of the last ``days`` days (UTC), oldest first.

    Sources that survive auto-delete: *sent* is the daily quota counter (every mail leaving
    counts, seed "Daily limit reached"); *failed* is mail kept in Delivery Failed, by the day it
    was created; *bounced* is hard bounces, by the day their mail was sent. Three queries.
    """
    today = today or timezone.now().date()
    span = _day_range(days=days, today=today)
    start = dt.datetime.combine(span[0], dt.time(), tzinfo=dt.UTC)
    sent = dict(DailyQuota.objects.filter(day__gte=span[0]).values_list("day", "used"))
    failed = dict(
        OutgoingMail.objects.filter(state=MailState.EXCEPTION, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    # Hard bounces only (a full mailbox or a policy block is no reason to distrust an address),
    # from the contacts' bounce history, which outlives the vacuumed mail.
    # Each bounce counts on the day its mail left (the message's day; the bounce's own day when
    # the mail is unknown), so a rate over a window is bounces of the mail sent in it, not the
    # late bounces of older mail over the few mails of a quiet day (300 %).
    bounced = dict(
        BounceEvent.objects.filter(kind=BounceEventKind.HARD)
        .annotate(sent_at=Coalesce("notification__message__created_at", "at"))
        .filter(sent_at__gte=start)
        .annotate(day=TruncDate("sent_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [
        DayCount(
            day=day,
            sent=sent.get(day, 0),
            failed=failed.get(day, 0),
            bounced=bounced.get(day, 0),
        )
        for day in span
    ]


def bounce_rate(per_day: list[DayCount]) -> tuple[int, int, float]:
    """(bounced, sent, rate in %) over the given days; no query."""
    bounced = sum(d.bounced for d in per_day)
    sent = sum(d.sent for d in per_day)
    return bounced, sent, (100.0 * bounced / sent) if sent else 0.0


def complaint_rate(*, days: int = 30, sent: int) -> tuple[int, float]:
    """(complaints, rate in %) over the last ``days``: feedback-loop reports per mail sent.

    Complaints come from the contacts' history (RFC 5965 reports tied to one copy of ours);
    ``sent`` is the mail sent in the same days (``bounce_rate``'s). One query.
    """
    start = timezone.now() - dt.timedelta(days=days)
    complaints = BounceEvent.objects.filter(kind=BounceEventKind.COMPLAINED, at__gte=start).count()
    return complaints, (100.0 * complaints / sent) if sent else 0.0


def quota_today(per_day: list[DayCount]) -> tuple[int, int]:
    """(used today, daily limit); today is the last day of ``per_day``; no query."""
    return (per_day[-1].sent if per_day else 0), settings.MAILHUB_DAILY_QUOTA


def queue_depth() -> list[tuple[str, str, int]]:
    """(state, label, count) for every state of the outbox, zeros included. One query."""
    counts = dict(
        OutgoingMail.objects.order_by()
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return [(state.value, state.label, counts.get(state.value, 0)) for state in MailState]


@dataclass(frozen=True)
class TaskRow:
    name: str
    task: str
    enabled: bool
    last_run_at: dt.datetime | None
    next_run: dt.datetime | None
    schedule: str
    edit_url: str


def _interval_text(every: int, period: str) -> str:
    unit = period[:-1] if every == 1 and period.endswith("s") else period
    return f"every {every} {unit}"


def scheduled_tasks(*, now: dt.datetime | None = None) -> list[TaskRow]:
    """The beat schedule (django_celery_beat) with an estimate of each next run. One query."""
    now = now or timezone.now()
    rows = []
    tasks = PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked")
    for task in tasks.order_by("name"):
        next_run = None
        if task.interval:
            schedule = _interval_text(task.interval.every, task.interval.period)
            step = dt.timedelta(**{task.interval.period: task.interval.every})
            # Due one interval after the last run; before any run, one interval after beat
            # starts (unknown here) or at the task's start time.
            if task.last_run_at:
                next_run = task.last_run_at + step
            elif task.start_time:
                next_run = task.start_time
            else:
                next_run = None
        elif task.crontab:
            schedule = (
                f"cron {task.crontab.minute} {task.crontab.hour} {task.crontab.day_of_month} "
            )
            schedule += f"{task.crontab.month_of_year} {task.crontab.day_of_week}"
            try:
                remaining = task.crontab.schedule.remaining_estimate(task.last_run_at or now)
                # Celery measures from its own "now", a few microseconds later: round to the
                # minute so 03:30 does not show as 03:29.
                estimate = now + remaining + dt.timedelta(seconds=30)
                next_run = estimate.replace(second=0, microsecond=0)
            except (ValueError, TypeError):  # an unparsable crontab: show it without estimate
                next_run = None
        elif task.clocked:
            schedule = "once"
            next_run = task.clocked.clocked_time
        else:
            schedule = str(task.solar) if task.solar else "—"
        rows.append(
            TaskRow(
                name=task.name,
                task=task.task,
                enabled=task.enabled,
                last_run_at=task.last_run_at,
                next_run=next_run if task.enabled else None,
                schedule=schedule,
                edit_url=reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
            )
        )
    return rows


def alias_domains() -> list:
    return list(AliasDomain.objects.order_by("domain"))
