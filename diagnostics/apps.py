from celery.signals import task_postrun
from django.apps import AppConfig


class DiagnosticsConfig(AppConfig):
    name = "diagnostics"

    def ready(self) -> None:
        from .task_runs import on_task_postrun

        # The worker records the real last run of every scheduled task for /ops/.
        task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="diagnostics.task_runs")
