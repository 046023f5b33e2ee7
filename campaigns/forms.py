"""Forms of the campaign and mailing-list pages."""

from email.utils import parseaddr

from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from chatter.content import sanitize_html
from mailhub.text_limits import text_size_check
from outbox.mime import BuildError, sender_check

from .models import Campaign, MailingList


class CampaignForm(forms.ModelForm):
    mailing_lists = forms.ModelMultipleChoiceField(
        queryset=MailingList.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        help_text="A contact on several of these lists gets one mail (the others count as "
        "duplicates).",
    )

    class Meta:
        model = Campaign
        fields = ["subject", "mailing_lists", "body_html", "from_addr"]
        labels = {"body_html": "Body (HTML)", "from_addr": "From"}
        widgets = {
            "subject": forms.TextInput(attrs={"size": 60}),
            "body_html": forms.Textarea(attrs={"rows": 12, "cols": 80}),
            "from_addr": forms.TextInput(attrs={"size": 40}),
        }

    def clean_from_addr(self) -> str:
        # Checked as the outbox will write it: an address that needs SMTPUTF8 (a non-ASCII
        # local part) is refused here, not discovered when every mail of the campaign fails.
        value = " ".join(self.cleaned_data["from_addr"].split())
        if not value:
            return value
        try:
            sender_check(value)
        except BuildError as exc:
            raise forms.ValidationError(f"This From address cannot be sent: {exc}.") from exc
        validate_email(parseaddr(value)[1])
        return value

    def clean_body_html(self) -> str:
        text_size_check(self.cleaned_data["body_html"], what="This body")
        # Staff write it, but it goes to thousands of inboxes: no script, no tracking tricks.
        body = sanitize_html(self.cleaned_data["body_html"])
        if not body.strip():
            raise forms.ValidationError("Write the body of the mail.")
        return body


class ScheduleForm(forms.Form):
    at = forms.DateTimeField(
        label="Send on (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_at(self):
        at = self.cleaned_data["at"]
        if timezone.is_naive(at):
            at = timezone.make_aware(at, timezone.get_current_timezone())
        if at <= timezone.now():
            raise forms.ValidationError("Pick a time in the future, or use Send to send now.")
        return at


class MailingListForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = ["name", "description"]
        widgets = {"description": forms.TextInput(attrs={"size": 60})}


class MemberAddForm(forms.Form):
    email = forms.EmailField()
    name = forms.CharField(required=False, max_length=200)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file", help_text="A header row with an 'email' column ('name' optional)."
    )
