"""Alias domains, aliases and every inbound mail as received (raw source included)."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AliasDomain(models.Model):
    domain = models.CharField(max_length=253, unique=True)
    catchall_local = models.CharField(max_length=64, default="catchall")
    bounce_local = models.CharField(max_length=64, default="bounce")
    default_from_local = models.CharField(max_length=64, default="notifications")

    def __str__(self) -> str:
        return self.domain

    @property
    def catchall_address(self) -> str:
        return f"{self.catchall_local}@{self.domain}"

    @property
    def bounce_address(self) -> str:
        return f"{self.bounce_local}@{self.domain}"

    @property
    def default_from_address(self) -> str:
        return f"{self.default_from_local}@{self.domain}"


class ContactSecurity(models.TextChoices):
    EVERYONE = "everyone", "Everyone"
    CONTACTS = "contacts", "Known contacts"
    FOLLOWERS = "followers", "Followers only"


class Alias(models.Model):
    """A local part that creates a record of a model, or posts to one record."""

    domain = models.ForeignKey(AliasDomain, on_delete=models.CASCADE, related_name="aliases")
    local_part = models.CharField(max_length=64)
    model = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    record_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Post to this record instead of creating one."
    )
    contact_security = models.CharField(
        max_length=10, choices=ContactSecurity.choices, default=ContactSecurity.EVERYONE
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="alias_unique")
        ]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain.domain}"


class Decision(models.TextChoices):
    """What the gateway did with one recipient of one message (``inbound.routing``)."""

    DUPLICATE = "duplicate", "Duplicate (already received)"
    BOUNCE = "bounce", "Bounce"
    REPLY = "reply", "Reply posted"
    ALIAS_NEW = "alias_new", "Record created"
    ALIAS_POST = "alias_post", "Posted on the alias record"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe (List-Unsubscribe mailto)"
    POSTMASTER = "postmaster", "To postmaster (kept for the admins)"
    REFUSED = "refused", "Refused"
    # Accepted (250) but neither posted, followed nor notified until staff release it.
    HELD = "held", "Held for review"
    DISCARDED = "discarded", "Discarded after review"


# What a held mail becomes when released (the post it would have been).
POSTING_DECISIONS = (Decision.REPLY, Decision.ALIAS_NEW, Decision.ALIAS_POST)


class InboundMail(models.Model):
    """One message received by the listener for one recipient, stored before we answer 250."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    peer = models.CharField(max_length=100, blank=True)
    mail_from = models.CharField(max_length=998, blank=True)
    rcpt_to = models.CharField(max_length=998)
    message_id = models.CharField(max_length=998, blank=True, db_index=True)
    # Which record the mail landed on (set for replies and alias mail).
    record_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    record_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    raw = models.BinaryField()
    decision = models.CharField(max_length=30, blank=True, choices=Decision.choices)
    code = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    chatter_message = models.ForeignKey(
        "chatter.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_sources",
    )
    # The From: address (normalised), counted by the loop protection.
    sender = models.CharField(max_length=254, blank=True)
    # Auto-Submitted, Precedence: bulk, empty return path or our own Message-ID: no automatic mail.
    automatic = models.BooleanField(default=False)
    remote_images = models.BooleanField(default=False, help_text="HTML body loads remote images")
    # A held mail: the decision it is released as, and who reviewed it.
    held_as = models.CharField(
        max_length=30,
        blank=True,
        choices=[(d.value, d.label) for d in POSTING_DECISIONS],
        help_text="What releasing the mail does (the post it would have been).",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Posting into the chatter follows the commit of the row; these track that second step.
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["sender", "decision", "received_at"], name="inbound_loop_count"),
            models.Index(
                fields=["id"],
                name="inbound_unprocessed",
                condition=models.Q(processed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id or '(no Message-ID)'} → {self.rcpt_to} [{self.decision}]"
