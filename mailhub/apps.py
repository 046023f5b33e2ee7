from django.apps import AppConfig


class MailhubConfig(AppConfig):
    name = "mailhub"
    verbose_name = "MailHub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
