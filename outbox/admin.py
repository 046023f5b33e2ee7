"""Admin: the email queue ("Settings → Technical → Emails"), mail servers, beat validation."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from . import services
from .models import MailAttempt, MailRecipient, MailServer, OutgoingMail
from .relay import RelayConnectionError, connection_test, server_config
from .schedule import queue_interval_check


class MailRecipientInline(admin.TabularInline):
    model = MailRecipient
    extra = 0
    fields = ("address", "status", "code", "response", "notification")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class MailAttemptInline(admin.TabularInline):
    model = MailAttempt
    extra = 0
    fields = ("at", "server", "recipient", "code", "error_class", "text")
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "Attempt history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutgoingMail)
class OutgoingMailAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "subject",
        "recipient_list",
        "state",
        "scheduled_at",
        "next_attempt_at",
        "attempts",
        "last_error",
        "created_at",
    )
    list_filter = ("state", "failure_type", "urgent", "system")
    search_fields = ("subject", "message_id", "recipients__address")
    search_help_text = "Search by recipient, subject or Message-ID."
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False  # a COUNT over a big queue on every page view is waste
    actions = ["action_retry", "action_send_now", "action_cancel"]
    inlines = [MailRecipientInline, MailAttemptInline]
    readonly_fields = (
        "message_id",
        "state",
        "failure_type",
        "failure_reason",
        "attempts",
        "next_attempt_at",
        "lease_expires_at",
        "claimed_by",
        "sent_at",
        "created_at",
        "chatter_message",
        "raw_eml",
    )
    fieldsets = (
        (None, {"fields": ("subject", "from_addr", "reply_to", "message_id", "state", "raw_eml")}),
        ("Failure", {"fields": ("failure_type", "failure_reason")}),
        (
            "Schedule",
            {
                "fields": (
                    "scheduled_at",
                    "next_attempt_at",
                    "attempts",
                    "urgent",
                    "auto_delete",
                    "system",
                    "server",
                )
            },
        ),
        ("Content", {"classes": ("collapse",), "fields": ("body_text", "body_html", "headers")}),
        (
            "Internals",
            {
                "classes": ("collapse",),
                "fields": (
                    "references",
                    "in_reply_to",
                    "lease_expires_at",
                    "claimed_by",
                    "chatter_message",
                    "sent_at",
                    "created_at",
                ),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(recipient_count=Count("recipients"))

    @admin.display(description="Recipients")
    def recipient_list(self, obj: OutgoingMail) -> str:
        first = obj.recipients.values_list("address", flat=True).first() or ""
        more = obj.recipient_count - 1
        return f"{first} (+{more})" if more > 0 else first

    @admin.display(description="Last error")
    def last_error(self, obj: OutgoingMail) -> str:
        lines = [line for line in obj.failure_reason.splitlines() if line]
        return " ".join(lines[1:3] or lines[:1])[:120]

    def has_add_permission(self, request) -> bool:
        return False  # mail is created by the app, never typed in by hand

    def get_urls(self):
        view = self.admin_site.admin_view(self.eml_view)
        return [
            path("<int:pk>/eml/", view, name="outbox_outgoingmail_eml"),
            *super().get_urls(),
        ]

    def eml_view(self, request, pk: int) -> HttpResponse:
        """The raw .eml: as sent when it was kept (failures), else rebuilt from the row."""
        from diagnostics.support import mail_eml

        mail = get_object_or_404(OutgoingMail, pk=pk)
        response = HttpResponse(mail_eml(mail), content_type="message/rfc822")
        response["Content-Disposition"] = f'attachment; filename="mail-{mail.pk}.eml"'
        return response

    @admin.display(description="Raw message")
    def raw_eml(self, obj: OutgoingMail) -> str:
        if obj.pk is None:
            return ""
        url = reverse("admin:outbox_outgoingmail_eml", args=[obj.pk])
        return format_html('<a href="{}">Download .eml</a>', url)

    @admin.action(description="Retry")
    def action_retry(self, request, queryset) -> None:
        changed = services.mails_retry(mail_ids=list(queryset.values_list("pk", flat=True)))
        self._report(request, changed, queryset, "queued again", "failed or cancelled")

    @admin.action(description="Send Now")
    def action_send_now(self, request, queryset) -> None:
        changed = services.mails_send_now(mail_ids=list(queryset.values_list("pk", flat=True)))
        self._report(request, changed, queryset, "sent now", "outgoing")

    @admin.action(description="Cancel Email")
    def action_cancel(self, request, queryset) -> None:
        changed = services.mails_cancel(mail_ids=list(queryset.values_list("pk", flat=True)))
        self._report(request, changed, queryset, "cancelled", "outgoing or failed")

    def _report(self, request, changed: int, queryset, done: str, allowed: str) -> None:
        self.message_user(request, f"{changed} mail(s) {done}.", messages.SUCCESS)
        skipped = queryset.count() - changed
        if skipped > 0:
            self.message_user(
                request,
                f"{skipped} mail(s) skipped: this action applies only to {allowed} mail.",
                messages.WARNING,
            )


class MailServerForm(forms.ModelForm):
    """The password is write-only: never sent back to the browser; left empty, it is kept."""

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave empty to keep the current password.",
    )
    clear_password = forms.BooleanField(
        required=False, label="Remove the password", help_text="Log in without a password."
    )

    class Meta:
        model = MailServer
        fields = [
            "name",
            "host",
            "port",
            "security",
            "username",
            "password",
            "clear_password",
            "from_filter",
            "priority",
            "active",
        ]

    def clean_password(self) -> str:
        typed = self.cleaned_data.get("password", "")
        if not typed and self.instance.pk:
            return self.instance.password
        return typed

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_password"):
            cleaned["password"] = ""
        return cleaned


@admin.register(MailServer)
class MailServerAdmin(admin.ModelAdmin):
    form = MailServerForm
    list_display = ("name", "host", "port", "security", "from_filter", "priority", "active")
    list_filter = ("active", "security")
    search_fields = ("name", "host", "from_filter")
    actions = ["action_test_connection"]

    @admin.action(description="Test connection")
    def action_test_connection(self, request, queryset) -> None:
        from django.conf import settings

        for server in queryset:
            sender = server.from_filter.split(",")[0].strip() if server.from_filter else ""
            if sender and "@" not in sender:
                sender = f"noreply@{sender}"
            try:
                steps = connection_test(
                    server_config(server), sender=sender or settings.MAILHUB_DEFAULT_FROM
                )
            except RelayConnectionError as exc:
                self.message_user(
                    request,
                    f"Connection Test Failed for {server.name}! {exc.error_class}: {exc.text} "
                    "Check the host, port, security and credentials.",
                    messages.ERROR,
                )
                continue
            said = "; ".join(f"{step} → {code} {text}" for step, code, text in steps)
            self.message_user(
                request, f"Connection Test Successful for {server.name}: {said}", messages.SUCCESS
            )


class QueueAwarePeriodicTaskForm(PeriodicTaskForm):
    """The beat schedule form, refusing an Email Queue Manager interval under 5 minutes."""

    def clean(self):
        data = super().clean()
        try:
            queue_interval_check(task=data.get("task", ""), interval=data.get("interval"))
        except forms.ValidationError as exc:
            self.add_error("interval", exc.message_dict["interval"])
        return data


if admin.site.is_registered(PeriodicTask):
    admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class QueueAwarePeriodicTaskAdmin(PeriodicTaskAdmin):
    form = QueueAwarePeriodicTaskForm
