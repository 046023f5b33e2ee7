"""Site-wide pages: home and the health endpoint."""

import socket

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from mailhub.devrelay import stored_mails
from mailhub.permissions import OPERATIONS, page_permission_required


@login_required
def home(request: HttpRequest) -> HttpResponse:
    from records.models import RECORD_TYPES

    return render(request, "home.html", {"record_types": RECORD_TYPES})


def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; say which
        return False, f"{type(exc).__name__}: {exc}"


def _check_broker() -> tuple[bool, str]:
    from mailhub.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True, "ok"
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"


def _check_listener() -> tuple[bool, str]:
    host, _, port = settings.MAILHUB_SMTPD_LISTEN.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2) as sock:
            banner = sock.recv(512).decode("ascii", "replace").strip()
        return banner.startswith("220"), banner or "no banner"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _sees_health_details(request: HttpRequest) -> bool:
    try:
        return request.user.has_perm(OPERATIONS)
    except DatabaseError:
        return False  # the session cannot be read while the database is down: treat as public


def healthz(request: HttpRequest) -> JsonResponse:
    """Up or down for anyone (the orchestrator's probe); which part failed, and why, for staff.

    The details (error texts, host names, the listener's banner) help an attacker map the
    installation, so an anonymous probe gets only the status and the code.
    """
    checks = {
        "database": _check_database(),
        "broker": _check_broker(),
        "listener": _check_listener(),
    }
    healthy = all(ok for ok, _ in checks.values())
    status = 200 if healthy else 503
    if not _sees_health_details(request):
        return JsonResponse({"status": "up" if healthy else "down"}, status=status)
    body = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}
    body["status"] = "ok" if healthy else "degraded"
    return JsonResponse(body, status=status, json_dumps_params={"indent": 1})


@page_permission_required(OPERATIONS)
def devrelay_mailbox(request: HttpRequest) -> HttpResponse:
    """What the dev relay received (operations staff): the newest stored mails."""
    mails = stored_mails(settings.VAR_DIR / "devrelay")
    return render(request, "devrelay.html", {"mails": mails})
