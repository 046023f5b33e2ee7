"""The answer to a login refused for brute force (django-axes counts, this page says when).

django-axes locks an account, or a client address, after ``AXES_FAILURE_LIMIT`` failed logins
within ``AXES_COOLOFF_TIME``; the lock lifts one cool-off after the latest failure it counted.
The page says when that is, and ``Retry-After`` says it to programs (RFC 6585 §4: a 429 MAY
include it; RFC 9110 §10.2.3 gives its forms, here delay-seconds).
"""

from datetime import datetime

from axes.helpers import get_client_ip_address, get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def lockout_retry_at(*, request: HttpRequest, username: str, ip_address: str) -> datetime:
    """When the lock on this username or address lifts: a cool-off after its latest failure."""
    cool_off = get_cool_off(request)
    latest = AccessAttempt.objects.filter(
        Q(username=username) | Q(ip_address=ip_address)
    ).aggregate(latest=Max("attempt_time"))["latest"]
    return (latest or timezone.now()) + cool_off


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: a 429 page with the time to retry, for both login forms."""
    username = get_client_username(request, credentials) or ""
    ip_address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    retry_at = lockout_retry_at(request=request, username=username, ip_address=ip_address)
    wait = max(0, int((retry_at - timezone.now()).total_seconds()))
    response = render(
        request,
        "registration/lockout.html",
        {"retry_at": retry_at, "minutes": -(-wait // 60)},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
