from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from .content import sanitize_html
from .models import Attachment, Contact, Follower, Message, Notification, Subtype
from .user_contacts import conflict_message, user_email_conflict


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "email",
        "user",
        "notification_preference",
        "bounce_count",
        "blacklisted",
    )
    list_filter = ("notification_preference", "blacklisted")
    search_fields = ("name", "email", "user__username")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "last_bounce_at", "blacklisted_at")


@admin.register(Subtype)
class SubtypeAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "internal", "default")


@admin.register(Follower)
class FollowerAdmin(admin.ModelAdmin):
    list_display = ("contact", "content_type", "object_id", "created_at")
    list_filter = ("content_type", "subtypes")
    search_fields = ("contact__name", "contact__email")
    raw_id_fields = ("contact",)
    list_select_related = ("contact", "content_type")


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ("filename", "content_type", "size", "content_id")
    readonly_fields = fields
    can_delete = False


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    fields = ("contact", "kind", "status", "failure_type", "failure_reason", "is_read")
    readonly_fields = fields
    can_delete = False


class MessageAdminForm(forms.ModelForm):
    # No Meta: the admin builds the form for the model with every field it shows.

    def clean_body(self) -> str:
        # Templates show the body as HTML: what the admin saves goes through the sanitiser that
        # every other way of writing a body uses.
        return sanitize_html(self.cleaned_data["body"])


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    form = MessageAdminForm
    list_display = ("id", "content_type", "object_id", "author", "subtype", "kind", "created_at")
    list_filter = ("kind", "subtype", "content_type")
    search_fields = ("subject", "message_id", "author__email")
    raw_id_fields = ("author",)
    readonly_fields = ("message_id", "in_reply_to", "references", "created_at")
    list_select_related = ("author", "subtype", "content_type")
    inlines = [AttachmentInline, NotificationInline]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and obj.inbound_sources.exists():
            # A received mail's body is what its sender wrote (its inline images point at our
            # attachment URLs, which the sanitiser for typed HTML does not keep): not edited.
            return (*fields, "body")
        return fields


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "message", "contact", "kind", "status", "failure_type", "is_read")
    list_filter = ("kind", "status", "failure_type", "is_read")
    search_fields = ("contact__email", "message__message_id")
    raw_id_fields = ("message", "contact", "mail")
    list_select_related = ("message", "contact")


class UserContactChangeForm(UserChangeForm):
    """Admin → Users: an address another contact already has is a form error, not a crash."""

    def clean_email(self) -> str:
        email = self.cleaned_data.get("email", "")
        other = user_email_conflict(user=self.instance, email=email)
        if other is not None:
            raise ValidationError(conflict_message(email=email, other=other))
        return email


admin.site.unregister(User)


@admin.register(User)
class MailHubUserAdmin(UserAdmin):
    form = UserContactChangeForm
