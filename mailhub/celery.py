"""The Celery application shared by the worker, beat and the web (which only enqueues)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhub.settings")

app = Celery("mailhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
