"""Admin: the email queue ("Settings → Technical → Emails"), mail servers, beat validation."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from chatter.models import FailureType

from . import selectors, services, states
from .models import MailAttempt, MailRecipient, MailServer, OutgoingMail
from .relay import RelayConnectionError, connection_test, server_config
from .schedule import queue_interval_check


def _short(text: str, limit: int) -> str:
    """At most ``limit`` characters on the list; the whole text as its tooltip."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])


# Send Now sends in the request to say what happened to each mail; longer, the worker goes on.
SEND_NOW_BUDGET_SECONDS = 20


class FailureTypeFilter(admin.SimpleListFilter):
    """The failure-type filter in words (the column holds codes such as ``mail_smtp_refused``)."""

    title = "failure type"
    parameter_name = "failure_type"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label in FailureType.choices if value]

    def queryset(self, request, queryset):
        return queryset.filter(failure_type=self.value()) if self.value() else queryset


class MailRecipientInline(admin.TabularInline):
    model = MailRecipient
    verbose_name = "recipient"
    verbose_name_plural = "Recipients"
    extra = 0
    fields = ("address", "status", "code", "response", "notification")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class MailAttemptInline(admin.TabularInline):
    model = MailAttempt
    verbose_name = "attempt"
    extra = 0
    fields = ("at", "server", "recipient", "code", "error_class", "text")
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "Attempt history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutgoingMail)
class OutgoingMailAdmin(admin.ModelAdmin):
    # Short columns so the list fits 1280 px next to the admin's sidebars; the detail has it all.
    list_display = (
        "id",
        "subject_short",
        "recipient_list",
        "state",
        "attempts_next",
        "last_error",
        "created_short",
    )
    list_display_links = ("id", "subject_short")

    class Media:
        css = {"all": ["outbox/emails-admin.css"]}

    list_filter = ("state", FailureTypeFilter, "urgent", "system")
    change_form_template = "admin/outbox/outgoingmail/change_form.html"
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
        "failure_type_words",
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
        ("Failure", {"fields": ("failure_type_words", "failure_reason")}),
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mail = OutgoingMail.objects.filter(pk=object_id).only("state").first()
        state = mail.state if mail else ""
        actions = [
            ("retry", "Retry", state in states.RETRY_FROM),
            ("send-now", "Send Now", state in states.SEND_NOW_FROM),
            ("cancel", "Cancel Email", state in states.CANCEL_FROM),
        ]
        extra_context = {
            **(extra_context or {}),
            "mail_actions": [(action, label) for action, label, ok in actions if ok],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # The page's deferrals in one query (a deferred mail's 451 is in its attempts).
        self._last_errors = selectors.mail_last_errors(
            mail_ids=[m.pk for m in changelist.result_list if not m.failure_reason]
        )
        return changelist

    @admin.display(description="Last error")
    def last_error(self, obj: OutgoingMail) -> str:
        lines = [line for line in obj.failure_reason.splitlines() if line]
        words = " ".join(lines[1:3] or lines[:1]) if lines else ""
        words = words or getattr(self, "_last_errors", {}).get(obj.pk, "")
        return _short(words, 60)

    @admin.display(description="Subject", ordering="subject")
    def subject_short(self, obj: OutgoingMail) -> str:
        return _short(obj.subject or "(no subject)", 40)

    @admin.display(description="Attempts", ordering="attempts")
    def attempts_next(self, obj: OutgoingMail) -> str:
        if obj.next_attempt_at and obj.state == "outgoing":
            return f"{obj.attempts}, next {timezone.localtime(obj.next_attempt_at):%m-%d %H:%M}"
        return str(obj.attempts)

    @admin.display(description="Created", ordering="created_at")
    def created_short(self, obj: OutgoingMail) -> str:
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="Failure type")
    def failure_type_words(self, obj: OutgoingMail) -> str:
        return FailureType(obj.failure_type).label if obj.failure_type in FailureType else "-"

    def has_add_permission(self, request) -> bool:
        return False  # mail is created by the app, never typed in by hand

    def get_urls(self):
        view = self.admin_site.admin_view(self.eml_view)
        act = self.admin_site.admin_view(self.detail_action_view)
        return [
            path("<int:pk>/eml/", view, name="outbox_outgoingmail_eml"),
            path("<int:pk>/do/<str:action>/", act, name="outbox_outgoingmail_do"),
            *super().get_urls(),
        ]

    DETAIL_ACTIONS = {
        "retry": "action_retry",
        "send-now": "action_send_now",
        "cancel": "action_cancel",
    }

    def detail_action_view(self, request, pk: int, action: str) -> HttpResponse:
        """Retry / Send Now / Cancel Email as buttons of the detail page: the list's actions
        on this one mail, then back to it."""
        return require_POST(self._detail_action)(request, pk, action)

    def _detail_action(self, request, pk: int, action: str) -> HttpResponse:
        if action not in self.DETAIL_ACTIONS or not self.has_change_permission(request):
            return HttpResponse(status=404)
        queryset = OutgoingMail.objects.filter(pk=pk)
        getattr(self, self.DETAIL_ACTIONS[action])(request, queryset)
        if queryset.exists():
            return HttpResponseRedirect(reverse("admin:outbox_outgoingmail_change", args=[pk]))
        return HttpResponseRedirect(reverse("admin:outbox_outgoingmail_changelist"))

    def eml_view(self, request, pk: int) -> HttpResponse:
        """The raw .eml: as sent when it was kept (failures), else rebuilt from the row."""
        from diagnostics.support import mail_eml

        mail = get_object_or_404(OutgoingMail, pk=pk)
        recipient = None
        if request.GET.get("recipient", "").isdigit():
            recipient = get_object_or_404(mail.recipients, pk=int(request.GET["recipient"]))
        response = HttpResponse(mail_eml(mail, recipient), content_type="message/rfc822")
        suffix = f"-{recipient.pk}" if recipient else ""
        response["Content-Disposition"] = f'attachment; filename="mail-{mail.pk}{suffix}.eml"'
        return response

    @admin.display(description="Raw message")
    def raw_eml(self, obj: OutgoingMail) -> str:
        """One .eml per recipient: each copy left with its own To and Return-Path."""
        if obj.pk is None:
            return ""
        url = reverse("admin:outbox_outgoingmail_eml", args=[obj.pk])
        rows = list(obj.recipients.order_by("id").values_list("pk", "address")[:20])
        if len(rows) <= 1:
            return format_html('<a href="{}">Download .eml</a>', url)
        links = format_html_join(
            ", ", '<a href="{}?recipient={}">{}</a>', ((url, pk, addr) for pk, addr in rows)
        )
        return format_html("Download .eml as sent to {}", links)

    @admin.action(description="Retry")
    def action_retry(self, request, queryset) -> None:
        changed = services.mails_retry(mail_ids=list(queryset.values_list("pk", flat=True)))
        self._report(request, changed, queryset, "queued again", "failed or cancelled")

    @admin.action(description="Send Now")
    def action_send_now(self, request, queryset) -> None:
        """Send the outgoing mails now, in this request, and say what happened to each."""
        subjects = dict(queryset.values_list("pk", "subject"))
        changed = services.mails_send_now(mail_ids=list(subjects), dispatch=False)
        skipped = len(subjects) - changed
        if changed:
            due = list(
                OutgoingMail.objects.filter(pk__in=list(subjects), state="outgoing").values_list(
                    "pk", flat=True
                )
            )
            services.mails_send(mail_ids=due, time_budget=SEND_NOW_BUDGET_SECONDS)
            level = {
                "sent": messages.SUCCESS,
                "failed": messages.ERROR,
                "deferred": messages.WARNING,
            }
            sendable = {pk: s for pk, s in subjects.items() if pk in set(due)}
            for outcome in selectors.mails_outcome(subjects=sendable):
                self.message_user(
                    request, outcome.sentence, level.get(outcome.outcome, messages.INFO)
                )
        if skipped > 0:
            self.message_user(
                request,
                f"{skipped} mail(s) skipped: Send Now applies only to outgoing mail.",
                messages.WARNING,
            )

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
