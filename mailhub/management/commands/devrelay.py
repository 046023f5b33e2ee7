"""manage.py devrelay: a local SMTP relay for development that can play delivery failures."""

import signal
import threading

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailhub.devrelay import DevRelayHandler
from mailhub.listen import parse_listen


class Command(BaseCommand):
    help = (
        "Run the development relay: accepts outgoing mail, stores it under var/devrelay/ (shown "
        "at /devrelay/), answers 550 for the reject pattern and 451 for the defer pattern."
    )

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=settings.MAILHUB_DEVRELAY_LISTEN)
        parser.add_argument(
            "--reject",
            default=settings.MAILHUB_DEVRELAY_REJECT,
            help="Comma-separated recipient patterns answered 550 5.1.1.",
        )
        parser.add_argument(
            "--defer",
            default=settings.MAILHUB_DEVRELAY_DEFER,
            help="Comma-separated recipient patterns answered 451 4.3.0.",
        )

    def handle(self, *args, listen: str, reject: str, defer: str, **options):
        host, port = parse_listen(listen)
        handler = DevRelayHandler(
            reject=reject, defer=defer, store_dir=settings.VAR_DIR / "devrelay", keep=1000
        )
        controller = Controller(handler, hostname=host, port=port, server_hostname="devrelay")
        try:
            controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise CommandError(
                f"Cannot listen on {host}:{port} ({exc}): free the port or pass --listen."
            ) from exc
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(
            f"devrelay listening on {host}:{port} (reject {reject or '-'}, defer {defer or '-'})"
        )
        try:
            stop.wait()
        finally:
            controller.stop()
            self.stdout.write("devrelay stopped")
