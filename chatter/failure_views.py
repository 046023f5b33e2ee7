"""Views of delivery failures: envelopes, the Sending Failures dialog and the failures page.

Thin adapters over ``chatter.failures``. Every view answers 404 to a user who may not see the
message's failures (its author and staff may), so another user learns nothing. Actions are
POST-only and CSRF-checked. The dialog and its actions work as plain pages and forms; with
``chatter.js`` they run in a modal ``<dialog>`` and answer JSON (``X-Requested-With: fetch``).
"""

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import failures
from .models import Message


def _is_fetch(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _message_or_404(request: HttpRequest, message_id: int) -> Message:
    message = failures.message_for_failures(user=request.user, message_id=message_id)
    if message is None:
        raise Http404("No such message")
    return message


def _message_url(message: Message) -> str:
    record = message.record
    if record is None:
        return reverse("failures:list")
    return f"{record.get_absolute_url()}#message-{message.pk}"


def _dialog_context(request: HttpRequest, message: Message, *, errors=None, posted=None) -> dict:
    """The dialog's lines, with what the user typed and the errors when a POST was refused."""
    lines = failures.message_failure_lines(message=message)
    errors = errors or {}
    for line in lines:
        staff = request.user.is_staff
        words = failures.failure_reason_words(line)
        line.reason_words = words if staff else failures.addresses_hidden(words)
        line.reason_shown = failures.reason_for(notification=line, show_addresses=staff)
        line.error = " ".join(errors.get(f"email-{line.pk}", []))
        # Customers see who, not the other followers' addresses (staff correct them here).
        shown = line.contact.email if staff else ""
        typed = posted is not None and staff
        line.typed_email = posted.get(f"email-{line.pk}", shown) if typed else shown
        line.resend_on = posted is None or str(line.pk) in posted.getlist("resend")
    return {
        "message": message,
        "lines": lines,
        "can_edit_addresses": bool(request.user.is_staff),
        "back_url": _message_url(message),
    }


def _envelope_html(request: HttpRequest, message: Message) -> str:
    # Without the request: the top bar's context processor would cost queries per envelope.
    return render_to_string("chatter/_envelope.html", {"message": message})


@login_required
@require_GET
def failure_list(request: HttpRequest) -> HttpResponse:
    groups = failures.failure_groups(user=request.user)
    return render(request, "chatter/failures_list.html", {"groups": groups})


@login_required
@require_GET
def message_dialog(request: HttpRequest, message_id: int) -> HttpResponse:
    """The Sending Failures dialog: a fragment for the modal, or a page without JavaScript."""
    message = _message_or_404(request, message_id)
    context = _dialog_context(request, message)
    if _is_fetch(request):
        return render(request, "chatter/failures_dialog.html", context)
    return render(request, "chatter/failures_dialog_page.html", context)


def _done(request: HttpRequest, message: Message, notice: str) -> HttpResponse:
    """After an action: JSON with the new envelope for the modal, else back to the message."""
    if _is_fetch(request):
        fresh = failures.message_for_failures(user=request.user, message_id=message.pk)
        return JsonResponse(
            {
                "ok": True,
                "notice": notice,
                "message_id": message.pk,
                "envelope": _envelope_html(request, fresh) if fresh else "",
                "failure_count": failures.failure_count(user=request.user),
            }
        )
    flash.success(request, notice)
    return redirect(_message_url(message))


@login_required
@require_POST
def message_resend(request: HttpRequest, message_id: int) -> HttpResponse:
    """ "Send & close": resend to the toggled-on recipients, cancel the toggled-off ones."""
    message = _message_or_404(request, message_id)
    resend_ids = [int(v) for v in request.POST.getlist("resend") if v.isdigit()]
    addresses = {}
    if request.user.is_staff:
        # Only internal users correct a contact's address (odoo: read-only without write access).
        for key, value in request.POST.items():
            if key.startswith("email-") and key[6:].isdigit():
                addresses[int(key[6:])] = value
    try:
        result = failures.message_failures_resend(
            message=message, resend_ids=resend_ids, addresses=addresses
        )
    except ValidationError as error:
        context = _dialog_context(request, message, errors=error.message_dict, posted=request.POST)
        template = "chatter/failures_dialog.html"
        if not _is_fetch(request):
            template = "chatter/failures_dialog_page.html"
        html = render_to_string(template, context, request=request)
        if _is_fetch(request):
            return JsonResponse({"ok": False, "dialog": html}, status=400)
        return HttpResponse(html, status=400)
    parts = []
    if result.resent:
        parts.append(f"Sending again to {result.resent} recipient{'s' * (result.resent != 1)}")
    if result.canceled:
        parts.append(f"{result.canceled} ignored")
    notice = "; ".join(parts) + "." if parts else "Nothing left to send."
    return _done(request, message, notice)


@login_required
@require_POST
def message_ignore(request: HttpRequest, message_id: int) -> HttpResponse:
    """ "Ignore all": cancel every failed notification of the message; nothing is sent."""
    message = _message_or_404(request, message_id)
    count = failures.message_failures_ignore(message=message)
    notice = f"{count} delivery failure{'s' * (count != 1)} ignored."
    return _done(request, message, notice)


@login_required
@require_POST
def record_ignore(request: HttpRequest, ct: int, pk: int) -> HttpResponse:
    """ "Ignore all" of one record on the failures page (only the failures this user sees)."""
    count = failures.record_failures_ignore(user=request.user, content_type_id=ct, object_id=pk)
    if not count:
        raise Http404("No failures to ignore on this record")
    flash.success(request, f"{count} delivery failure{'s' * (count != 1)} ignored.")
    return redirect("failures:list")


@login_required
@require_GET
def envelopes(request: HttpRequest) -> JsonResponse:
    """The envelopes of the listed messages (``?ids=1,2``), for the page's live update."""
    raw = request.GET.get("ids", "")
    ids = [int(part) for part in raw.split(",") if part.strip().isdigit()]
    found = failures.envelopes_for(user=request.user, message_ids=ids)
    return JsonResponse(
        {
            "envelopes": {str(m.pk): _envelope_html(request, m) for m in found},
            "pending": any(m.envelope is not None and m.envelope.pending for m in found),
            "failure_count": failures.failure_count(user=request.user),
        }
    )
