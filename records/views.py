"""List and detail pages of the demo records (the detail's right-hand side is the chatter)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chatter.selectors import record_visible_to, records_visible_qs
from chatter.views import chatter_context

from .forms import record_form_class
from .models import RECORD_TYPES
from .services import record_create


def _model(kind: str):
    try:
        return RECORD_TYPES[kind]
    except KeyError:
        raise Http404("No such record type") from None


def _list_context(request: HttpRequest, kind: str, form=None) -> dict:
    model = _model(kind)
    records = records_visible_qs(user=request.user, model=model).select_related("created_by")
    return {
        "kind": kind,
        "verbose_name": model._meta.verbose_name,
        "records": records[:200],
        "form": form or (record_form_class(model)() if request.user.is_staff else None),
    }


@login_required
def record_list(request: HttpRequest, kind: str) -> HttpResponse:
    return render(request, "records/list.html", _list_context(request, kind))


@login_required
@require_POST
def record_new(request: HttpRequest, kind: str) -> HttpResponse:
    model = _model(kind)
    if not request.user.is_staff:
        raise Http404("Only internal users create records")
    form = record_form_class(model)(request.POST)
    if not form.is_valid():
        return render(request, "records/list.html", _list_context(request, kind, form), status=400)
    fields = dict(form.cleaned_data)
    title = fields.pop("title")
    record = record_create(model=model, title=title, created_by=request.user, **fields)
    messages.success(request, f"{record} created; you follow it.")
    return redirect(record.get_absolute_url())


@login_required
def record_detail(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    record = _model(kind).objects.filter(pk=pk).select_related("created_by").first()
    if record is None or not record_visible_to(user=request.user, record=record):
        # Same answer for "does not exist" and "not yours": nothing leaks.
        raise Http404("No such record")
    context = {"kind": kind, "record": record, **chatter_context(request, record)}
    return render(request, "records/detail.html", context)
