from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from .models import Alias, AliasDomain, Decision, InboundMail
from .services import NotHeld, inbound_discard, inbound_release


class AliasInline(admin.TabularInline):
    model = Alias
    extra = 0


@admin.register(AliasDomain)
class AliasDomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "catchall_local", "bounce_local", "default_from_local"]
    search_fields = ["domain"]
    inlines = [AliasInline]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model", "record_id", "contact_security", "active"]
    list_filter = ["domain", "model", "contact_security", "active"]
    search_fields = ["local_part", "domain__domain"]


class ReviewFilter(admin.SimpleListFilter):
    """Held mail waits for a person: one click lists it."""

    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("held", "Held"), ("released", "Released"), ("discarded", "Discarded")]

    def queryset(self, request, queryset):
        if self.value() == "held":
            return queryset.filter(decision=Decision.HELD)
        if self.value() == "released":
            return queryset.filter(reviewed_at__isnull=False).exclude(
                decision__in=[Decision.HELD, Decision.DISCARDED]
            )
        if self.value() == "discarded":
            return queryset.filter(decision=Decision.DISCARDED)
        return queryset


@admin.register(InboundMail)
class InboundMailAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "sender",
        "rcpt_to",
        "subject",
        "decision",
        "code",
        "reason",
        "processed",
    ]
    list_filter = [ReviewFilter, "decision", "code", "automatic"]
    actions = ["release", "discard"]
    search_fields = ["message_id", "sender", "mail_from", "rcpt_to", "subject"]
    date_hierarchy = "received_at"
    exclude = ["raw"]
    readonly_fields = [f.name for f in InboundMail._meta.fields if f.name != "raw"] + ["source"]

    @admin.display(boolean=True)
    def processed(self, obj: InboundMail) -> bool:
        return obj.processed_at is not None

    @admin.display(description="Source")
    def source(self, obj: InboundMail) -> str:
        return format_html(
            '<a href="{}">Download .eml</a> · <a href="{}">View</a>',
            reverse("inbound:raw", args=[obj.pk]),
            reverse("inbound:detail", args=[obj.pk]),
        )

    def has_add_permission(self, request) -> bool:
        return False

    def _review(self, request, queryset, service, done: str) -> None:
        ok = skipped = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                service(inbound_mail_id=pk, by=request.user)
                ok += 1
            except NotHeld:
                skipped += 1
        if ok:
            self.message_user(request, f"{ok} held mail(s) {done}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} mail(s) skipped: not held for review.", messages.WARNING
            )

    @admin.action(description="Release: post as it would have been posted", permissions=["change"])
    def release(self, request, queryset) -> None:
        self._review(request, queryset, inbound_release, "released and posted")

    @admin.action(description="Discard: never post", permissions=["change"])
    def discard(self, request, queryset) -> None:
        self._review(request, queryset, inbound_discard, "discarded")
