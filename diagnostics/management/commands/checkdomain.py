"""``manage.py checkdomain DOMAIN``: SPF, DKIM, DMARC and MX of a mail domain, one line each."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from diagnostics.dns_checks import (
    DnsClient,
    Verdict,
    default_listener_host,
    default_relay_host,
    domain_check,
)


class Command(BaseCommand):
    help = "Check the SPF, DKIM, DMARC and MX records of a domain; exits 1 when one fails."
    # One line per DNS check: the system checks' warnings would drown them (run `check`).
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("domain")
        parser.add_argument(
            "--selector",
            default=None,
            help="DKIM selector (default: MAILHUB_DKIM_SELECTOR).",
        )
        parser.add_argument(
            "--relay",
            default=None,
            help="Relay host or IP that SPF must authorize (default: first active mail server, "
            "else MAILHUB_RELAY_HOST).",
        )
        parser.add_argument(
            "--nameserver",
            action="append",
            default=None,
            help="HOST or HOST:PORT to ask instead of MAILHUB_DNS_NAMESERVERS (repeatable).",
        )
        parser.add_argument(
            "--listener-host",
            default=None,
            help="Host name (or IP) the MX must point to (default: MAILHUB_INBOUND_HOSTNAME).",
        )
        parser.add_argument("--timeout", type=float, default=None, help="Seconds per lookup.")

    def handle(self, *args, **options) -> None:
        try:
            client = DnsClient(nameservers=options["nameserver"], timeout=options["timeout"])
            report = domain_check(
                domain=options["domain"],
                selector=options["selector"] or settings.MAILHUB_DKIM_SELECTOR,
                relay=options["relay"] if options["relay"] is not None else default_relay_host(),
                listener_host=options["listener_host"]
                if options["listener_host"] is not None
                else default_listener_host(),
                client=client,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        styles = {
            Verdict.OK: self.style.SUCCESS,
            Verdict.WARNING: self.style.WARNING,
            Verdict.FAIL: self.style.ERROR,
            Verdict.ERROR: self.style.ERROR,
        }
        for result in report.results:
            found = " ; ".join(result.records) if result.records else "(none)"
            verdict = styles[result.verdict](f"{result.verdict.value.upper():<7}")
            self.stdout.write(f"{result.name:<6}{verdict} {result.message} | record: {found}")
        if report.failed:
            names = ", ".join(r.name for r in report.failed)
            raise CommandError(
                f"{len(report.failed)} of {len(report.results)} checks failed for "
                f"{report.domain} ({names}): fix the records above (asked {report.nameservers})."
            )
