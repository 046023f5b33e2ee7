"""Suppression: the bounce counter of a contact, its reset, and the blacklist.

The rule is Odoo's (odoo-behaviour §5, mass_mailing ``BLACKLIST_MAX_BOUNCED_LIMIT``): an address
is blacklisted when its counter reached the limit *and* at least that many hard bounces were
recorded in the window, the oldest and newest of them more than the minimum spread apart. The
spread keeps one bad afternoon (a mailbox server down, a burst of retries) from suppressing an
address for good. All three numbers are settings.

Blacklisted contacts get no email: ``notifications_create`` writes their notification
``canceled`` / "Blacklisted Address", and campaigns skip them.
"""

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import BounceEvent, BounceEventKind, Contact, normalize_email

AUTO_BLACKLIST_REASON = (
    "Automatically blacklisted: {count} hard bounces between {first:%Y-%m-%d} and "
    "{last:%Y-%m-%d} (limit {limit} in {weeks} weeks, spread over more than {days} days)."
)

_SUPPRESSION_FIELDS = [
    "bounce_count",
    "last_bounce_at",
    "blacklisted",
    "blacklisted_at",
    "blacklist_reason",
]


def blacklist_rule_met(
    *,
    bounce_count: int,
    bounce_times: Sequence[dt.datetime],
    limit: int,
    min_spread: dt.timedelta,
) -> bool:
    """Pure: do these hard bounces (already limited to the window) blacklist the address?"""
    if bounce_count < limit or len(bounce_times) < limit:
        return False
    return max(bounce_times) - min(bounce_times) > min_spread


def _window_start(*, contact_id: int, now: dt.datetime) -> dt.datetime:
    """Start of the counting window: 13 weeks back, or the last removal from the blacklist.

    Bounces from before a staff member lifted the blacklist must not put it straight back.
    """
    start = now - dt.timedelta(weeks=settings.MAILHUB_BLACKLIST_WINDOW_WEEKS)
    lifted = (
        BounceEvent.objects.filter(contact_id=contact_id, kind=BounceEventKind.UNBLACKLISTED)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    return max(start, lifted) if lifted else start


def contact_bounce_record(
    *,
    contact: Contact,
    hard: bool,
    policy: bool = False,
    status: str = "",
    reason: str = "",
    at: dt.datetime | None = None,
    notification_id: int | None = None,
    inbound_mail_id: int | None = None,
) -> Contact:
    """Count one bounce of a contact and blacklist the address when the rule says so.

    Only hard bounces move the counter; soft ones (mailbox full, expired) and policy blocks
    (``policy``: a spam filter refused one mail) are kept in the history. The counter is
    incremented in the database (``F``) so concurrent bounces for the same address are all
    counted. Returns the contact as stored afterwards.
    """
    at = at or timezone.now()
    with transaction.atomic():
        BounceEvent.objects.create(
            contact=contact,
            kind=BounceEventKind.HARD
            if hard
            else (BounceEventKind.POLICY if policy else BounceEventKind.SOFT),
            at=at,
            status=status[:20],
            reason=reason,
            notification_id=notification_id,
            inbound_mail_id=inbound_mail_id,
        )
        if hard:
            Contact.objects.filter(pk=contact.pk).update(
                bounce_count=F("bounce_count") + 1, last_bounce_at=at
            )
            contact_blacklist_check(contact_id=contact.pk, now=at)
    contact.refresh_from_db(
        fields=[
            "bounce_count",
            "last_bounce_at",
            "blacklisted",
            "blacklisted_at",
            "blacklist_reason",
        ]
    )
    return contact


def contact_bounce_unverified(
    *, contact: Contact, status: str = "", reason: str = "", inbound_mail_id: int | None = None
) -> BounceEvent:
    """Keep a bounce that names this address without proof: history only, never counted."""
    return BounceEvent.objects.create(
        contact=contact,
        kind=BounceEventKind.UNVERIFIED,
        at=timezone.now(),
        status=status[:20],
        reason=reason,
        inbound_mail_id=inbound_mail_id,
    )


def contact_complaint_record(
    *, contact: Contact, reason: str = "", at: dt.datetime | None = None, inbound_mail_id=None
) -> bool:
    """The recipient reported our mail as spam: mark the contact "Complained" (suppressed).

    Guarded: True only the first time; every report is kept in the history all the same.
    """
    at = at or timezone.now()
    with transaction.atomic():
        changed = Contact.objects.filter(pk=contact.pk, complained_at__isnull=True).update(
            complained_at=at
        )
        BounceEvent.objects.create(
            contact=contact,
            kind=BounceEventKind.COMPLAINED,
            at=at,
            reason=reason,
            inbound_mail_id=inbound_mail_id,
        )
    contact.refresh_from_db(fields=["complained_at"])
    return bool(changed)


def contact_blacklist_check(*, contact_id: int, now: dt.datetime | None = None) -> bool:
    """Apply the automatic blacklist rule to one contact; True when it was blacklisted now."""
    now = now or timezone.now()
    row = (
        Contact.objects.filter(pk=contact_id, blacklisted=False)
        .values_list("bounce_count", flat=True)
        .first()
    )
    if row is None:
        return False
    start = _window_start(contact_id=contact_id, now=now)
    times = list(
        BounceEvent.objects.filter(
            contact_id=contact_id, kind=BounceEventKind.HARD, at__gte=start, at__lte=now
        ).values_list("at", flat=True)
    )
    limit = settings.MAILHUB_BLACKLIST_BOUNCES
    if not blacklist_rule_met(
        bounce_count=row,
        bounce_times=times,
        limit=limit,
        min_spread=dt.timedelta(days=settings.MAILHUB_BLACKLIST_MIN_SPREAD_DAYS),
    ):
        return False
    reason = AUTO_BLACKLIST_REASON.format(
        count=len(times),
        first=min(times),
        last=max(times),
        limit=limit,
        weeks=settings.MAILHUB_BLACKLIST_WINDOW_WEEKS,
        days=settings.MAILHUB_BLACKLIST_MIN_SPREAD_DAYS,
    )
    return contact_blacklist_add(contact_id=contact_id, reason=reason, at=now)


def contact_blacklist_add(
    *,
    contact_id: int,
    reason: str,
    by: AbstractBaseUser | None = None,
    at: dt.datetime | None = None,
) -> bool:
    """Blacklist an address (guarded: False when it already was)."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = Contact.objects.filter(pk=contact_id, blacklisted=False).update(
            blacklisted=True, blacklisted_at=at, blacklist_reason=reason
        )
        if changed:
            BounceEvent.objects.create(
                contact_id=contact_id,
                kind=BounceEventKind.BLACKLISTED,
                at=at,
                reason=reason,
                by=by if by is not None and by.is_authenticated else None,
            )
    return bool(changed)


def contact_blacklist_remove(*, contact: Contact, reason: str, by: AbstractBaseUser) -> bool:
    """Lift the blacklist of an address, saying why; the bounce counter starts again at 0.

    Raises ``ValidationError`` without a reason: the next person to look at this contact must
    be able to tell why mail goes to an address that bounced. False when it was not blacklisted.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            "Say why the address may receive mail again (e.g. the customer fixed the mailbox)."
        )
    now = timezone.now()
    with transaction.atomic():
        changed = Contact.objects.filter(pk=contact.pk, blacklisted=True).update(
            blacklisted=False, blacklisted_at=None, blacklist_reason="", bounce_count=0
        )
        if changed:
            BounceEvent.objects.create(
                contact=contact,
                kind=BounceEventKind.UNBLACKLISTED,
                at=now,
                reason=reason,
                by=by,
            )
    contact.refresh_from_db(fields=_SUPPRESSION_FIELDS)
    return bool(changed)


def contact_bounce_reset(*, email: str) -> int:
    """A genuine mail came from this address: it works, its bounce counter goes back to 0.

    One UPDATE that touches nothing when the counter is already 0 (the common case), so the
    inbound gateway can call it for every mail it receives. Returns the rows changed.
    """
    address = normalize_email(email)
    if not address:
        return 0
    return Contact.objects.filter(email=address, bounce_count__gt=0).update(bounce_count=0)


# --- reads for the contact pages ----------------------------------------------------------------

CONTACT_PAGE_SIZE = 50
CONTACT_STATES = {
    "bouncing": {"bounce_count__gt": 0},
    "blacklisted": {"blacklisted": True},
    "complained": {"complained_at__isnull": False},
}


def contacts_page(*, query: str = "", state: str = "", page: object = 1):
    """One page of the address book, filtered by name/email and bounce state. Two queries."""
    from django.core.paginator import Paginator
    from django.db.models import Q

    contacts = Contact.objects.all()
    if query:
        contacts = contacts.filter(Q(name__icontains=query) | Q(email__icontains=query))
    if state in CONTACT_STATES:
        contacts = contacts.filter(**CONTACT_STATES[state])
    return Paginator(contacts.order_by("name", "id"), CONTACT_PAGE_SIZE).get_page(page)


def contact_history(*, contact: Contact, limit: int = 100) -> list[BounceEvent]:
    """The newest bounce and blacklist events of a contact, with who lifted a blacklist."""
    return list(contact.bounce_events.select_related("by", "notification__message")[:limit])


def contact_hard_bounces_in_window(*, contact: Contact, now: dt.datetime | None = None) -> int:
    """Hard bounces that count toward the automatic blacklist right now."""
    now = now or timezone.now()
    start = _window_start(contact_id=contact.pk, now=now)
    return BounceEvent.objects.filter(
        contact=contact, kind=BounceEventKind.HARD, at__gte=start, at__lte=now
    ).count()
