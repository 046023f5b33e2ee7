"""Celery tasks of email marketing (thin adapters over campaigns.services)."""

from celery import shared_task

from . import services


@shared_task(name="campaigns.process_queue")
def campaigns_process_queue() -> dict:
    """ "Mail Marketing: Process queue": daily from beat, early for Send and scheduled times.

    A run stops at its time budget; with work left it queues its own continuation, so a long
    list goes out in bounded runs and a restarted worker picks up from the last batch.
    """
    run = services.campaign_queue_process()
    if run.more:
        campaigns_process_queue.delay()
    return {"batches": run.batches, "mails": run.mails, "finished": run.finished}
