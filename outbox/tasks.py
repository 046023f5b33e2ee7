"""Celery tasks of the outbox (thin adapters over outbox.services)."""

from celery import shared_task

from . import services


@shared_task(name="outbox.mail_send_urgent")
def mail_send_urgent(mail_ids: list[int]) -> None:
    """Send urgent mail right after the transaction that created it commits.

    Idempotent: only mails still due are claimed, so a duplicate task sends nothing twice.
    """
    services.mails_send(mail_ids=mail_ids)


@shared_task(name="outbox.queue_run")
def queue_run() -> None:
    """Mail: Email Queue Manager (beat, every 60 minutes by default, and early wake-ups)."""
    services.queue_run()


@shared_task(name="outbox.queue_help")
def queue_help(time_budget: float) -> None:
    """A helper of a queue-manager run on a big backlog (claims disjoint batches)."""
    services.mails_send(time_budget=time_budget)


@shared_task(name="outbox.mails_vacuum")
def mails_vacuum() -> None:
    """Mail: auto-vacuum of sent and cancelled mail (daily)."""
    services.mails_vacuum()
