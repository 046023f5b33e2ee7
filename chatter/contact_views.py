"""Address book pages: who bounces, who is blacklisted, and lifting a blacklist (staff).

Staff see every contact; other users only their own contact page (their address is theirs).
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from mailhub.permissions import CONTACTS_CHANGE, CONTACTS_VIEW

from . import suppression
from .models import Contact
from .selectors import user_contact_id


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
        error_messages={"required": "Say why, so the next person knows."},
    )


def _contact_or_404(request: HttpRequest, pk: int) -> Contact:
    contact = get_object_or_404(Contact, pk=pk)
    if user_contact_id(user=request.user) == contact.pk:
        return contact  # one's own address is one's own
    if not request.user.is_staff:
        raise Http404("No such contact")
    if not request.user.has_perm(CONTACTS_VIEW):
        raise PermissionDenied("Viewing contacts needs the 'view contact' permission.")
    return contact


@login_required
def contact_list(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        own = user_contact_id(user=request.user)
        if own is None:
            raise PermissionDenied("Only staff can browse the address book.")
        return redirect("contacts:detail", pk=own)
    if not request.user.has_perm(CONTACTS_VIEW):
        raise PermissionDenied("Browsing the address book needs the 'view contact' permission.")
    query = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    return render(
        request,
        "chatter/contact_list.html",
        {
            "page": suppression.contacts_page(
                query=query, state=state, page=request.GET.get("page")
            ),
            "query": query,
            "state": state if state in suppression.CONTACT_STATES else "",
        },
    )


def _render_detail(request, contact, *, unblacklist_form=None, blacklist_form=None, status=200):
    return render(
        request,
        "chatter/contact_detail.html",
        {
            "contact": contact,
            "history": suppression.contact_history(contact=contact),
            "hard_in_window": suppression.contact_hard_bounces_in_window(contact=contact),
            "limit": settings.MAILHUB_BLACKLIST_BOUNCES,
            "window_weeks": settings.MAILHUB_BLACKLIST_WINDOW_WEEKS,
            "spread_days": settings.MAILHUB_BLACKLIST_MIN_SPREAD_DAYS,
            "unblacklist_form": unblacklist_form or ReasonForm(prefix="unblacklist"),
            "blacklist_form": blacklist_form or ReasonForm(prefix="blacklist"),
            "can_manage": request.user.has_perm(CONTACTS_CHANGE),
        },
        status=status,
    )


@login_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _contact_or_404(request, pk))


@login_required
@require_POST
def contact_unblacklist(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request, pk)
    if not request.user.has_perm(CONTACTS_CHANGE):
        raise PermissionDenied("Removing an address from the blacklist needs 'change contact'.")
    form = ReasonForm(request.POST, prefix="unblacklist")
    if not form.is_valid():
        return _render_detail(request, contact, unblacklist_form=form, status=400)
    try:
        changed = suppression.contact_blacklist_remove(
            contact=contact, reason=form.cleaned_data["reason"], by=request.user
        )
    except ValidationError as exc:
        form.add_error("reason", exc)
        return _render_detail(request, contact, unblacklist_form=form, status=400)
    if changed:
        messages.success(request, f"{contact.email} was removed from the blacklist.")
    else:
        messages.info(request, f"{contact.email} was not blacklisted.")
    return redirect("contacts:detail", pk=contact.pk)


@login_required
@require_POST
def contact_blacklist(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request, pk)
    if not request.user.has_perm(CONTACTS_CHANGE):
        raise PermissionDenied("Blacklisting an address needs the 'change contact' permission.")
    form = ReasonForm(request.POST, prefix="blacklist")
    if not form.is_valid():
        return _render_detail(request, contact, blacklist_form=form, status=400)
    reason = f"Blacklisted by {request.user.get_username()}: {form.cleaned_data['reason']}"
    if suppression.contact_blacklist_add(contact_id=contact.pk, reason=reason, by=request.user):
        messages.success(request, f"{contact.email} is blacklisted: it gets no more email.")
    else:
        messages.info(request, f"{contact.email} was already blacklisted.")
    return redirect("contacts:detail", pk=contact.pk)
