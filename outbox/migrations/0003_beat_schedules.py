"""The beat schedules "Mail: Email Queue Manager" (every 60 minutes) and the daily auto-vacuum.

Both are editable in Admin → Periodic tasks; the queue manager refuses intervals under 5 minutes.
"""

from django.conf import settings
from django.db import migrations

QUEUE_TASK_NAME = "Mail: Email Queue Manager"
VACUUM_TASK_NAME = "Mail: Auto-vacuum of sent and cancelled mail"


def create_schedules(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    minutes = max(5, settings.MAILHUB_QUEUE_INTERVAL_MINUTES)
    every, _ = interval_model.objects.get_or_create(every=minutes, period="minutes")
    daily, _ = interval_model.objects.get_or_create(every=1, period="days")
    task_model.objects.get_or_create(
        name=QUEUE_TASK_NAME,
        defaults={
            "task": "outbox.queue_run",
            "interval": every,
            "enabled": True,
            "description": "Sends due mail: retries, scheduled mail and anything an urgent "
            "send left behind. Urgent and scheduled mail wake it early. At least 5 minutes; "
            "15 recommended.",
        },
    )
    task_model.objects.get_or_create(
        name=VACUUM_TASK_NAME,
        defaults={
            "task": "outbox.mails_vacuum",
            "interval": daily,
            "enabled": True,
            "description": "Deletes sent and cancelled mail older than MAILHUB_VACUUM_DAYS.",
        },
    )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[QUEUE_TASK_NAME, VACUUM_TASK_NAME]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0002_queue_lock"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
