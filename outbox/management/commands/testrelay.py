"""manage.py testrelay: check the outgoing relay the way the queue uses it, optionally send one.

manage.py testrelay                         # the relay from the environment (or --server)
manage.py testrelay --server "Main relay"   # a MailServer row, by name or id
manage.py testrelay --to me@example.com --send
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from outbox.models import MailRecipient
from outbox.relay import RelayConnectionError, connection_test, env_relay, server_config
from outbox.selectors import mail_server_get
from outbox.services import MailDraft, mails_enqueue, mails_send


class Command(BaseCommand):
    help = "Test the outgoing SMTP relay (EHLO, MAIL FROM, RCPT TO; no DATA unless --send)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--server", help="A mail server's name or id (default: environment)")
        parser.add_argument("--from", dest="sender", default="", help="MAIL FROM address")
        parser.add_argument("--to", default="noreply@example.com", help="RCPT TO address")
        parser.add_argument(
            "--send", action="store_true", help="Also send a test mail to --to through the outbox"
        )

    def handle(self, *args, server=None, sender="", to="", send=False, **options) -> None:
        config = env_relay()
        if server:
            row = mail_server_get(name_or_id=server)
            if row is None:
                raise CommandError(
                    f"No mail server named '{server}': list them in Admin → Mail servers."
                )
            config = server_config(row)
        sender = sender or settings.MAILHUB_DEFAULT_FROM
        self.stdout.write(f"Relay {config.host}:{config.port} ({config.security})")
        try:
            steps = connection_test(config, sender=sender, recipient=to)
        except RelayConnectionError as exc:
            hint = (
                "the relay answered but refused: check the addresses and what it allows"
                if exc.code is not None
                else "check MAILHUB_RELAY_HOST/PORT/SECURITY/USER/PASSWORD (or the server row)"
            )
            raise CommandError(
                f"Connection Test Failed: {exc.error_class}: {exc.text} ({hint})."
            ) from exc
        for step, code, text in steps:
            self.stdout.write(f"  {step:<9} {code} {text}")
        self.stdout.write(self.style.SUCCESS("Connection Test Successful!"))
        if not send:
            return
        with transaction.atomic():
            (mail,) = mails_enqueue(
                drafts=[
                    MailDraft(
                        to=to,
                        subject="MailHub relay test",
                        body_html="<p>This is a test mail from MailHub (manage.py testrelay).</p>",
                        body_text="This is a test mail from MailHub (manage.py testrelay).",
                    )
                ],
                system=True,
            )
        mails_send(mail_ids=[mail.pk])
        recipient = MailRecipient.objects.get(mail=mail)
        line = f"{mail.message_id} to {to}: {recipient.status} {recipient.code or ''} "
        line += recipient.response
        if recipient.status != "sent":
            raise CommandError(f"Test mail not delivered: {line.strip()}")
        self.stdout.write(self.style.SUCCESS(f"Sent {line.strip()}"))
