"""The outbox's beat schedules and the rule that keeps the queue manager from running too often.

Beat (django_celery_beat) reads its schedule from the database; migration 0003 creates
"Mail: Email Queue Manager" (every 60 minutes) and "Mail: Auto-vacuum" (daily). Urgent mail and
scheduled mail wake the queue early, so the periodic run only sweeps up retries and leftovers:
running it more often than every 5 minutes only burns database time (15 is recommended).
"""

from django.core.exceptions import ValidationError

QUEUE_TASK = "outbox.queue_run"
QUEUE_TASK_NAME = "Mail: Email Queue Manager"
VACUUM_TASK = "outbox.mails_vacuum"
VACUUM_TASK_NAME = "Mail: Auto-vacuum of sent and cancelled mail"
MIN_QUEUE_MINUTES = 5

_SECONDS = {
    "microseconds": 1e-6,
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "days": 86400,
}


def interval_seconds(every: int, period: str) -> float:
    return every * _SECONDS.get(period, 1)


def queue_interval_check(*, task: str, interval) -> None:
    """Refuse an Email Queue Manager interval under 5 minutes, saying what to pick instead."""
    if task != QUEUE_TASK or interval is None:
        return
    if interval_seconds(interval.every, interval.period) < MIN_QUEUE_MINUTES * 60:
        raise ValidationError(
            {
                "interval": f"The Email Queue Manager cannot run more often than every "
                f"{MIN_QUEUE_MINUTES} minutes (15 is recommended): urgent and scheduled mail "
                "wake it by themselves. Choose a longer interval."
            }
        )


def periodic_task_pre_save(sender, instance, **kwargs) -> None:
    """Model-level guard: every save of the queue manager's schedule is checked, not only forms."""
    queue_interval_check(task=instance.task, interval=instance.interval)


def interval_pre_save(sender, instance, **kwargs) -> None:
    """Editing a shared interval row must not make the queue manager run too often either."""
    if instance.pk is None:
        return
    from django_celery_beat.models import PeriodicTask

    if PeriodicTask.objects.filter(interval_id=instance.pk, task=QUEUE_TASK).exists():
        queue_interval_check(task=QUEUE_TASK, interval=instance)
