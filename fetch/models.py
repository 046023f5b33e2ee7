"""Mailboxes MailHub fetches mail from (IMAP or POP3), and what it took from each."""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from mailhub.encryption import secret_decrypt, secret_encrypt


class Protocol(models.TextChoices):
    IMAP_SSL = "imap_ssl", "IMAP over SSL/TLS"
    IMAP_STARTTLS = "imap_starttls", "IMAP with STARTTLS"
    POP3_SSL = "pop3_ssl", "POP3 over SSL/TLS"


DEFAULT_PORTS = {Protocol.IMAP_SSL: 993, Protocol.IMAP_STARTTLS: 143, Protocol.POP3_SSL: 995}


class AfterFetch(models.TextChoices):
    MARK_SEEN = "seen", "Mark as seen (POP3: leave on the server)"
    MOVE = "move", "Move to a folder (IMAP)"
    DELETE = "delete", "Delete"


class IncomingServer(models.Model):
    name = models.CharField(max_length=100, unique=True)
    protocol = models.CharField(max_length=20, choices=Protocol.choices, default=Protocol.IMAP_SSL)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(null=True, blank=True, help_text="empty: the default port")
    login = models.CharField(max_length=254)
    password_encrypted = models.TextField(blank=True, editable=False)
    folder = models.CharField(max_length=200, default="INBOX", help_text="IMAP only")
    after_fetch = models.CharField(
        max_length=10, choices=AfterFetch.choices, default=AfterFetch.MARK_SEEN
    )
    move_to = models.CharField(
        max_length=200, blank=True, help_text="the folder fetched mail is moved to (IMAP)"
    )
    interval_minutes = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="at least 1"
    )
    active = models.BooleanField(default=False, help_text="fetched on schedule once confirmed")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    messages_fetched = models.PositiveIntegerField(default=0)
    # A run holds the server until this time, so two runs never fetch one mailbox at once.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_imap(self) -> bool:
        return self.protocol != Protocol.POP3_SSL

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[Protocol(self.protocol)]

    @property
    def password(self) -> str:
        return secret_decrypt(token=self.password_encrypted)

    @password.setter
    def password(self, value: str) -> None:
        self.password_encrypted = secret_encrypt(plaintext=value) if value else ""

    def clean(self) -> None:
        if self.after_fetch == AfterFetch.MOVE:
            if not self.is_imap:
                raise ValidationError({"after_fetch": "POP3 has no folders: keep or delete."})
            if not self.move_to.strip():
                raise ValidationError({"move_to": "Name the folder fetched mail is moved to."})
            if self.move_to.strip() == self.folder.strip():
                raise ValidationError({"move_to": "Choose a folder other than the one fetched."})


class FetchedMessage(models.Model):
    """One message taken from a mailbox: the key that makes fetching exactly-once.

    Written in the same transaction as the stored inbound mail, before the server is told
    anything; ``acknowledged_at`` is set once the server has flagged, moved or deleted it. A run
    that finds a row without it only acknowledges (a crash came between the two).
    """

    server = models.ForeignKey(IncomingServer, on_delete=models.CASCADE, related_name="fetched")
    # IMAP: the mailbox's UIDVALIDITY and the UID (RFC 3501 §2.3.1.1); POP3: "" and the UIDL.
    uidvalidity = models.CharField(max_length=20, blank=True)
    uid = models.CharField(max_length=80)
    message_id = models.CharField(max_length=998, blank=True, db_index=True)
    outcome = models.TextField(blank=True)
    fetched_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["server", "uidvalidity", "uid"], name="fetched_once_per_uid"
            )
        ]
        indexes = [models.Index(fields=["server", "message_id"], name="fetched_by_message_id")]

    def __str__(self) -> str:
        return f"{self.server} {self.uidvalidity}:{self.uid}"


class FetchBounce(models.Model):
    """A DSN sent for fetched mail nobody took; counted to rate-limit them per sender."""

    server = models.ForeignKey(IncomingServer, on_delete=models.CASCADE, related_name="bounces")
    sender = models.CharField(max_length=254, db_index=True)
    message_id = models.CharField(max_length=998, blank=True)
    reason = models.TextField(blank=True)
    sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
