"""Campaign and mailing-list pages (staff only) and the public unsubscribe endpoints.

Thin adapters: parse, call one service or selector, answer.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailhub.permissions import (
    CAMPAIGNS_ADD,
    CAMPAIGNS_CHANGE,
    CAMPAIGNS_VIEW,
    LISTS_CHANGE,
    LISTS_VIEW,
    page_permission_required,
)

from . import selectors, services
from .forms import CampaignForm, ImportForm, MailingListForm, MemberAddForm, ScheduleForm
from .models import Campaign, MailingList, UnsubscribeMethod

# --- campaigns ------------------------------------------------------------------------------------


@page_permission_required(CAMPAIGNS_VIEW)
@require_GET
def campaign_index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    return render(
        request,
        "campaigns/index.html",
        {
            "queue": selectors.campaign_queue(now=now),
            "campaigns": selectors.campaigns_all()[:200],
            "has_lists": MailingList.objects.exists(),
        },
    )


@page_permission_required(CAMPAIGNS_ADD)
@require_http_methods(["GET", "POST"])
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        campaign = services.campaign_create(
            subject=data["subject"],
            body_html=data["body_html"],
            mailing_lists=data["mailing_lists"],
            from_addr=data["from_addr"],
            created_by=request.user,
        )
        messages.success(request, "Campaign saved as a draft: Send or Schedule it when ready.")
        return redirect(campaign)
    status = 400 if request.method == "POST" else 200
    return render(request, "campaigns/new.html", {"form": form}, status=status)


def _detail(request: HttpRequest, campaign: Campaign, *, form=None, schedule_form=None, status=200):
    return render(
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "stats": selectors.campaign_stats(campaign=campaign),
            "problems": selectors.campaign_problems(campaign=campaign),
            "form": form or (CampaignForm(instance=campaign) if campaign.is_editable else None),
            "schedule_form": schedule_form or ScheduleForm(),
            "lists": list(campaign.mailing_lists.all()),
        },
        status=status,
    )


@page_permission_required(CAMPAIGNS_VIEW)
@require_GET
@csp_override(settings.MAILHUB_CSP_MAIL_PREVIEW)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, get_object_or_404(Campaign, pk=pk))


@page_permission_required(CAMPAIGNS_CHANGE)
@require_POST
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    form = CampaignForm(request.POST, instance=Campaign.objects.get(pk=pk))
    if not form.is_valid():
        return _detail(request, campaign, form=form, status=400)
    data = form.cleaned_data
    try:
        services.campaign_update(
            campaign=campaign,
            subject=data["subject"],
            body_html=data["body_html"],
            mailing_lists=data["mailing_lists"],
            from_addr=data["from_addr"],
        )
    except services.CampaignActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Draft saved.")
    return redirect(campaign)


@page_permission_required(CAMPAIGNS_CHANGE)
@require_POST
def campaign_send(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        services.campaign_send(campaign=campaign)
    except services.CampaignActionError as exc:
        messages.error(request, str(exc))
    else:
        # Tagged so the page's live progress can retire it once the campaign moves on.
        messages.success(
            request,
            "In the queue: it goes out once the campaigns before it are sent.",
            extra_tags="campaign-progress",
        )
    return redirect(campaign)


@page_permission_required(CAMPAIGNS_CHANGE)
@require_POST
def campaign_schedule(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return _detail(request, campaign, schedule_form=form, status=400)
    try:
        services.campaign_schedule(campaign=campaign, at=form.cleaned_data["at"])
    except services.CampaignActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Scheduled for {campaign.scheduled_at:%Y-%m-%d %H:%M} UTC.")
    return redirect(campaign)


@page_permission_required(CAMPAIGNS_CHANGE)
@require_POST
def campaign_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        cancelled = services.campaign_cancel(campaign=campaign)
    except services.CampaignActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Campaign cancelled; {cancelled} mails that had not left were cancelled."
        )
    return redirect(campaign)


@page_permission_required(CAMPAIGNS_VIEW)
@require_GET
@never_cache
def campaign_progress(request: HttpRequest, pk: int) -> JsonResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    return JsonResponse(selectors.campaign_stats(campaign=campaign).as_json())


# --- mailing lists --------------------------------------------------------------------------------


@page_permission_required(LISTS_VIEW)
@require_http_methods(["GET", "POST"])
def list_index(request: HttpRequest) -> HttpResponse:
    form = MailingListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        mailing_list = services.mailing_list_create(
            name=form.cleaned_data["name"], description=form.cleaned_data["description"]
        )
        messages.success(request, f"List “{mailing_list}” created: add contacts or import a CSV.")
        return redirect(mailing_list)
    return render(
        request,
        "campaigns/lists.html",
        {"lists": selectors.mailing_lists_with_counts(), "form": form},
        status=400 if request.method == "POST" else 200,
    )


def _list_detail(request: HttpRequest, mailing_list: MailingList, status: int = 200, **extra):
    members = Paginator(selectors.list_members(mailing_list=mailing_list), 100)
    context = {
        "list": mailing_list,
        "members": members.get_page(request.GET.get("page")),
        "add_form": MemberAddForm(),
        "import_form": ImportForm(),
        **extra,
    }
    return render(request, "campaigns/list_detail.html", context, status=status)


@page_permission_required(LISTS_VIEW)
@require_GET
def list_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _list_detail(request, get_object_or_404(MailingList, pk=pk))


@page_permission_required(LISTS_CHANGE)
@require_POST
def list_member_add(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _list_detail(request, mailing_list, status=400, add_form=form)
    try:
        member, created = services.list_member_add(
            mailing_list=mailing_list,
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
        )
    except ValidationError as exc:
        form.add_error("email", exc)
        return _list_detail(request, mailing_list, status=400, add_form=form)
    if created:
        messages.success(request, f"{member.contact.email} added.")
    else:
        messages.info(request, f"{member.contact.email} is already on this list.")
    return redirect(mailing_list)


@page_permission_required(LISTS_CHANGE)
@require_POST
def list_member_remove(request: HttpRequest, pk: int, member_id: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    if services.list_member_remove(mailing_list=mailing_list, member_id=member_id):
        messages.success(request, "Contact removed from the list.")
    return redirect(mailing_list)


@page_permission_required(LISTS_CHANGE)
@require_POST
def list_import(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = get_object_or_404(MailingList, pk=pk)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _list_detail(request, mailing_list, status=400, import_form=form)
    try:
        report = services.mailing_list_import_csv(
            mailing_list=mailing_list, data=form.cleaned_data["file"].read()
        )
    except ValidationError as exc:
        form.add_error("file", exc)
        return _list_detail(request, mailing_list, status=400, import_form=form)
    return _list_detail(request, mailing_list, report=report)


# --- unsubscribe (public) -------------------------------------------------------------------------

BAD_LINK = (
    "This unsubscribe link is not valid (it may have been cut when copied). Use the "
    "Unsubscribe link of the latest mail you received, or reply to it and ask to be removed."
)


@require_http_methods(["GET", "POST"])
@never_cache
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link does and changes nothing (RFC 8058 §4: mail scanners follow
    links); the form on it POSTs back here with a CSRF token."""
    if request.method == "POST":
        target = services.contact_unsubscribe(token=token, method=UnsubscribeMethod.LINK)
    else:
        target = services.unsubscribe_target(token=token)
    if target is None:
        return render(request, "campaigns/unsubscribe.html", {"error": BAD_LINK}, status=404)
    return render(
        request,
        "campaigns/unsubscribe.html",
        {"target": target, "done": request.method == "POST" or target.already},
    )


@csrf_exempt  # RFC 8058 §3.2: the mail client POSTs with no cookie and no token of ours
@require_POST
def unsubscribe_one_click(request: HttpRequest, token: str) -> HttpResponse:
    target = services.contact_unsubscribe(token=token, method=UnsubscribeMethod.ONE_CLICK)
    if target is None:
        return HttpResponse(BAD_LINK, status=404, content_type="text/plain; charset=utf-8")
    return HttpResponse(
        f"{target.contact.email} is unsubscribed.", content_type="text/plain; charset=utf-8"
    )
