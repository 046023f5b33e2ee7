"""Writes of the demo records."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chatter.services import contact_for_user, follower_add

from .models import Record


@transaction.atomic
def record_create(
    *, model: type[Record], title: str, created_by: AbstractBaseUser | None, **fields
) -> Record:
    """Create a record; its creator follows it (odoo-behaviour §3.2: the creator at create)."""
    record = model.objects.create(title=title, created_by=created_by, **fields)
    if created_by is not None:
        follower_add(record=record, contact=contact_for_user(user=created_by), ignore_existing=True)
    return record
