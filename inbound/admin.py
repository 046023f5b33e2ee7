from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Alias, AliasDomain, InboundMail


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
    list_filter = ["decision", "code", "automatic"]
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
