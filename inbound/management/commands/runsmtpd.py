"""manage.py runsmtpd: the inbound SMTP listener (aiosmtpd), in its own process."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inbound.server import inbound_controller, inbound_controller_close, sweep_forever
from inbound.tls import TLSConfigError
from mailhub.listen import parse_listen


class Command(BaseCommand):
    help = "Run the inbound SMTP listener: routes replies and alias mail, refuses the rest."
    # The listener must start (and answer 451) even while the database is down.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=settings.MAILHUB_SMTPD_LISTEN)
        parser.add_argument(
            "--sweep-interval",
            type=float,
            default=60.0,
            help="Seconds between retries of accepted mail whose processing failed.",
        )

    def handle(self, *args, listen: str, sweep_interval: float, **options):
        host, port = parse_listen(listen)
        try:
            controller = inbound_controller(host=host, port=port, poster_process=True)
        except TLSConfigError as exc:
            raise CommandError(str(exc)) from exc
        try:
            controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            controller.executor.shutdown(wait=False)
            controller.process_executor.shutdown(wait=False)
            raise CommandError(
                f"Cannot listen on {host}:{port} ({exc}): free the port or pass --listen."
            ) from exc
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        sweeper = threading.Thread(
            target=sweep_forever,
            args=(stop,),
            kwargs={"interval": sweep_interval, "executor": controller.process_executor},
            daemon=True,
        )
        sweeper.start()
        self.stdout.write(f"runsmtpd listening on {host}:{port}")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            controller.stop()
            inbound_controller_close(controller)
