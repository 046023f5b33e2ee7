"""Pages of inbound mail: the stored source (staff), inline images, and remote images on demand."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from chatter.selectors import user_can_see_message
from mailhub.permissions import RAW_MAIL

from .models import InboundMail
from .selectors import inbound_body_shown

# Inline images are served only for raster types: SVG can carry script.
INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}


def _visible_mail(request: HttpRequest, pk: int) -> InboundMail:
    mail = get_object_or_404(
        InboundMail.objects.select_related("chatter_message", "chatter_message__subtype"), pk=pk
    )
    if request.user.is_staff:
        return mail
    message = mail.chatter_message
    if message is None or not user_can_see_message(user=request.user, message=message):
        raise Http404("No such mail")
    return mail


@login_required
@require_GET
def raw(request: HttpRequest, pk: int) -> HttpResponse:
    """The message exactly as received, for support (staff with the permission)."""
    if not request.user.is_staff:
        raise Http404("Only staff can download the source of a mail")
    if not request.user.has_perm(RAW_MAIL):
        raise PermissionDenied("Downloading the source of a mail needs 'view inbound mail'.")
    mail = get_object_or_404(InboundMail, pk=pk)
    response = HttpResponse(bytes(mail.raw), content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="inbound-{mail.pk}.eml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def cid(request: HttpRequest, pk: int, content_id: str) -> HttpResponse:
    """An inline image (``cid:`` in the mail's HTML), from the attachment stored with it."""
    mail = _visible_mail(request, pk)
    if mail.chatter_message is None:
        raise Http404("This mail was not posted")
    attachment = mail.chatter_message.attachments.filter(content_id=content_id).first()
    if attachment is None or attachment.content_type.lower() not in INLINE_IMAGE_TYPES:
        raise Http404("No such inline image")
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file of this image is missing from storage") from None
    response = FileResponse(handle, content_type=attachment.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
@require_GET
@csp_override(settings.MAILHUB_CSP_REMOTE_IMAGES)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One received mail: routing outcome, body (remote images on request) and attachments."""
    mail = _visible_mail(request, pk)
    show_images = request.GET.get("images") == "1"
    shown = inbound_body_shown(inbound_mail=mail, show_images=show_images)
    response = render(
        request,
        "inbound/detail.html",
        {
            "mail": mail,
            "body": shown.html,
            "blocked": shown.remote_images_blocked,
            "show_images": show_images,
            "attachments": shown.attachments,
        },
    )
    # Chromium resolves the host of every link on an http page ahead of a click: a sender's
    # per-reader host name would tell its DNS server that the mail was opened.
    response["X-DNS-Prefetch-Control"] = "off"
    return response
