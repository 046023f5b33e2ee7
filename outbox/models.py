"""The outbox: mail waiting for, going through, or back from the SMTP relay.

State changes happen only in ``outbox.services`` through guarded compare-and-swap updates; the
allowed transitions live in ``outbox.states``.
"""

import secrets

from django.db import models
from django.db.models import Q

from mailhub.encryption import EncryptedTextField


class MailState(models.TextChoices):
    OUTGOING = "outgoing", "Outgoing"
    SENDING = "sending", "Sending"  # internal: claimed by a worker until lease_expires_at
    SENT = "sent", "Sent"
    RECEIVED = "received", "Received"
    EXCEPTION = "exception", "Delivery Failed"
    CANCEL = "cancel", "Cancelled"


class Security(models.TextChoices):
    NONE = "none", "None"
    STARTTLS = "starttls", "TLS (STARTTLS)"
    SSL = "ssl", "SSL/TLS"


class MailServer(models.Model):
    """An outgoing SMTP relay, chosen by from_filter and priority (odoo-behaviour §9.3)."""

    name = models.CharField(max_length=100)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=25)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.NONE)
    username = models.CharField(max_length=255, blank=True)
    # Encrypted at rest (the relay needs it back, so a hash will not do); see mailhub.encryption.
    password = EncryptedTextField(blank=True)
    from_filter = models.CharField(
        max_length=255,
        blank=True,
        help_text="An address or a domain this server may send from; empty = any sender.",
    )
    priority = models.PositiveIntegerField(default=10, help_text="Lower is tried first.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


def new_bounce_token() -> str:
    # Only migration 0001 uses it (the field is gone: VERP addresses carry a signed reference).
    return secrets.token_hex(16)


class OutgoingMail(models.Model):
    # Unique through a constraint, not unique=True: on PostgreSQL that also builds a second
    # (LIKE) index, and every index costs each state change of the queue a write.
    message_id = models.CharField(max_length=998)
    from_addr = models.CharField(max_length=998)
    reply_to = models.CharField(max_length=998, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    references = models.TextField(blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)

    state = models.CharField(max_length=10, choices=MailState.choices, default=MailState.OUTGOING)
    urgent = models.BooleanField(default=False)
    auto_delete = models.BooleanField(default=False)
    system = models.BooleanField(default=False, help_text="Adds Auto-Submitted: auto-generated")
    scheduled_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    failure_type = models.CharField(max_length=30, blank=True)
    failure_reason = models.TextField(blank=True)
    server = models.ForeignKey(MailServer, null=True, blank=True, on_delete=models.SET_NULL)
    # The chatter message this mail notifies about, if any (for threading and support export).
    chatter_message = models.ForeignKey(
        "chatter.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mime = models.BinaryField(null=True, blank=True, help_text="The MIME as last sent")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "email"
        verbose_name_plural = "emails"
        constraints = [
            models.UniqueConstraint(fields=["message_id"], name="outgoingmail_message_id_unique"),
        ]
        indexes = [
            # The admin's and the dashboard's state filters.
            models.Index(fields=["state"], name="outgoingmail_state"),
            models.Index(
                fields=["next_attempt_at", "id"],
                name="mail_due",
                condition=Q(state__in=["outgoing", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject or '(no subject)'} [{self.get_state_display()}]"


class RecipientStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    DEFERRED = "deferred", "Deferred"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    CANCELED = "canceled", "Canceled"


class MailRecipient(models.Model):
    """One envelope recipient of an outgoing mail, with its own outcome."""

    mail = models.ForeignKey(OutgoingMail, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=998)
    notification = models.ForeignKey(
        "chatter.Notification", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING
    )
    code = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["address"])]

    def __str__(self) -> str:
        said = f" ({self.code} {self.response})".rstrip() if self.code else ""
        return f"{self.address}: {self.get_status_display()}{said}"[:200]


class MailAttempt(models.Model):
    """Every delivery attempt, kept for the queue screen and the support bundle."""

    mail = models.ForeignKey(OutgoingMail, on_delete=models.CASCADE, related_name="attempts_log")
    at = models.DateTimeField(auto_now_add=True)
    server = models.CharField(max_length=255)
    recipient = models.CharField(max_length=998, blank=True)
    code = models.PositiveIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        to = f" to {self.recipient}" if self.recipient else ""
        return f"Attempt{to} via {self.server}: {self.code or self.error_class} {self.text}"[:200]


class DailyQuota(models.Model):
    """How many mails left today (UTC); incremented atomically by every sender."""

    day = models.DateField(unique=True)
    used = models.PositiveIntegerField(default=0)


class QueueLock(models.Model):
    """A named lease row so one Email Queue Manager run never overlaps another.

    Held in the database, not the broker: a run that dies keeps it only until ``expires_at``.
    """

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
