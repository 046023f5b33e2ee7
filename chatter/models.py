"""The chatter: contacts, followers, messages and per-recipient notifications on any record.

A record is any model instance; the chatter points at it by (content type, object id), so a model
gets a chatter by inheriting ``ChatterMixin`` and nothing in this app changes.
"""

import secrets

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse


def normalize_email(address: str) -> str:
    """Lower-case and strip an address so one mailbox maps to one contact."""
    return (address or "").strip().lower()


class NotificationPreference(models.TextChoices):
    EMAIL = "email", "Handle by Emails"
    INBOX = "inbox", "Handle in MailHub"


class Contact(models.Model):
    """The address book (Odoo's res.partner)."""

    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contact",
    )
    notification_preference = models.CharField(
        max_length=10,
        choices=NotificationPreference.choices,
        default=NotificationPreference.EMAIL,
    )
    bounce_count = models.PositiveIntegerField(default=0)
    last_bounce_at = models.DateTimeField(null=True, blank=True)
    blacklisted = models.BooleanField(default=False)
    blacklisted_at = models.DateTimeField(null=True, blank=True)
    blacklist_reason = models.TextField(blank=True)
    # The recipient reported our mail as spam (an RFC 5965 feedback report): campaigns and
    # optional mail leave the address alone from then on.
    complained_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def is_internal(self) -> bool:
        """Internal users are staff; everyone else is a customer for the Note subtype."""
        return bool(self.user_id and self.user.is_staff)

    @property
    def is_bouncing(self) -> bool:
        return self.bounce_count > 0

    def clean(self) -> None:
        self.email = normalize_email(self.email)
        if self.notification_preference == NotificationPreference.INBOX and not self.is_internal:
            raise ValidationError(
                {
                    "notification_preference": "Only internal users can handle notifications in "
                    "MailHub; customers receive them by email."
                }
            )

    def save(self, *args, **kwargs) -> None:
        # The inbox rule is enforced on every save, not only in forms.
        self.email = normalize_email(self.email)
        if self.notification_preference == NotificationPreference.INBOX and not self.is_internal:
            raise ValidationError("Only internal users can handle notifications in MailHub.")
        super().save(*args, **kwargs)


class Subtype(models.Model):
    """Discussions (public, followed by default) and Note (internal, never emailed out)."""

    DISCUSSION = "discussion"
    NOTE = "note"

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    internal = models.BooleanField(default=False)
    default = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class Follower(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    record = GenericForeignKey("content_type", "object_id")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="follows")
    subtypes = models.ManyToManyField(Subtype, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "contact"], name="follower_once_per_record"
            )
        ]
        indexes = [models.Index(fields=["content_type", "object_id"])]


def new_message_id() -> str:
    """An RFC 5322 Message-ID on our domain carrying an unguessable token (reply matching key)."""
    return f"<{secrets.token_urlsafe(24)}@{settings.MAILHUB_MAIL_DOMAIN}>"


class MessageKind(models.TextChoices):
    COMMENT = "comment", "Comment"
    EMAIL = "email", "Incoming email"
    NOTIFICATION = "notification", "System notification"


class Message(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    record = GenericForeignKey("content_type", "object_id")
    author = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    subtype = models.ForeignKey(Subtype, on_delete=models.PROTECT)
    kind = models.CharField(max_length=20, choices=MessageKind.choices, default=MessageKind.COMMENT)
    subject = models.CharField(max_length=998, blank=True)
    body = models.TextField(blank=True, help_text="Sanitised HTML")
    message_id = models.CharField(max_length=998, unique=True, default=new_message_id)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "-id"])]

    def __str__(self) -> str:
        return f"Message {self.pk} on {self.content_type_id}/{self.object_id}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    content_id = models.CharField(max_length=255, blank=True, help_text="For cid: images")

    def get_absolute_url(self) -> str:
        return reverse("chatter:attachment", args=[self.pk])


class NotificationKind(models.TextChoices):
    INBOX = "inbox", "Inbox"
    EMAIL = "email", "Email"


class NotificationStatus(models.TextChoices):
    READY = "ready", "Ready"
    SENT = "sent", "Sent"
    BOUNCE = "bounce", "Bounced"
    EXCEPTION = "exception", "Error"
    CANCELED = "canceled", "Canceled"


FAILURE_STATUSES = (NotificationStatus.EXCEPTION, NotificationStatus.BOUNCE)


class FailureType(models.TextChoices):
    NONE = "", "No failure"
    UNKNOWN = "unknown", "Unknown error"
    BOUNCE = "mail_bounce", "Bounce"
    EMAIL_INVALID = "mail_email_invalid", "Invalid email address"
    EMAIL_MISSING = "mail_email_missing", "Missing email address"
    FROM_INVALID = "mail_from_invalid", "Invalid from address"
    FROM_MISSING = "mail_from_missing", "Missing from address"
    SMTP = "mail_smtp", "Connection failed (outgoing mail server problem)"
    SMTP_REFUSED = "mail_smtp_refused", "Refused by the mail server"
    QUOTA = "mail_quota", "Daily limit reached"
    BLACKLISTED = "mail_bl", "Blacklisted Address"
    OPTOUT = "mail_optout", "Opted Out"
    DUPLICATE = "mail_dup", "Duplicated Email"


class Notification(models.Model):
    """One recipient of one message: in the inbox, or by email with its delivery status."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="notifications")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.READY
    )
    failure_type = models.CharField(max_length=30, choices=FailureType.choices, blank=True)
    failure_reason = models.TextField(blank=True)
    is_read = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    # The outgoing mail currently carrying this notification (a resend points it at a new one).
    mail = models.ForeignKey(
        "outbox.OutgoingMail",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "contact"], name="one_notification_each")
        ]
        indexes = [
            models.Index(
                fields=["status"],
                name="notification_failures",
                condition=Q(status__in=["exception", "bounce"]),
            ),
            models.Index(fields=["contact", "kind", "is_read"]),
        ]

    def __str__(self) -> str:
        # The admin shows it (Emails → recipients): who, how, and where it stands.
        return f"{self.get_kind_display()} to {self.contact}: {self.get_status_display()}"

    @property
    def is_failure(self) -> bool:
        return self.status in FAILURE_STATUSES


class ChatterMixin(models.Model):
    """Inherit this to give a model a chatter: followers, thread and notifications.

    The model must define ``get_absolute_url`` and may define ``chatter_title``.
    """

    chatter_messages = GenericRelation(Message)
    chatter_followers = GenericRelation(Follower)

    class Meta:
        abstract = True

    @property
    def chatter_title(self) -> str:
        return str(self)


class BounceEventKind(models.TextChoices):
    HARD = "hard", "Hard bounce"
    SOFT = "soft", "Soft bounce"
    # Refused by a filter (RFC 3463 X.7.x, spam, reputation): shown, never counted.
    POLICY = "policy", "Policy block"
    # A bounce naming this address without the proof only its copy carried: never counted.
    UNVERIFIED = "unverified", "Reported, not verified"
    # A feedback-loop report (RFC 5965): the recipient marked our mail as spam.
    COMPLAINED = "complained", "Complained (marked as spam)"
    BLACKLISTED = "blacklisted", "Blacklisted"
    UNBLACKLISTED = "unblacklisted", "Removed from blacklist"


class BounceEvent(models.Model):
    """The bounce and blacklist history of a contact (``chatter.suppression`` writes it).

    Hard bounces in a window decide the automatic blacklist; the rest explains the contact page.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="bounce_events")
    kind = models.CharField(max_length=15, choices=BounceEventKind.choices)
    at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=20, blank=True, help_text="RFC 3463 code, e.g. 5.1.1")
    reason = models.TextField(blank=True)
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    inbound_mail = models.ForeignKey(
        "inbound.InboundMail", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["contact", "kind", "at"])]
