"""manage.py sendtestmail: send a crafted alias mail or reply to the inbound listener.

Lets an operator test routing end to end: what the listener answers is printed, and a refusal
exits non-zero with the listener's words.
"""

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailhub.listen import parse_listen


class Command(BaseCommand):
    help = "Send a test mail (alias mail, or a reply to a record's thread) to the inbound listener."

    def add_arguments(self, parser):
        domain = settings.MAILHUB_MAIL_DOMAIN
        parser.add_argument("--server", default=settings.MAILHUB_SMTPD_LISTEN, help="HOST:PORT")
        parser.add_argument("--from", dest="sender", default="Test Customer <test@customer.test>")
        parser.add_argument("--to", default=f"support@{domain}", help="recipient address")
        parser.add_argument("--subject", default="Test mail from sendtestmail")
        parser.add_argument("--body", default="Hello, this is a test of the inbound gateway.")
        parser.add_argument(
            "--reply-to-record",
            metavar="TYPE:ID",
            help="reply to the newest message of a record, e.g. ticket:1 (sent to the catchall)",
        )
        parser.add_argument("--in-reply-to", help="a Message-ID to answer, e.g. '<abc@domain>'")
        parser.add_argument(
            "--auto", action="store_true", help="mark it Auto-Submitted: auto-replied"
        )

    def handle(self, *args, **opts):
        host, port = parse_listen(opts["server"])
        msg = EmailMessage()
        msg["From"] = opts["sender"]
        msg["To"] = opts["to"]
        msg["Subject"] = opts["subject"]
        msg["Message-ID"] = make_msgid(domain="sendtestmail.invalid")
        parent = opts["in_reply_to"] or self._record_message_id(opts["reply_to_record"])
        if parent:
            msg["In-Reply-To"] = parent
            msg["References"] = parent
            if opts["reply_to_record"] and opts["to"] == f"support@{settings.MAILHUB_MAIL_DOMAIN}":
                msg.replace_header("To", f"catchall@{settings.MAILHUB_MAIL_DOMAIN}")
        if opts["auto"]:
            msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(opts["body"])
        try:
            with smtplib.SMTP(host, port, timeout=30) as client:
                client.ehlo("sendtestmail")
                client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise CommandError(f"Refused at RCPT: {code} {text.decode()}") from None
        except smtplib.SMTPResponseException as exc:
            raise CommandError(
                f"Refused: {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
            ) from None
        except OSError as exc:
            raise CommandError(
                f"Cannot reach the listener at {host}:{port} ({exc}): is `manage.py runsmtpd` "
                "running? Pass --server HOST:PORT otherwise."
            ) from None
        self.stdout.write(f"Accepted: {msg['Message-ID']} from {msg['From']} to {msg['To']}")

    def _record_message_id(self, spec: str | None) -> str:
        if not spec:
            return ""
        from django.contrib.contenttypes.models import ContentType

        from chatter.models import Message
        from records.models import RECORD_TYPES

        slug, _, pk = spec.partition(":")
        model = RECORD_TYPES.get(slug.lower())
        if model is None or not pk.isdigit():
            raise CommandError(
                f"Unknown record {spec!r}: use TYPE:ID with TYPE one of {', '.join(RECORD_TYPES)}."
            )
        record = model.objects.filter(pk=int(pk)).first()
        if record is None:
            raise CommandError(f"No {slug} #{pk}: pick an existing record id.")
        message_id = (
            Message.objects.filter(
                content_type=ContentType.objects.get_for_model(model), object_id=record.pk
            )
            .order_by("-id")
            .values_list("message_id", flat=True)
            .first()
        )
        if not message_id:
            raise CommandError(f"{record} has no message to reply to: post one first.")
        return message_id
