"""When each scheduled task really ran: recorded by the worker when the task finishes.

Celery beat's database scheduler writes ``PeriodicTask.last_run_at`` only when it sends the task
and only at its next sync (minutes later, or never for a run woken early by the app, such as the
queue manager after Send). ``/ops/`` reads that column, so the worker records every finished run
of a scheduled task there, whoever started it. Beat keeps its own in-memory copy to decide when
the next run is due: this write does not move the schedule.
"""

from django.utils import timezone
from django_celery_beat.models import PeriodicTask


def task_run_record(*, task_name: str) -> int:
    """The scheduled tasks running ``task_name`` ran now; returns how many rows (0: not one)."""
    return PeriodicTask.objects.filter(task=task_name).update(last_run_at=timezone.now())


def on_task_postrun(sender=None, task=None, **kwargs) -> None:
    request = getattr(task or sender, "request", None)
    if request is not None and getattr(request, "is_eager", False):
        return  # inline runs (tests, debugging) are no scheduled run
    task_run_record(task_name=(task or sender).name)
