"""Admin → Incoming mail servers: the mailboxes MailHub fetches, with Test & Confirm."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from . import services
from .models import FetchBounce, FetchedMessage, IncomingServer


class IncomingServerForm(forms.ModelForm):
    new_password = forms.CharField(
        label="Password",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current one.",
    )

    class Meta:
        model = IncomingServer
        fields = [
            "name",
            "protocol",
            "host",
            "port",
            "login",
            "new_password",
            "folder",
            "after_fetch",
            "move_to",
            "interval_minutes",
            "active",
        ]

    def clean(self):
        data = super().clean()
        if not self.instance.password_encrypted and not data.get("new_password"):
            self.add_error("new_password", "A password is needed to log in.")
        return data

    def save(self, commit=True):
        if self.cleaned_data.get("new_password"):
            self.instance.password = self.cleaned_data["new_password"]
        return super().save(commit=commit)


@admin.register(IncomingServer)
class IncomingServerAdmin(admin.ModelAdmin):
    form = IncomingServerForm
    list_display = [
        "name",
        "protocol",
        "host",
        "login",
        "folder",
        "after_fetch",
        "interval_minutes",
        "active",
        "last_fetch_at",
        "messages_fetched",
        "last_error",
    ]
    readonly_fields = ["confirmed_at", "last_fetch_at", "last_error", "messages_fetched"]
    actions = ["test_and_confirm", "fetch_now"]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            services.incoming_server_schedule(server=obj)

    def delete_model(self, request, obj):
        pk = obj.pk
        super().delete_model(request, obj)
        services.incoming_server_unschedule(server_id=pk)

    def delete_queryset(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        for pk in ids:
            services.incoming_server_unschedule(server_id=pk)

    @admin.action(description="Test & Confirm (log in and open the folder)")
    def test_and_confirm(self, request, queryset):
        for server in queryset:
            ok, words = services.incoming_server_test(server=server)
            level = messages.SUCCESS if ok else messages.ERROR
            verdict = "confirmed" if ok else "failed"
            self.message_user(request, f"{server.name}: {verdict}: {words}", level)

    @admin.action(description="Fetch now")
    def fetch_now(self, request, queryset):
        for server in queryset:
            report = services.incoming_server_fetch(server_id=server.pk)
            if report.error:
                self.message_user(request, f"{server.name}: {report.error}", messages.ERROR)
            elif report.busy:
                self.message_user(request, f"{server.name}: a run is already fetching it")
            else:
                self.message_user(
                    request, f"{server.name}: {report.fetched} message(s) fetched", messages.SUCCESS
                )


@admin.register(FetchedMessage)
class FetchedMessageAdmin(admin.ModelAdmin):
    list_display = ["server", "uidvalidity", "uid", "message_id", "outcome", "fetched_at"]
    list_filter = ["server"]
    search_fields = ["message_id", "uid"]
    readonly_fields = [f.name for f in FetchedMessage._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(FetchBounce)
class FetchBounceAdmin(admin.ModelAdmin):
    list_display = ["created_at", "server", "sender", "sent", "reason"]
    list_filter = ["sent", "server"]
    readonly_fields = [f.name for f in FetchBounce._meta.fields]

    def has_add_permission(self, request):
        return False
