"""Mail that is written whole before it is queued: delivery reports (RFC 3464 DSNs).

A DSN is a ``multipart/report`` the outbox's own builder does not make, and it must leave with
a null envelope sender so nothing ever bounces back to it (RFC 5321 §4.5.5). The outbox sends
the stored bytes as they are (with the recipient's ``To:`` in front) and ``MAIL FROM:<>``.
"""

from django.db import transaction

from .models import MailRecipient, OutgoingMail
from .services import REPORT_SENDER_LOCAL, _dispatch_urgent, is_report


def report_enqueue(
    *, to: str, from_addr: str, subject: str, message_id: str, mime: bytes
) -> OutgoingMail:
    """Queue a prebuilt report (``mime`` has every header but To) to send right away."""
    if not is_report(from_addr):
        raise ValueError(f"a report is sent from {REPORT_SENDER_LOCAL}@, not {from_addr}")
    mail = OutgoingMail.objects.create(
        message_id=message_id,
        from_addr=from_addr,
        subject=subject,
        system=True,
        urgent=True,
        mime=mime,
    )
    MailRecipient.objects.create(mail=mail, address=to)
    transaction.on_commit(lambda: _dispatch_urgent([mail.pk]))
    return mail
