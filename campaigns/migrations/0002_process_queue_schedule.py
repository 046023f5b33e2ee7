"""The beat schedule "Mail Marketing: Process queue": daily, editable in the admin.

Send and scheduled campaigns trigger early runs themselves; the daily run catches anything a
lost trigger (broker down, worker restart) left behind.
"""

from django.db import migrations

TASK_NAME = "Mail Marketing: Process queue"


def create_schedule(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=1, period="days")
    task_model.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "campaigns.process_queue",
            "interval": interval,
            "enabled": True,
            "description": "Processes the email marketing queue, one campaign at a time in "
            "creation order. Send and Schedule trigger it early.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
