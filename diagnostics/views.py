"""Operations pages (staff only): dashboard, domain health, support export."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from mailhub.permissions import OPERATIONS, SUPPORT, page_permission_required

from . import charts, selectors, support
from .dns_checks import DnsClient, default_listener_host, default_relay_host, domain_check


@page_permission_required(OPERATIONS)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    per_day = selectors.mail_per_day(days=30)
    used, limit = selectors.quota_today(per_day)
    bounced, sent, rate = selectors.bounce_rate(per_day)
    complaints, complaint_rate = selectors.complaint_rate(days=30, sent=sent)
    states = selectors.queue_depth()
    context = {
        "mail_chart": charts.mail_per_day_chart(per_day),
        "quota_chart": charts.quota_chart(used=used, limit=limit),
        "queue_chart": charts.queue_depth_chart(states),
        "bounce_chart": charts.bounce_rate_chart(bounced=bounced, sent=sent, rate=rate),
        "complaint_chart": charts.complaint_rate_chart(
            complaints=complaints, sent=sent, rate=complaint_rate
        ),
        "per_day": per_day,
        "states": states,
        "tasks": selectors.scheduled_tasks(now=now),
        "now": now,
        "domains": selectors.alias_domains(),
    }
    return render(request, "diagnostics/dashboard.html", context)


@page_permission_required(OPERATIONS)
def domain_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from inbound.models import AliasDomain

    domain = get_object_or_404(AliasDomain, pk=pk)
    selector = request.GET.get("selector", "").strip() or settings.MAILHUB_DKIM_SELECTOR
    relay = request.GET.get("relay", "").strip() or default_relay_host()
    listener = request.GET.get("listener_host", "").strip() or default_listener_host()
    error = ""
    report = None
    try:
        report = domain_check(
            domain=domain.domain,
            selector=selector,
            relay=relay,
            listener_host=listener,
            client=DnsClient(),
        )
    except ValueError as exc:  # a bad MAILHUB_DNS_NAMESERVERS entry, an invalid domain
        error = str(exc)
    context = {
        "domain": domain,
        "report": report,
        "error": error,
        "selector": selector,
        "relay": relay,
        "listener_host": listener,
    }
    return render(request, "diagnostics/domain.html", context)


@page_permission_required(SUPPORT)
def support_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    results = support.cases_for_message_id(query) if query else []
    return render(request, "diagnostics/support_search.html", {"query": query, "results": results})


@page_permission_required(SUPPORT)
def support_detail(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    case = support.support_case(kind=kind, pk=pk)
    return render(request, "diagnostics/support_detail.html", {"case": case})


@page_permission_required(SUPPORT)
def support_eml(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    data, filename = support.case_eml(support.support_case(kind=kind, pk=pk))
    response = HttpResponse(data, content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@page_permission_required(SUPPORT)
def support_bundle(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    text = support.case_bundle(support.support_case(kind=kind, pk=pk))
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="support-{kind}-{pk}.txt"'
    return response
