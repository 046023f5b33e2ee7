"""Forms of the chatter: the composer, followers, the contact picker and preferences."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from diagnostics.placeholders import is_placeholder_address
from mailhub.text_limits import text_size_check

from .models import Contact, NotificationPreference, Subtype, normalize_email
from .selectors import contact_search
from .user_contacts import conflict_message, user_email_conflict

# One file per field is plenty for a chatter; bigger files belong in a document store.
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_ATTACHMENTS = 10


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        if len(files) > MAX_ATTACHMENTS:
            raise ValidationError(f"Attach at most {MAX_ATTACHMENTS} files per message.")
        cleaned = [super(MultipleFileField, self).clean(f, initial) for f in files]
        for upload in cleaned:
            if upload.size > MAX_ATTACHMENT_BYTES:
                raise ValidationError(
                    f"{upload.name} is {upload.size // (1024 * 1024)} MB; attach files of "
                    f"at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."
                )
        return cleaned


def _emails_parse(raw: str) -> list[str]:
    """ "a@x.test, b@y.test" → normalised addresses; an invalid one is an error."""
    emails = [normalize_email(e) for e in raw.replace(";", ",").split(",") if e.strip()]
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(f"“{email}” is not an email address.") from None
    return list(dict.fromkeys(emails))


def single_line(value: str) -> None:
    """Refuse line breaks in a value that ends up in a mail header (header injection)."""
    if "\r" in value or "\n" in value:
        raise ValidationError("Keep this on one line: remove the line break.")


class ComposerForm(forms.Form):
    """Send message (Discussions, emailed to followers) or Log note (Note, internal only)."""

    ACTION_MESSAGE = "message"
    ACTION_NOTE = "note"

    action = forms.ChoiceField(
        choices=[(ACTION_MESSAGE, "Send message"), (ACTION_NOTE, "Log note")],
        initial=ACTION_MESSAGE,
    )
    subject = forms.CharField(
        max_length=998,
        required=False,
        validators=[single_line],
        widget=forms.TextInput(attrs={"placeholder": "Subject (email)"}),
    )
    body = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Write a message…"}),
    )
    attachments = MultipleFileField(required=False)
    mentions = forms.ModelMultipleChoiceField(
        queryset=Contact.objects.select_related("user"),
        required=False,
        widget=forms.MultipleHiddenInput,
    )
    mention_emails = forms.CharField(
        required=False,
        label="Also notify",
        widget=forms.TextInput(attrs={"placeholder": "Email addresses, comma separated"}),
    )
    # Offered when "or by address" names someone who is not a contact yet (as Odoo offers to
    # create the partner): ticked, the post creates the contacts and notifies them.
    create_contacts = forms.BooleanField(
        required=False, label="Create a contact for each new address and notify them"
    )

    def __init__(self, *args, can_log_note: bool = True, can_mention: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.can_log_note = can_log_note
        self.can_mention = can_mention
        self.new_addresses: list[str] = []  # "or by address" entries that are no contact yet
        self.offer_create = False
        if not can_mention:
            del self.fields["mentions"]
            del self.fields["mention_emails"]
            del self.fields["create_contacts"]

    def clean_action(self) -> str:
        action = self.cleaned_data["action"]
        if action == self.ACTION_NOTE and not self.can_log_note:
            raise ValidationError("Only internal users can log notes; send a message instead.")
        return action

    def clean_body(self) -> str:
        body = self.cleaned_data.get("body") or ""
        text_size_check(body, what="This message")
        return body

    def clean_mention_emails(self) -> list[Contact]:
        emails = _emails_parse(self.cleaned_data.get("mention_emails") or "")
        found = {
            c.email: c for c in Contact.objects.filter(email__in=emails).select_related("user")
        }
        self.new_addresses = [e for e in emails if e not in found]
        return [found[e] for e in emails if e in found]

    def clean(self) -> dict:
        data = super().clean()
        if not (data.get("body") or "").strip() and not data.get("attachments"):
            raise ValidationError("Write a message or attach a file before posting.")
        if self.new_addresses and not data.get("create_contacts"):
            self.offer_create = True
            self.add_error(
                "mention_emails",
                f"No contact has the address {', '.join(self.new_addresses)}: tick “Create a "
                "contact for each new address” to create and notify them, or check the spelling.",
            )
        if data.get("action") == self.ACTION_NOTE and self.can_mention:
            customers = [c for c in self._mentions_given(data) if not c.is_internal]
            if customers or self.new_addresses:
                names = [c.name for c in customers] + self.new_addresses
                raise ValidationError(
                    f"A log note is never mailed to customers, so {', '.join(names)} would not "
                    "be notified: remove the mention, or choose Send message."
                )
        return data

    @staticmethod
    def _mentions_given(data: dict) -> list[Contact]:
        return [*data.get("mentions", []), *data.get("mention_emails", [])]

    @property
    def subtype_code(self) -> str:
        return (
            Subtype.NOTE if self.cleaned_data["action"] == self.ACTION_NOTE else Subtype.DISCUSSION
        )

    def mentioned_contacts(self) -> list[Contact]:
        if not self.can_mention:
            return []
        seen: dict[int, Contact] = {}
        for contact in [
            *self.cleaned_data.get("mentions", []),
            *self.cleaned_data.get("mention_emails", []),
        ]:
            seen.setdefault(contact.pk, contact)
        return list(seen.values())


class FollowerAddForm(forms.Form):
    """Pick an existing contact (picker or search) or create one inline with name and email."""

    contact = forms.ModelChoiceField(
        queryset=Contact.objects.select_related("user"),
        required=False,
        widget=forms.HiddenInput,
    )
    query = forms.CharField(
        required=False,
        label="Find a contact",
        widget=forms.TextInput(
            attrs={"placeholder": "Name or email", "autocomplete": "off", "type": "search"}
        ),
    )
    new_name = forms.CharField(
        max_length=200, required=False, label="Name", validators=[single_line]
    )
    new_email = forms.CharField(max_length=254, required=False, label="Email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.matches: list[Contact] = []

    def clean_new_email(self) -> str:
        email = normalize_email(self.cleaned_data.get("new_email") or "")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise ValidationError(
                    f"“{email}” is not an email address; type it as name@example.com."
                ) from None
        return email

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        if data.get("contact"):
            return data
        if data.get("new_email"):
            return data
        query = (data.get("query") or "").strip()
        if not query:
            raise ValidationError(
                "Pick a contact (search by name or email) or fill in a name and email to "
                "create one."
            )
        self.matches = contact_search(query=query, limit=20)
        exact = [c for c in self.matches if c.email == normalize_email(query)]
        if len(exact) == 1:
            data["contact"] = exact[0]
        elif len(self.matches) == 1:
            data["contact"] = self.matches[0]
        elif not self.matches:
            raise ValidationError(
                f"No contact matches “{query}”: fill in a name and email below to create one."
            )
        else:
            raise ValidationError(
                f"{len(self.matches)} contacts match “{query}”: pick one from the list."
            )
        return data


class FollowerSubtypesForm(forms.Form):
    subtypes = forms.ModelMultipleChoiceField(
        queryset=Subtype.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class PreferenceForm(forms.ModelForm):
    """The user's notification preference; the model itself refuses the inbox to customers."""

    class Meta:
        model = Contact
        fields = ["notification_preference"]
        widgets = {"notification_preference": forms.RadioSelect}
        labels = {"notification_preference": "Notifications"}
        help_texts = {
            "notification_preference": (
                "“Handle by Emails”: each message is sent to your mailbox. "
                "“Handle in MailHub”: messages wait in your MailHub inbox (internal users only)."
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["notification_preference"].choices = NotificationPreference.choices


class ProfileForm(forms.Form):
    """My Profile: the user's name, email (their contact's address) and notification choice."""

    first_name = forms.CharField(
        max_length=150, required=False, label="First name", validators=[single_line]
    )
    last_name = forms.CharField(
        max_length=150, required=False, label="Last name", validators=[single_line]
    )
    email = forms.CharField(
        max_length=254,
        label="Email",
        help_text="Your messages are sent from and notifications go to this address.",
    )
    notification_preference = forms.ChoiceField(
        choices=NotificationPreference.choices,
        widget=forms.RadioSelect,
        label="Notifications",
        help_text=PreferenceForm.Meta.help_texts["notification_preference"],
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data.get("email") or "")
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(
                f"“{email}” is not an email address; type it as name@yourcompany.com."
            ) from None
        if is_placeholder_address(email):
            raise ValidationError(
                f"{email} is a placeholder address that other mail servers refuse or cannot "
                "reach: use your real mailbox."
            )
        other = user_email_conflict(user=self.user, email=email)
        if other is not None:
            raise ValidationError(conflict_message(email=email, other=other))
        return email

    def clean_notification_preference(self) -> str:
        preference = self.cleaned_data["notification_preference"]
        if preference == NotificationPreference.INBOX and not self.user.is_staff:
            raise ValidationError(
                "Only internal users can handle notifications in MailHub; customers receive "
                "them by email."
            )
        return preference
