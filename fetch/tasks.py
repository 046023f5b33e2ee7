"""Celery tasks of incoming servers (thin adapters over fetch.services)."""

from celery import shared_task

from . import services


@shared_task(name=services.FETCH_TASK)
def incoming_server_fetch(server_id: int) -> str:
    """One scheduled run for one server (its own django-celery-beat entry)."""
    report = services.incoming_server_fetch(server_id=server_id)
    if report.busy:
        return "another run is fetching this server"
    return report.error or f"fetched {report.fetched}, acknowledged {report.acknowledged}"
