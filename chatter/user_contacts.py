"""A user's email and their contact are one address (odoo: res.users delegates to res.partner).

The contact is what followers, notifications and the outbox use; the user row is what people
edit (My Profile, Admin → Users, a shell). ``user_contact_sync`` makes the contact follow the
user wherever the user is saved: the receivers below run it on every save of a user, so no edit
path can forget it. An address that already belongs to another contact is refused before the
user row is written (``user_email_conflict``), since two contacts cannot share an address.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Contact, normalize_email
from .services import contact_for_user, contact_preference_set

# Saves that touch none of these (a login writes ``last_login`` only) cost no query here.
SYNCED_FIELDS = frozenset({"email", "first_name", "last_name"})


def _touches_synced_fields(update_fields) -> bool:
    return update_fields is None or bool(SYNCED_FIELDS & set(update_fields))


def user_email_conflict(*, user: AbstractBaseUser, email: str) -> Contact | None:
    """The other contact that already has ``email``, when giving it to ``user`` would clash."""
    email = normalize_email(email)
    if not email:
        return None
    other = Contact.objects.filter(email=email).first()
    if other is None or (user.pk is not None and other.user_id == user.pk):
        return None
    if other.user_id is None and not Contact.objects.filter(user_id=user.pk).exists():
        # A user without a contact yet adopts the contact of their address on first use
        # (``contact_for_user``): no clash.
        return None
    return other


def conflict_message(*, email: str, other: Contact) -> str:
    return (
        f"{normalize_email(email)} is already the address of the contact “{other.name}”: "
        "use another address, or change that contact's address first."
    )


def user_contact_sync(*, user: AbstractBaseUser) -> Contact | None:
    """Give the user's contact the user's current email and name; None without a contact."""
    try:
        contact = user.contact  # the loaded one when the caller has it: it shows the change too
    except Contact.DoesNotExist:
        return None  # created from the user's address on first use
    changed = []
    email = normalize_email(user.email)
    if email and email != contact.email:
        contact.email = email
        changed.append("email")
    name = user.get_full_name().strip()
    if name and name != contact.name:
        contact.name = name
        changed.append("name")
    if changed:
        contact.save(update_fields=changed)
    return contact


@transaction.atomic
def user_profile_update(
    *,
    user: AbstractBaseUser,
    first_name: str,
    last_name: str,
    email: str,
    notification_preference: str,
) -> Contact:
    """My Profile: save the user's name and email (the contact follows) and their preference."""
    user.first_name, user.last_name, user.email = first_name, last_name, normalize_email(email)
    user.save(update_fields=["first_name", "last_name", "email"])
    contact = contact_for_user(user=user)
    if contact.notification_preference != notification_preference:
        contact_preference_set(contact=contact, preference=notification_preference)
    return contact


def user_pre_save(sender, instance, update_fields=None, raw=False, **kwargs) -> None:
    """Refuse, before the write, an address another contact already has."""
    if raw or instance.pk is None or not _touches_synced_fields(update_fields):
        return
    other = user_email_conflict(user=instance, email=instance.email)
    if other is not None:
        raise ValidationError(
            {"email": conflict_message(email=instance.email, other=other)}, code="taken"
        )


def user_post_save(sender, instance, created=False, update_fields=None, raw=False, **kwargs):
    if raw or created or not _touches_synced_fields(update_fields):
        return
    user_contact_sync(user=instance)
