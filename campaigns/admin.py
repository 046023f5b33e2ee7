"""Admin screens for email marketing (the pages under /campaigns/ are the everyday tools)."""

from django import forms
from django.contrib import admin

from chatter.content import sanitize_html

from .models import Campaign, CampaignRecipient, ListMember, MailingList


class ListMemberInline(admin.TabularInline):
    model = ListMember
    extra = 0
    raw_id_fields = ["contact"]
    readonly_fields = ["created_at", "unsubscribed_at", "unsubscribed_via", "unsubscribed_campaign"]


@admin.register(MailingList)
class MailingListAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]
    inlines = [ListMemberInline]


class CampaignAdminForm(forms.ModelForm):
    # No Meta: the admin builds the form for the model with every field it shows.

    def clean_body_html(self) -> str:
        # The same sanitiser as the campaign form and services: the body goes to every inbox on
        # the lists and is shown as HTML on the campaign page.
        return sanitize_html(self.cleaned_data["body_html"])


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = ["subject", "state", "created_at", "scheduled_at", "finished_at"]
    list_filter = ["state"]
    search_fields = ["subject"]
    # States change through the campaign page's actions (guarded services), not by editing.
    readonly_fields = [
        "state",
        "queued_at",
        "started_at",
        "finished_at",
        "cancelled_at",
        "cursor",
        "members_done",
        "expected",
        "duplicates",
    ]


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(admin.ModelAdmin):
    list_display = ["email", "campaign", "status", "skip_reason", "updated_at"]
    list_filter = ["status", "skip_reason"]
    search_fields = ["email", "campaign__subject"]
    raw_id_fields = ["campaign", "contact"]

    def has_add_permission(self, request) -> bool:
        return False
