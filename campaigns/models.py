"""Email marketing: mailing lists of contacts, campaigns, and one row per (campaign, contact).

State changes of a campaign happen only in ``campaigns.services`` through guarded
compare-and-swap updates. ``CampaignRecipient`` is the campaign's own history: it outlives the
outbox rows (auto-vacuum deletes old sent mail) and its unique (campaign, contact) pair, created
in the same transaction as the contact's mail, is what makes a resumed run never mail anyone twice.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


class MailingList(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    contacts = models.ManyToManyField(
        "chatter.Contact", through="ListMember", related_name="mailing_lists"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("campaigns:list_detail", args=[self.pk])


class UnsubscribeMethod(models.TextChoices):
    ONE_CLICK = "one_click", "One-click (RFC 8058)"
    LINK = "link", "Unsubscribe page"
    STAFF = "staff", "By staff"
    MAIL = "mail", "By mail (List-Unsubscribe mailto)"


class ListMember(models.Model):
    """A contact on a list; an opt-out keeps the row (and when and how) so it is never re-added
    silently by an import."""

    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(
        "chatter.Contact", on_delete=models.CASCADE, related_name="list_memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_via = models.CharField(
        max_length=12, choices=UnsubscribeMethod.choices, blank=True
    )
    unsubscribed_campaign = models.ForeignKey(
        "Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["mailing_list", "contact"], name="list_member_once")
        ]


class CampaignState(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_QUEUE = "in_queue", "In Queue"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"


# States in which a campaign takes part in the queue.
QUEUED_STATES = (CampaignState.IN_QUEUE, CampaignState.SENDING)


class Campaign(models.Model):
    subject = models.CharField(max_length=998)
    body_html = models.TextField(help_text="HTML; a plain-text part is generated from it.")
    mailing_lists = models.ManyToManyField(MailingList, related_name="campaigns")
    from_addr = models.CharField(
        max_length=998, blank=True, help_text="Empty: the default sender of this MailHub."
    )
    state = models.CharField(
        max_length=10, choices=CampaignState.choices, default=CampaignState.DRAFT, db_index=True
    )
    # The queue order (the seed: chronological order of creation). The id breaks ties.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scheduled_at = models.DateTimeField(
        null=True, blank=True, help_text="Due from this time; empty = as soon as possible."
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Batches walk the list members in id order; the cursor moves in the batch's transaction.
    cursor = models.BigIntegerField(default=0)
    members_done = models.BooleanField(default=False)
    # Why the campaign queue stopped at this campaign (its complaint rate passed the line);
    # empty = not paused. ``campaign_resume`` clears it.
    paused_reason = models.TextField(blank=True)
    # List memberships when sending started (the progress bar's total).
    expected = models.PositiveIntegerField(default=0)
    # Contacts met a second time through another list of the campaign (no row of their own).
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject

    def get_absolute_url(self) -> str:
        return reverse("campaigns:detail", args=[self.pk])

    @property
    def is_editable(self) -> bool:
        return self.state == CampaignState.DRAFT


class TraceStatus(models.TextChoices):
    QUEUED = "queued", "In the outbox"
    DEFERRED = "deferred", "Deferred (retrying)"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    CANCELED = "canceled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


# A campaign is finished when none of its rows is still waiting in the outbox.
WAITING_STATUSES = (TraceStatus.QUEUED, TraceStatus.DEFERRED)


class SkipReason(models.TextChoices):
    BLACKLISTED = "blacklisted", "Blacklisted Address"
    UNSUBSCRIBED = "unsubscribed", "Opted Out"
    INVALID = "invalid", "Invalid Email"
    # The contact reported earlier mail of ours as spam (an RFC 5965 feedback report).
    COMPLAINED = "complained", "Complained"
    # Duplicates have no row (the contact already has one): Campaign.duplicates counts them.
    DUPLICATE = "duplicate", "Duplicate Email"


class CampaignRecipient(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey("chatter.Contact", on_delete=models.CASCADE, related_name="+")
    email = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=TraceStatus.choices)
    skip_reason = models.CharField(max_length=12, choices=SkipReason.choices, blank=True)
    # outbox.MailRecipient id, not a foreign key: the outbox may vacuum its rows, ours stay.
    outbox_recipient_id = models.BigIntegerField(null=True, blank=True, unique=True)
    # A feedback-loop report tied to this copy: the recipient marked it as spam.
    complained_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="campaign_contact_once")
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="campaign_status"),
            models.Index(
                fields=["campaign"],
                name="campaign_waiting",
                condition=Q(status__in=["queued", "deferred"]),
            ),
        ]
