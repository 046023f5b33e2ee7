from django.contrib import admin

from chatter.services import contact_for_user, follower_add

from .models import Invoice, Quote, Ticket


class RecordAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "created_by", "created_at")
    search_fields = ("title",)
    readonly_fields = ("created_by", "created_at")
    date_hierarchy = "created_at"

    def save_model(self, request, obj, form, change):
        # The same rule as records.services.record_create: the creator follows the record.
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            follower_add(
                record=obj, contact=contact_for_user(user=request.user), ignore_existing=True
            )


@admin.register(Ticket)
class TicketAdmin(RecordAdmin):
    list_display = (*RecordAdmin.list_display, "state")
    list_filter = ("state",)


@admin.register(Quote)
class QuoteAdmin(RecordAdmin):
    list_display = (*RecordAdmin.list_display, "amount")


@admin.register(Invoice)
class InvoiceAdmin(RecordAdmin):
    list_display = (*RecordAdmin.list_display, "amount", "paid")
    list_filter = ("paid",)
