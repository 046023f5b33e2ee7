"""Reads of the outbox for views, the admin and commands (writes live in ``outbox.services``)."""

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from .models import MailServer, MailState, OutgoingMail


def mail_server_get(*, name_or_id: str) -> MailServer | None:
    """A mail server by its id or its exact name."""
    lookup = {"pk": int(name_or_id)} if name_or_id.isdigit() else {"name": name_or_id}
    return MailServer.objects.filter(**lookup).first()


def mails_due_count(*, now: dt.datetime | None = None) -> int:
    """Mail the queue manager would claim now (due outgoing, or claims whose lease ran out)."""
    now = now or timezone.now()
    return OutgoingMail.objects.filter(
        Q(state=MailState.OUTGOING, next_attempt_at__isnull=True)
        | Q(state=MailState.OUTGOING, next_attempt_at__lte=now)
        | Q(state=MailState.SENDING, lease_expires_at__lt=now)
    ).count()
