"""The daily sending limit, reserved atomically before sending (odoo-behaviour §8).

Every mail leaving counts, notifications included; inbox notifications never reach the outbox.
"""

import datetime as dt

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from .models import DailyQuota


def quota_reserve(*, wanted: int, day: dt.date | None = None) -> int:
    """Reserve up to ``wanted`` sends from today's quota; returns how many were granted.

    A guarded ``UPDATE ... SET used = used + k WHERE used <= limit - k``: whatever the number of
    workers, the sum of grants never passes the limit. A limit of 0 means no limit.
    """
    limit = settings.MAILHUB_DAILY_QUOTA
    day = day or timezone.now().astimezone(dt.UTC).date()
    if limit <= 0:
        DailyQuota.objects.bulk_create([DailyQuota(day=day)], ignore_conflicts=True)
        DailyQuota.objects.filter(day=day).update(used=F("used") + wanted)
        return wanted
    while True:
        used = DailyQuota.objects.filter(day=day).values_list("used", flat=True).first()
        if used is None:
            DailyQuota.objects.bulk_create([DailyQuota(day=day)], ignore_conflicts=True)
            continue
        grant = min(wanted, limit - used)
        if grant <= 0:
            return 0
        if DailyQuota.objects.filter(day=day, used__lte=limit - grant).update(
            used=F("used") + grant
        ):
            return grant


def quota_release(*, count: int, day: dt.date) -> None:
    """Give back reserved sends that did not leave (refused, deferred, not attempted)."""
    if count > 0:
        DailyQuota.objects.filter(day=day, used__gte=count).update(used=F("used") - count)


def quota_reason() -> str:
    return (
        f"Daily limit reached: {settings.MAILHUB_DAILY_QUOTA} emails were already sent today "
        "(UTC). Retry tomorrow (Settings → Technical → Emails → Retry) or raise "
        "MAILHUB_DAILY_QUOTA."
    )


def tomorrow() -> dt.datetime:
    today = timezone.now().astimezone(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)
