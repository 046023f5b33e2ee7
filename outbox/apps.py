from django.apps import AppConfig
from django.db.models.signals import pre_save


class OutboxConfig(AppConfig):
    name = "outbox"

    def ready(self) -> None:
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        from .lookups import lookups_register
        from .schedule import interval_pre_save, periodic_task_pre_save

        lookups_register()

        pre_save.connect(periodic_task_pre_save, sender=PeriodicTask, dispatch_uid="outbox-queue")
        pre_save.connect(interval_pre_save, sender=IntervalSchedule, dispatch_uid="outbox-interval")
