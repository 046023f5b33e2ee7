from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Email marketing"

    def ready(self) -> None:
        from outbox.signals import recipients_updated

        from . import checks  # noqa: F401 - registers the system checks
        from .receivers import on_recipients_updated

        recipients_updated.connect(on_recipients_updated, dispatch_uid="campaigns.recipients")
        # Feedback-loop reports (RFC 5965) the inbound gateway tied to one campaign copy.
        from inbound.signals import complaint_received

        from .receivers import on_complaint_received

        complaint_received.connect(on_complaint_received, dispatch_uid="campaigns.complaints")
        # The List-Unsubscribe mailto we advertise (unsubscribe@<domain>) is received by the
        # inbound gateway; it hands the token back to us (see inbound.unsubscribe for why).
        from inbound.unsubscribe import unsubscribe_handler_register

        from .receivers import mail_unsubscribe_apply, mail_unsubscribe_check

        unsubscribe_handler_register(check=mail_unsubscribe_check, apply=mail_unsubscribe_apply)
