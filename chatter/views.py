"""Chatter pages and actions (thin adapters over services and selectors).

The chatter of any record is addressed by ``<content type id>/<object id>``; every view refuses
with 404 a record the user may not see, so its existence does not leak.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from . import failures, live, selectors, services
from .content import text_to_html
from .forms import (
    ComposerForm,
    FollowerAddForm,
    FollowerSubtypesForm,
    PreferenceForm,
    ProfileForm,
)
from .models import Attachment, Follower
from .user_contacts import user_profile_update


def _record_or_404(request: HttpRequest, ct: int, pk: int) -> Model:
    record = selectors.chatter_record_get(content_type_id=ct, object_id=pk)
    if record is None or not selectors.record_visible_to(user=request.user, record=record):
        raise Http404("No such record")
    return record


def _back_to(record: Model, anchor: str = "chatter") -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{record.get_absolute_url()}#{anchor}")


def chatter_context(
    request: HttpRequest,
    record: Model,
    *,
    composer: ComposerForm | None = None,
    follower_form: FollowerAddForm | None = None,
) -> dict:
    """What ``chatter/_chatter.html`` needs to show a record's chatter to this user."""
    user = request.user
    staff = bool(user.is_staff)
    followers = selectors.followers_of(record=record)
    contact_id = selectors.user_contact_id(user=user)
    subtypes = selectors.subtypes_all()
    thread = selectors.thread_page(
        record=record, page=request.GET.get("page"), include_internal=staff
    )
    # Evaluate the page once, then give each message its delivery envelope (no extra query).
    thread.object_list = list(thread.object_list)
    failures.envelopes_attach(messages=thread.object_list, user=user)
    return {
        "record": record,
        "chatter_ct": _content_type_id(record),
        "thread": thread,
        "followers": followers,
        "is_following": any(f.contact_id == contact_id for f in followers),
        "subtypes": subtypes,
        "public_subtype_ids": {s.pk for s in subtypes if not s.internal},
        "composer": composer or ComposerForm(can_log_note=staff, can_mention=staff),
        "follower_form": follower_form or FollowerAddForm(),
        "can_manage_followers": staff,
        "can_log_note": staff,
    }


def _content_type_id(record: Model) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(record).pk


def _render_record_page(request: HttpRequest, record: Model, **forms) -> HttpResponse:
    """Show the record's page again with a form's errors (and what the user typed)."""
    template = getattr(record, "chatter_page_template", "chatter/record_page.html")
    context = {"record": record, **chatter_context(request, record, **forms)}
    return render(request, template, context, status=400)


@login_required
@require_POST
def message_post(request: HttpRequest, ct: int, pk: int) -> HttpResponse:
    record = _record_or_404(request, ct, pk)
    staff = request.user.is_staff
    form = ComposerForm(request.POST, request.FILES, can_log_note=staff, can_mention=staff)
    if not form.is_valid():
        return _render_record_page(request, record, composer=form)
    with transaction.atomic():
        created = [services.contact_get_or_create(email=email) for email in form.new_addresses]
        message = services.message_post(
            record=record,
            author=services.contact_for_user(user=request.user),
            body=text_to_html(form.cleaned_data["body"]),
            subtype_code=form.subtype_code,
            subject=form.cleaned_data["subject"].strip(),
            mentions=[*form.mentioned_contacts(), *created],
            attachments=form.cleaned_data["attachments"],
        )
    return _back_to(record, f"message-{message.pk}")


def _ids(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip().isdigit()][
        : failures.ENVELOPES_MAX
    ]


@login_required
@require_GET
def thread_live(request: HttpRequest, ct: int, pk: int) -> JsonResponse:
    """The open record page's live update: new messages, changed envelopes, the counters.

    ``?after=<newest message id on the page>`` (absent on older thread pages: no new messages
    there) and ``?ids=<ids of the messages with an envelope>``. Rendered without the request:
    the top bar's context processors would cost queries per message.
    """
    record = _record_or_404(request, ct, pk)
    after = request.GET.get("after", "")
    updates = live.thread_updates(
        user=request.user,
        record=record,
        after_id=int(after) if after.isdigit() else None,
        envelope_ids=_ids(request.GET.get("ids", "")),
    )
    user = request.user
    return JsonResponse(
        {
            "messages": [
                {
                    "id": m.pk,
                    "html": render_to_string("chatter/_message.html", {"message": m, "user": user}),
                }
                for m in updates.messages
            ],
            "envelopes": {
                str(m.pk): render_to_string("chatter/_envelope.html", {"message": m})
                for m in updates.envelopes
            },
            "failure_count": updates.counters["failure_count"],
            "inbox_unread": updates.counters["inbox_unread"],
        }
    )


@login_required
@require_POST
def follower_add(request: HttpRequest, ct: int, pk: int) -> HttpResponse:
    record = _record_or_404(request, ct, pk)
    if not request.user.is_staff:
        raise Http404("Only internal users manage followers")
    form = FollowerAddForm(request.POST)
    if not form.is_valid():
        return _render_record_page(request, record, follower_form=form)
    contact = form.cleaned_data.get("contact")
    try:
        with transaction.atomic():
            if contact is None:
                contact = services.contact_get_or_create(
                    email=form.cleaned_data["new_email"], name=form.cleaned_data["new_name"]
                )
            services.follower_add(record=record, contact=contact)
    except services.AlreadyFollowing:
        form.add_error(None, f"{contact.name} <{contact.email}> already follows this record.")
        return _render_record_page(request, record, follower_form=form)
    except ValidationError as exc:
        form.add_error(None, exc)
        return _render_record_page(request, record, follower_form=form)
    messages.success(request, f"{contact.name} now follows this record.")
    return _back_to(record, "followers")


def _follower_or_404(request: HttpRequest, ct: int, pk: int, follower_id: int):
    record = _record_or_404(request, ct, pk)
    if not request.user.is_staff:
        raise Http404("Only internal users manage followers")
    follower = get_object_or_404(
        Follower.objects.select_related("contact", "contact__user"),
        pk=follower_id,
        content_type_id=ct,
        object_id=record.pk,
    )
    return record, follower


@login_required
@require_POST
def follower_remove(request: HttpRequest, ct: int, pk: int, follower_id: int) -> HttpResponse:
    record, follower = _follower_or_404(request, ct, pk, follower_id)
    services.follower_remove(record=record, contact=follower.contact)
    messages.success(request, f"{follower.contact.name} no longer follows this record.")
    return _back_to(record, "followers")


@login_required
@require_POST
def follower_subtypes(request: HttpRequest, ct: int, pk: int, follower_id: int) -> HttpResponse:
    record, follower = _follower_or_404(request, ct, pk, follower_id)
    form = FollowerSubtypesForm(request.POST)
    if form.is_valid():
        try:
            services.follower_subtypes_set(
                follower=follower, subtypes=list(form.cleaned_data["subtypes"])
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            names = ", ".join(s.name for s in form.cleaned_data["subtypes"]) or "nothing"
            messages.success(request, f"{follower.contact.name} now follows: {names}.")
    else:
        messages.error(request, "Choose the kinds of messages to follow from the list.")
    return _back_to(record, "followers")


@login_required
@require_POST
def follow_toggle(request: HttpRequest, ct: int, pk: int) -> HttpResponse:
    """Follow / unfollow a record oneself (visible records only, so staff in practice)."""
    record = _record_or_404(request, ct, pk)
    contact = services.contact_for_user(user=request.user)
    if request.POST.get("follow") == "1":
        services.follower_add(record=record, contact=contact, ignore_existing=True)
        messages.success(request, "You follow this record.")
        return _back_to(record, "followers")
    services.follower_remove(record=record, contact=contact)
    messages.success(request, "You no longer follow this record.")
    if not selectors.record_visible_to(user=request.user, record=record):
        return redirect("home")
    return _back_to(record, "followers")


@login_required
@require_GET
def contact_search(request: HttpRequest) -> JsonResponse:
    """The contact picker's suggestions (internal users only: it reads the address book)."""
    if not request.user.is_staff:
        raise Http404("Only internal users search the address book")
    contacts = selectors.contact_search(query=request.GET.get("q", ""), limit=10)
    return JsonResponse(
        {"results": [{"id": c.pk, "name": c.name, "email": c.email} for c in contacts]}
    )


@login_required
def attachment(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = get_object_or_404(
        Attachment.objects.select_related("message", "message__subtype"), pk=pk
    )
    if not selectors.user_can_see_message(user=request.user, message=attachment.message):
        raise Http404("No such attachment")
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file of this attachment is missing from storage") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.filename,
        content_type=attachment.content_type or "application/octet-stream",
    )
    # Never rendered by the browser as a page, whatever the uploader claimed it is.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    show_all = request.GET.get("show") == "all"
    page = selectors.inbox_page(
        user=request.user, page=request.GET.get("page"), unread_only=not show_all
    )
    return render(request, "chatter/inbox.html", {"page": page, "show_all": show_all})


@login_required
@require_POST
def inbox_mark_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    contact = services.contact_for_user(user=request.user)
    services.notification_mark_read(notification_id=notification_id, contact=contact)
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("chatter:inbox")
    return redirect(target)


@login_required
@require_POST
def inbox_mark_all_read(request: HttpRequest) -> HttpResponse:
    contact = services.contact_for_user(user=request.user)
    count = services.notifications_mark_all_read(contact=contact)
    messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect("chatter:inbox")


@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    contact = services.contact_for_user(user=request.user)
    form = PreferenceForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        services.contact_preference_set(
            contact=contact, preference=form.cleaned_data["notification_preference"]
        )
        messages.success(request, "Your notification preference is saved.")
        return redirect("chatter:preferences")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "chatter/preferences.html", {"form": form, "contact": contact}, status=status
    )


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """My Profile: name, email (the contact's address too) and the notification preference."""
    user = request.user
    contact = services.contact_for_user(user=user)
    initial = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "notification_preference": contact.notification_preference,
    }
    form = ProfileForm(request.POST or None, initial=initial, user=user)
    if request.method == "POST" and form.is_valid():
        user_profile_update(user=user, **form.cleaned_data)
        messages.success(request, "Your profile is saved.")
        return redirect("chatter:profile")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "chatter/profile.html", {"form": form, "contact": contact}, status=status
    )
