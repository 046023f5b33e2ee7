"""Writes of email marketing: lists, campaign actions, the queue, outcomes and unsubscribes.

The queue follows the seed ("Email Marketing campaigns stuck in the queue"): campaigns are
processed in chronological order of creation and the next one does not start before the previous
one is finished, i.e. every mail it queued has left the outbox (sent, failed or cancelled). A
scheduled campaign takes part only from its time: one scheduled for next week does not block
today's. Campaign state changes are guarded compare-and-swap updates.
"""

import csv
import datetime as dt
import io
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from chatter.content import sanitize_html
from chatter.html_text import html_to_text
from chatter.models import Contact, normalize_email

from . import content
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

logger = logging.getLogger("mailhub.campaigns")


class CampaignActionError(Exception):
    """An action that does not apply to the campaign as it is now; the message says why."""


# --- mailing lists --------------------------------------------------------------------------------


def mailing_list_create(*, name: str, description: str = "") -> MailingList:
    return MailingList.objects.create(name=name.strip(), description=description)


def list_member_add(
    *, mailing_list: MailingList, email: str, name: str = ""
) -> tuple[ListMember, bool]:
    """Add the contact of ``email`` (created when new) to the list; (member, created).

    Raises ``ValidationError`` for an invalid address. A contact who unsubscribed stays
    unsubscribed: only the contact can take that back.
    """
    from chatter.services import contact_get_or_create

    contact = contact_get_or_create(email=email, name=name)
    return ListMember.objects.get_or_create(mailing_list=mailing_list, contact=contact)


def list_member_remove(*, mailing_list: MailingList, member_id: int) -> bool:
    deleted, _ = ListMember.objects.filter(mailing_list=mailing_list, pk=member_id).delete()
    return bool(deleted)


@dataclass
class ImportRowError:
    line: int
    value: str
    error: str


@dataclass
class ImportReport:
    added: int = 0
    already: int = 0
    contacts_created: int = 0
    errors: list[ImportRowError] = field(default_factory=list)
    empty_lines: int = 0  # skipped, and said so: the file's line count must add up

    @property
    def rows(self) -> int:
        return self.added + self.already + len(self.errors)

    @property
    def lines(self) -> int:
        """Lines of the file read: the header, every row and the empty lines."""
        return 1 + self.rows + self.empty_lines


CSV_MAX_BYTES = 20 * 1024 * 1024


def mailing_list_import_csv(*, mailing_list: MailingList, data: bytes) -> ImportReport:
    """Import contacts from CSV: a header row with an ``email`` column, ``name`` optional.

    Every bad row is reported with its line number and why, and the good rows are still
    imported (in bulk: three queries per 1,000 rows, whatever the file size). A file that
    cannot be read at all raises ``ValidationError`` saying how to fix it.
    """
    if len(data) > CSV_MAX_BYTES:
        raise ValidationError("The file is larger than 20 MB: split it and import the parts.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(
            "The file is not UTF-8 text: save it as 'CSV UTF-8' from your spreadsheet and retry."
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    columns = [h.strip().lower() for h in header or []]
    if "email" not in columns:
        raise ValidationError(
            "The first row must name the columns, with one called 'email' (and optionally "
            "'name'), e.g.: email,name"
        )
    email_at, name_at = columns.index("email"), columns.index("name") if "name" in columns else None

    report = ImportReport()
    wanted: dict[str, tuple[int, str]] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            report.empty_lines += 1
            continue
        raw = row[email_at].strip() if email_at < len(row) else ""
        email = normalize_email(raw)
        if not email:
            report.errors.append(ImportRowError(line, ",".join(row), "No email address."))
            continue
        try:
            validate_email(email)
        except ValidationError:
            report.errors.append(ImportRowError(line, raw, "Not a valid email address."))
            continue
        if email in wanted:
            report.errors.append(
                ImportRowError(line, raw, f"Duplicate of line {wanted[email][0]}: imported once.")
            )
            continue
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        wanted[email] = (line, name)

    emails = list(wanted)
    for start in range(0, len(emails), 1000):
        chunk = emails[start : start + 1000]
        with transaction.atomic():
            existing = dict(Contact.objects.filter(email__in=chunk).values_list("email", "pk"))
            new = [
                Contact(email=e, name=wanted[e][1] or e.split("@")[0])
                for e in chunk
                if e not in existing
            ]
            Contact.objects.bulk_create(new, ignore_conflicts=True)
            report.contacts_created += len(new)
            ids = dict(Contact.objects.filter(email__in=chunk).values_list("email", "pk"))
            members = set(
                ListMember.objects.filter(
                    mailing_list=mailing_list, contact_id__in=ids.values()
                ).values_list("contact_id", flat=True)
            )
            ListMember.objects.bulk_create(
                [
                    ListMember(mailing_list=mailing_list, contact_id=pk)
                    for pk in ids.values()
                    if pk not in members
                ],
                ignore_conflicts=True,
            )
            report.already += len(members)
            report.added += len(ids) - len(members)
    return report


# --- campaign actions -----------------------------------------------------------------------------


def campaign_create(
    *,
    subject: str,
    body_html: str,
    mailing_lists: Iterable[MailingList],
    created_by=None,
    from_addr: str = "",
) -> Campaign:
    """A draft; its body is sanitised here, whoever calls (it goes to thousands of inboxes)."""
    campaign = Campaign.objects.create(
        subject=subject,
        body_html=sanitize_html(body_html),
        from_addr=from_addr,
        created_by=created_by,
    )
    campaign.mailing_lists.set(mailing_lists)
    return campaign


def campaign_update(
    *,
    campaign: Campaign,
    subject: str,
    body_html: str,
    mailing_lists: Iterable[MailingList],
    from_addr: str = "",
) -> Campaign:
    """Edit a draft; once queued, what recipients get must not change under them."""
    updated = Campaign.objects.filter(pk=campaign.pk, state=CampaignState.DRAFT).update(
        subject=subject, body_html=sanitize_html(body_html), from_addr=from_addr
    )
    if not updated:
        raise CampaignActionError("Only a draft can be edited: cancel it and duplicate it instead.")
    campaign.mailing_lists.set(mailing_lists)
    campaign.refresh_from_db()
    return campaign


def _queue_trigger(*, eta: dt.datetime | None = None) -> None:
    """Run "Mail Marketing: Process queue" once the transaction commits (at ``eta`` if given)."""
    from .tasks import campaigns_process_queue

    def trigger() -> None:
        try:
            campaigns_process_queue.apply_async(eta=eta)
        except Exception:  # noqa: BLE001 - the action is committed; say so, do not fail it
            # Broker unreachable: the campaign stays In Queue and the daily beat run (or the
            # next Send) processes it; the user's action itself succeeded.
            logger.exception("could not trigger the campaign queue; the daily run will do it")

    transaction.on_commit(trigger)


def campaign_send(*, campaign: Campaign) -> Campaign:
    """Send: put the draft in the queue, due at once, and run the queue now."""
    if not campaign.mailing_lists.exists():
        raise CampaignActionError("Choose at least one mailing list before sending.")
    now = timezone.now()
    updated = Campaign.objects.filter(pk=campaign.pk, state=CampaignState.DRAFT).update(
        state=CampaignState.IN_QUEUE, scheduled_at=None, queued_at=now
    )
    if not updated:
        raise CampaignActionError(
            f"This campaign is {campaign.get_state_display()}: only a draft can be sent."
        )
    _queue_trigger()
    campaign.refresh_from_db()
    return campaign


def campaign_schedule(*, campaign: Campaign, at: dt.datetime) -> Campaign:
    """Schedule: in the queue from ``at``; the queue runs early at that time for it."""
    if timezone.is_naive(at):
        raise ValueError("campaign_schedule needs an aware datetime")
    if at <= timezone.now():
        raise CampaignActionError("Pick a time in the future, or use Send to send now.")
    if not campaign.mailing_lists.exists():
        raise CampaignActionError("Choose at least one mailing list before scheduling.")
    updated = Campaign.objects.filter(pk=campaign.pk, state=CampaignState.DRAFT).update(
        state=CampaignState.IN_QUEUE, scheduled_at=at, queued_at=timezone.now()
    )
    if not updated:
        raise CampaignActionError(
            f"This campaign is {campaign.get_state_display()}: only a draft can be scheduled."
        )
    _queue_trigger(eta=at)
    campaign.refresh_from_db()
    return campaign


def campaign_cancel(*, campaign: Campaign) -> int:
    """Cancel a draft, queued or sending campaign; mail that has not left the outbox is
    cancelled there too. Returns how many mails were cancelled.

    Mail a worker holds right now (claimed) still leaves; its outcome is recorded as usual.
    The next campaign of the queue starts at once.
    """
    now = timezone.now()
    with transaction.atomic():
        was_queued = Campaign.objects.filter(pk=campaign.pk, state__in=QUEUED_STATES).exists()
        updated = Campaign.objects.filter(
            pk=campaign.pk, state__in=(CampaignState.DRAFT, *QUEUED_STATES)
        ).update(state=CampaignState.CANCELLED, cancelled_at=now)
        if not updated:
            raise CampaignActionError(
                f"This campaign is {campaign.get_state_display()}: there is nothing to cancel."
            )
        waiting = CampaignRecipient.objects.filter(campaign=campaign, status__in=WAITING_STATUSES)
        cancelled = _outbox_cancel(
            recipient_ids=waiting.exclude(outbox_recipient_id=None).values("outbox_recipient_id")
        )
        _traces_sync(
            queryset=CampaignRecipient.objects.filter(
                campaign=campaign, status__in=WAITING_STATUSES
            )
        )
        if was_queued:
            _queue_trigger()
    campaign.refresh_from_db()
    return cancelled


def _outbox_cancel(*, recipient_ids) -> int:
    """Cancel the outbox mail of these (waiting) recipients through the outbox's own action.

    Only mail still waiting is passed, so a failed mail keeps its "failed" count; mail a worker
    has just claimed is left to that worker, whose outcome comes back as usual.
    """
    from outbox.models import MailRecipient
    from outbox.services import mails_cancel

    mail_ids = list(
        MailRecipient.objects.filter(pk__in=recipient_ids).values_list("mail_id", flat=True)
    )
    return mails_cancel(mail_ids=mail_ids) if mail_ids else 0


# --- the queue ------------------------------------------------------------------------------------


@dataclass
class QueueRun:
    batches: int = 0
    mails: int = 0
    started: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    # True when the time budget ran out with work left: the task runs again at once.
    more: bool = False


def campaign_queue_process(
    *, batch_size: int | None = None, time_budget: float | None = None
) -> QueueRun:
    """One run of "Mail Marketing: Process queue".

    Works on the head of the queue only: queue its mail in bounded batches, then wait until the
    outbox has delivered all of it (the receiver of ``recipients_updated`` finishes it and runs
    the queue again); the next campaign starts only then.
    """
    from . import selectors

    batch_size = batch_size or settings.MAILHUB_CAMPAIGN_BATCH_SIZE
    budget = settings.MAILHUB_CAMPAIGN_TIME_BUDGET if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    run = QueueRun()
    while True:
        head = selectors.campaign_queue_head(now=timezone.now())
        if head is None:
            return run
        if head.paused_reason:
            # Paused for its complaint rate: nothing more goes out until staff resume it.
            return run
        if head.state == CampaignState.IN_QUEUE:
            if _campaign_start(campaign=head):
                run.started.append(head.pk)
            continue
        if not head.members_done:
            # At least one batch per run, so a run always makes progress.
            if run.batches and time.monotonic() >= deadline:
                run.more = True
                return run
            queued = campaign_batch_send(campaign_id=head.pk, limit=batch_size)
            if queued is None:
                continue  # cancelled or finished meanwhile: look at the queue again
            run.batches += 1
            run.mails += queued
            continue
        if campaign_finish_if_done(campaign_id=head.pk):
            run.finished.append(head.pk)
            continue
        return run  # the head's mail is still in the outbox: the next one waits


def _campaign_start(*, campaign: Campaign) -> bool:
    list_ids = list(campaign.mailing_lists.values_list("pk", flat=True))
    # Member rows, not distinct contacts: a duplicate counts as handled (skipped) too.
    expected = ListMember.objects.filter(mailing_list_id__in=list_ids).count()
    started = Campaign.objects.filter(pk=campaign.pk, state=CampaignState.IN_QUEUE).update(
        state=CampaignState.SENDING, started_at=timezone.now(), expected=expected
    )
    if started:
        logger.info("campaign %s started: %s contacts", campaign.pk, expected)
    return bool(started)


def _unsubscribe_urls(*, campaign_id: int, contact_id: int) -> tuple[str, str, str]:
    token = content.unsubscribe_token(campaign_id=campaign_id, contact_id=contact_id)
    base = settings.MAILHUB_BASE_URL.rstrip("/")
    page = base + reverse("campaigns:unsubscribe", args=[token])
    one_click = base + reverse("campaigns:unsubscribe_one_click", args=[token])
    mailto = content.unsubscribe_mailto(
        address=f"unsubscribe@{settings.MAILHUB_MAIL_DOMAIN}", token=token
    )
    return page, one_click, mailto


def feedback_id(*, campaign_id: int, list_ids: Sequence[int]) -> str:
    """Gmail's Feedback-ID ``campaign:list:sender-id``: complaint rates per campaign.

    The identifiers are ours and carry nothing personal; the sender id is our mail domain.
    """
    lists = "-".join(str(pk) for pk in sorted(list_ids)) or "0"
    return f"c{campaign_id}:l{lists}:{settings.MAILHUB_MAIL_DOMAIN}"


def _draft(*, campaign: Campaign, contact: Contact, body_text: str, feedback: str = ""):
    from outbox.services import MailDraft

    page, one_click, mailto = _unsubscribe_urls(campaign_id=campaign.pk, contact_id=contact.pk)
    headers = content.unsubscribe_headers(one_click_url=one_click, mailto=mailto)
    if feedback:
        headers["Feedback-ID"] = feedback
    return MailDraft(
        to=contact.email,
        subject=campaign.subject,
        body_html=campaign.body_html + content.footer_html(page_url=page),
        body_text=body_text + "\n\n" + content.footer_text(page_url=page),
        from_addr=campaign.from_addr,
        headers=headers,
    )


def _skip_reason(*, contact: Contact, opted_out: set[int]) -> str:
    if contact.blacklisted:
        return SkipReason.BLACKLISTED
    if contact.complained_at is not None:
        return SkipReason.COMPLAINED
    if contact.pk in opted_out:
        return SkipReason.UNSUBSCRIBED
    try:
        validate_email(contact.email)
    except ValidationError:
        return SkipReason.INVALID
    return ""


def campaign_batch_send(*, campaign_id: int, limit: int) -> int | None:
    """Queue the mail of the next ``limit`` list members, in one transaction; mails queued.

    The (campaign, contact) rows, their mails and the cursor commit together: a worker killed
    anywhere in here leaves no trace of the batch, and a rerun starts after the last committed
    one. Runs take turns on the campaign row; on top of that the unique (campaign, contact) pair
    refuses a second row, so no path mails anyone twice. None when the campaign is not sending
    (cancelled meanwhile, or finished by another run).
    """
    from outbox.models import MailRecipient
    from outbox.services import mails_enqueue, queue_wake

    try:
        with transaction.atomic():
            # A no-op write first: it takes the row lock on PostgreSQL and SQLite's write lock,
            # so a second run waits here and then reads the cursor this one committed.
            holds = Campaign.objects.filter(
                pk=campaign_id, state=CampaignState.SENDING, members_done=False
            ).update(cursor=F("cursor"))
            if not holds:
                return None
            campaign = Campaign.objects.get(pk=campaign_id)
            list_ids = list(campaign.mailing_lists.values_list("pk", flat=True))
            members = list(
                ListMember.objects.filter(mailing_list_id__in=list_ids, pk__gt=campaign.cursor)
                .select_related("contact")
                .order_by("pk")[:limit]
            )
            if not members:
                Campaign.objects.filter(pk=campaign.pk).update(members_done=True)
                return 0
            contact_ids = {m.contact_id for m in members}
            seen = set(
                CampaignRecipient.objects.filter(
                    campaign=campaign, contact_id__in=contact_ids
                ).values_list("contact_id", flat=True)
            )
            opted_out = set(
                ListMember.objects.filter(
                    mailing_list_id__in=list_ids,
                    contact_id__in=contact_ids,
                    unsubscribed_at__isnull=False,
                ).values_list("contact_id", flat=True)
            )
            body_text = html_to_text(campaign.body_html)
            fb = feedback_id(campaign_id=campaign.pk, list_ids=list_ids)
            rows, mailed, drafts, duplicates = [], [], [], 0
            for member in members:
                contact = member.contact
                if contact.pk in seen:
                    duplicates += 1
                    continue
                seen.add(contact.pk)
                row = CampaignRecipient(campaign=campaign, contact=contact, email=contact.email)
                reason = _skip_reason(contact=contact, opted_out=opted_out)
                if reason:
                    row.status, row.skip_reason = TraceStatus.SKIPPED, reason
                else:
                    row.status = TraceStatus.QUEUED
                    mailed.append(row)
                    drafts.append(
                        _draft(campaign=campaign, contact=contact, body_text=body_text, feedback=fb)
                    )
                rows.append(row)
            mails = mails_enqueue(drafts=drafts)
            if mails:
                by_mail = dict(
                    MailRecipient.objects.filter(mail__in=mails).values_list("mail_id", "pk")
                )
                for row, mail in zip(mailed, mails, strict=True):
                    row.outbox_recipient_id = by_mail[mail.pk]
            CampaignRecipient.objects.bulk_create(rows)
            Campaign.objects.filter(pk=campaign.pk).update(
                cursor=members[-1].pk,
                duplicates=F("duplicates") + duplicates,
                members_done=len(members) < limit,
            )
            if mails:
                queue_wake()  # after commit: the Email Queue Manager sends them now
    except IntegrityError:
        # Another run queued these contacts first: this transaction rolled back with its
        # mails, so nothing goes out twice; that run carries on.
        logger.warning("campaign %s: batch raced with another run, skipped", campaign_id)
        return None
    return len(mails)


def campaign_finish_if_done(*, campaign_id: int) -> bool:
    """Sending → Sent once every list member was handled and no mail waits in the outbox."""
    waiting = CampaignRecipient.objects.filter(
        campaign_id=campaign_id, status__in=WAITING_STATUSES
    ).exists()
    if waiting:
        return False
    finished = Campaign.objects.filter(
        pk=campaign_id, state=CampaignState.SENDING, members_done=True
    ).update(state=CampaignState.SENT, finished_at=timezone.now())
    if finished:
        logger.info("campaign %s sent", campaign_id)
    return bool(finished)


# --- outcomes from the outbox ---------------------------------------------------------------------

# outbox MailRecipient.status → our row's status.
OUTBOX_STATUS = {
    "pending": TraceStatus.QUEUED,
    "deferred": TraceStatus.DEFERRED,
    "sent": TraceStatus.SENT,
    "failed": TraceStatus.FAILED,
    "bounced": TraceStatus.BOUNCED,
    "canceled": TraceStatus.CANCELED,
}


def _traces_sync(*, queryset) -> set[int]:
    """Copy the outbox outcome onto these rows, in bulk; the campaigns touched."""
    from outbox.models import MailRecipient

    pairs = list(
        queryset.exclude(outbox_recipient_id=None).values_list("outbox_recipient_id", "campaign_id")
    )
    if not pairs:
        return set()
    statuses = dict(
        MailRecipient.objects.filter(pk__any_of=[p for p, _ in pairs]).values_list("pk", "status")
    )
    by_status: dict[str, list[int]] = defaultdict(list)
    for outbox_id, _ in pairs:
        status = OUTBOX_STATUS.get(statuses.get(outbox_id, ""))
        if status:
            by_status[status].append(outbox_id)
    for status, ids in by_status.items():
        CampaignRecipient.objects.filter(outbox_recipient_id__any_of=ids).exclude(
            status=status
        ).update(status=status, updated_at=timezone.now())
    return {campaign_id for _, campaign_id in pairs}


def campaign_recipients_sync(*, recipient_ids: Sequence[int]) -> list[int]:
    """Receiver of ``outbox.signals.recipients_updated``: keep the counters, finish campaigns.

    A handful of queries per outbox batch, whatever its size; mail that is not a campaign's
    costs one query. Returns the campaigns finished by this batch.
    """
    if not recipient_ids:
        return []
    campaign_ids = _traces_sync(
        queryset=CampaignRecipient.objects.filter(outbox_recipient_id__any_of=list(recipient_ids))
    )
    finished = [
        pk
        for pk in Campaign.objects.filter(
            pk__in=campaign_ids, state=CampaignState.SENDING, members_done=True
        ).values_list("pk", flat=True)
        if campaign_finish_if_done(campaign_id=pk)
    ]
    if finished:
        _queue_trigger()  # the next campaign may start now
    return finished


# --- unsubscribe ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribeTarget:
    campaign: Campaign
    contact: Contact
    lists: list[MailingList]
    already: bool


def unsubscribe_target(*, token: str) -> UnsubscribeTarget | None:
    """Who a token unsubscribes from what (None for a bad token); changes nothing."""
    ids = content.unsubscribe_token_read(token)
    if ids is None:
        return None
    campaign = Campaign.objects.filter(pk=ids[0]).first()
    contact = Contact.objects.filter(pk=ids[1]).first()
    if campaign is None or contact is None:
        return None
    lists = list(campaign.mailing_lists.all())
    members = ListMember.objects.filter(mailing_list__in=lists, contact=contact)
    already = not members.filter(unsubscribed_at__isnull=True).exists()
    return UnsubscribeTarget(campaign=campaign, contact=contact, lists=lists, already=already)


def contact_unsubscribe(*, token: str, method: str) -> UnsubscribeTarget | None:
    """Opt the token's contact out of the campaign's lists; idempotent (the first time is the
    one recorded). Mail of this campaign still waiting for them in the outbox is cancelled.
    None for a bad token.
    """
    target = unsubscribe_target(token=token)
    if target is None:
        return None
    with transaction.atomic():
        changed = ListMember.objects.filter(
            mailing_list__in=target.lists, contact=target.contact, unsubscribed_at__isnull=True
        ).update(
            unsubscribed_at=timezone.now(),
            unsubscribed_via=method,
            unsubscribed_campaign=target.campaign,
        )
        waiting = CampaignRecipient.objects.filter(
            contact=target.contact,
            status__in=WAITING_STATUSES,
            campaign__mailing_lists__in=target.lists,
        )
        _outbox_cancel(
            recipient_ids=waiting.exclude(outbox_recipient_id=None).values("outbox_recipient_id")
        )
        touched = _traces_sync(
            queryset=CampaignRecipient.objects.filter(
                contact=target.contact, status__in=WAITING_STATUSES
            )
        )
        for pk in touched:
            if campaign_finish_if_done(campaign_id=pk):
                _queue_trigger()
    if changed:
        logger.info(
            "contact %s unsubscribed via %s (campaign %s)",
            target.contact.pk,
            method,
            target.campaign.pk,
        )
    return UnsubscribeTarget(
        campaign=target.campaign, contact=target.contact, lists=target.lists, already=not changed
    )


# Gmail's bulk sender line (2024 guidelines): keep the spam rate below 0.3 %.
COMPLAINT_RATE_LIMIT = 0.003


def campaign_complaint_record(*, outbox_recipient_id: int, at: dt.datetime) -> bool:
    """Count a complaint about one campaign copy; pause the queue when the rate passes 0.3 %.

    Guarded: a second report about the same copy counts nothing. True when it was counted.
    """
    trace = (
        CampaignRecipient.objects.filter(
            outbox_recipient_id=outbox_recipient_id, complained_at__isnull=True
        )
        .select_related("campaign")
        .first()
    )
    if trace is None:
        return False
    if not CampaignRecipient.objects.filter(pk=trace.pk, complained_at__isnull=True).update(
        complained_at=at
    ):
        return False
    campaign = trace.campaign
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    delivered = rows.filter(status__in=[TraceStatus.SENT, TraceStatus.BOUNCED]).count()
    complaints = rows.filter(complained_at__isnull=False).count()
    rate = complaints / delivered if delivered else 1.0
    if rate > COMPLAINT_RATE_LIMIT and campaign.state in QUEUED_STATES:
        reason = (
            f"Paused: {complaints} of {delivered} delivered mails were reported as spam "
            f"({rate:.1%}), over the 0.3 % line mailbox providers allow. Check the list and "
            "the content, then resume the campaign."
        )
        if Campaign.objects.filter(pk=campaign.pk, paused_reason="").update(paused_reason=reason):
            logger.warning("campaign %s paused: complaint rate %.2f%%", campaign.pk, rate * 100)
    return True


def campaign_resume(*, campaign: Campaign) -> bool:
    """Staff looked at a paused campaign: the queue goes on with it."""
    resumed = (
        Campaign.objects.filter(pk=campaign.pk).exclude(paused_reason="").update(paused_reason="")
    )
    if resumed:
        _queue_trigger()
    campaign.refresh_from_db(fields=["paused_reason"])
    return bool(resumed)
