"""Reads of email marketing: the queue, what blocks it, and a campaign's figures."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from outbox.models import MailRecipient

from .models import (
    QUEUED_STATES,
    WAITING_STATUSES,
    Campaign,
    CampaignRecipient,
    CampaignState,
    ListMember,
    MailingList,
    SkipReason,
    TraceStatus,
)


def campaign_queue_head(*, now: dt.datetime) -> Campaign | None:
    """The campaign the queue works on: the one sending (one at a time), else the oldest
    created campaign that is due (creation order, as the seed says)."""
    sending = Campaign.objects.filter(state=CampaignState.SENDING).order_by("created_at", "pk")
    head = sending.first()
    if head is not None:
        return head
    return (
        Campaign.objects.filter(state=CampaignState.IN_QUEUE)
        .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now))
        .order_by("created_at", "pk")
        .first()
    )


@dataclass(frozen=True)
class QueueEntry:
    position: int
    campaign: Campaign
    status: str  # what the user reads: what it does or waits for


def campaign_queue(*, now: dt.datetime) -> list[QueueEntry]:
    """Queued and sending campaigns in processing order, each with what it waits for."""
    head = campaign_queue_head(now=now)
    queued = list(
        Campaign.objects.filter(state__in=QUEUED_STATES)
        .order_by("created_at", "pk")
        .prefetch_related("mailing_lists")
    )
    if head is not None:
        # The campaign being sent first, then the rest in creation order.
        queued.sort(key=lambda c: (c.pk != head.pk,))
    entries = []
    for position, campaign in enumerate(queued, start=1):
        if head is not None and campaign.pk == head.pk:
            if campaign.state == CampaignState.SENDING and campaign.members_done:
                status = _waiting_status(campaign)
            elif campaign.state == CampaignState.SENDING:
                status = "Sending"
            else:
                status = "Next: starts at the next queue run"
        elif campaign.scheduled_at and campaign.scheduled_at > now:
            status = f"Scheduled: due {campaign.scheduled_at:%Y-%m-%d %H:%M} UTC"
            if head is not None:
                status += f", then waits for “{head.subject}”"
        else:
            status = f"Waiting for “{head.subject}” to finish" if head else "Waiting"
        entries.append(QueueEntry(position=position, campaign=campaign, status=status))
    return entries


def _waiting_status(campaign: Campaign) -> str:
    """What the head waits for: its mail still in the outbox, and how much of it is deferred
    (a relay answering 4xx is the usual reason a campaign "never leaves the queue")."""
    waiting = dict(
        CampaignRecipient.objects.filter(campaign=campaign, status__in=WAITING_STATUSES)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    total = sum(waiting.values())
    last = "its last mail" if total == 1 else f"its last {total} mails"
    status = f"Sending: waiting for the outbox to deliver {last}"
    deferred = waiting.get(TraceStatus.DEFERRED, 0)
    if deferred:
        status += f" ({deferred} deferred by the relay, retrying)"
    return status


def campaign_problems(*, campaign: Campaign, limit: int = 100) -> list[CampaignRecipient]:
    """Recipients who did not get the mail (failed, bounced, skipped, cancelled), newest first.

    Each carries ``server_words``: what the mail server answered for it (``550 5.1.1 …``), read
    from the outbox's recipient rows in one query; empty when the mail never reached a server.
    """
    problems = list(
        CampaignRecipient.objects.filter(
            campaign=campaign,
            status__in=[
                TraceStatus.FAILED,
                TraceStatus.BOUNCED,
                TraceStatus.SKIPPED,
                TraceStatus.CANCELED,
            ],
        ).order_by("-updated_at", "-pk")[:limit]
    )
    ids = [p.outbox_recipient_id for p in problems if p.outbox_recipient_id]
    said = {
        pk: f"{code} {response}".strip() if code else response
        for pk, code, response in MailRecipient.objects.filter(pk__in=ids).values_list(
            "pk", "code", "response"
        )
    }
    for problem in problems:
        problem.server_words = said.get(problem.outbox_recipient_id, "")
    return problems


def campaigns_all() -> QuerySet[Campaign]:
    return Campaign.objects.prefetch_related("mailing_lists").select_related("created_by")


def mailing_lists_with_counts() -> QuerySet[MailingList]:
    return MailingList.objects.annotate(
        subscribed=Count("members", filter=Q(members__unsubscribed_at__isnull=True)),
        opted_out=Count("members", filter=Q(members__unsubscribed_at__isnull=False)),
    )


def list_members(*, mailing_list: MailingList) -> QuerySet[ListMember]:
    return (
        ListMember.objects.filter(mailing_list=mailing_list)
        .select_related("contact")
        .order_by("contact__email")
    )


@dataclass(frozen=True)
class CampaignStats:
    state: str
    state_label: str
    expected: int
    queued: int
    deferred: int
    sent: int
    failed: int
    bounced: int
    canceled: int
    skipped: dict[str, int]  # reason label → count, duplicates included
    processed: int
    percent: int
    complained: int = 0  # copies reported as spam (feedback loops, RFC 5965)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def mailed(self) -> int:
        return self.queued + self.deferred + self.sent + self.failed + self.bounced + self.canceled

    def ratio(self, count: int, of: int | None = None) -> float:
        base = self.mailed if of is None else of
        return round(100.0 * count / base, 1) if base else 0.0

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "state_label": self.state_label,
            "expected": self.expected,
            "processed": self.processed,
            "percent": self.percent,
            "queued": self.queued + self.deferred,
            "sent": self.sent,
            "failed": self.failed,
            "bounced": self.bounced,
            "canceled": self.canceled,
            "skipped": self.skipped,
            "skipped_total": self.skipped_total,
            "complained": self.complained,
            "ratios": {
                "complained": self.ratio(self.complained, of=self.sent + self.bounced),
                "sent": self.ratio(self.sent),
                "failed": self.ratio(self.failed),
                "bounced": self.ratio(self.bounced),
                "skipped": self.ratio(self.skipped_total, of=self.expected),
            },
        }


def campaign_stats(*, campaign: Campaign) -> CampaignStats:
    """Counts by outcome (one grouped query on an indexed column) and the progress."""
    counts: dict[str, int] = {}
    skipped = {label: 0 for value, label in SkipReason.choices}
    rows = (
        CampaignRecipient.objects.filter(campaign=campaign)
        .values_list("status", "skip_reason")
        .annotate(n=Count("pk"), complaints=Count("complained_at"))
        .order_by()
    )
    complained = 0
    for status, reason, n, complaints in rows:
        complained += complaints
        if status == TraceStatus.SKIPPED:
            skipped[SkipReason(reason).label] += n
        else:
            counts[status] = counts.get(status, 0) + n
    skipped[SkipReason.DUPLICATE.label] += campaign.duplicates
    handled = sum(counts.values()) + sum(skipped.values())
    waiting = counts.get(TraceStatus.QUEUED, 0) + counts.get(TraceStatus.DEFERRED, 0)
    processed = handled - waiting
    expected = max(campaign.expected, handled)
    if campaign.state == CampaignState.SENT:
        expected = handled
        percent = 100
    else:
        percent = min(100, 100 * processed // expected) if expected else 0
    return CampaignStats(
        state=campaign.state,
        state_label=campaign.get_state_display(),
        expected=expected,
        queued=counts.get(TraceStatus.QUEUED, 0),
        deferred=counts.get(TraceStatus.DEFERRED, 0),
        sent=counts.get(TraceStatus.SENT, 0),
        failed=counts.get(TraceStatus.FAILED, 0),
        bounced=counts.get(TraceStatus.BOUNCED, 0),
        canceled=counts.get(TraceStatus.CANCELED, 0),
        skipped=skipped,
        processed=processed,
        percent=percent,
        complained=complained,
    )
