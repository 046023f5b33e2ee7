"""manage.py fetchmail: fetch the incoming mail servers now, as their schedules would.

manage.py fetchmail                        # every active server
manage.py fetchmail --server "Support"     # one server, by name or id, active or not
manage.py fetchmail --server 3 --test      # Test & Confirm only: log in and open the folder
"""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from fetch import services
from fetch.models import IncomingServer


class Command(BaseCommand):
    help = "Fetch mail from the incoming mail servers (Admin → Incoming mail servers)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--server", help="An incoming server's name or id (default: all active)"
        )
        parser.add_argument("--test", action="store_true", help="Only log in and open the folder")

    def handle(self, *args, server=None, test=False, **options) -> None:
        if server:
            match = Q(name=server) | (Q(pk=int(server)) if server.isdigit() else Q())
            servers = list(IncomingServer.objects.filter(match))
            if not servers:
                raise CommandError(
                    f"No incoming server named '{server}' (Admin → Incoming mail servers)."
                )
        else:
            servers = list(IncomingServer.objects.filter(active=True))
            if not servers:
                self.stdout.write("No active incoming server: nothing to fetch.")
                return
        failed = []
        for row in servers:
            if test:
                ok, words = services.incoming_server_test(server=row)
                line = f"{row.name}: {'confirmed' if ok else 'failed'}: {words}"
            else:
                report = services.incoming_server_fetch(server_id=row.pk)
                ok = not report.error
                line = f"{row.name}: " + (
                    report.error
                    or ("another run is fetching it" if report.busy else "")
                    or f"{report.fetched} fetched, {report.acknowledged} acknowledged"
                )
            self.stdout.write(line if ok else self.style.ERROR(line))
            if not ok:
                failed.append(row.name)
        if failed:
            raise CommandError(f"Fetching failed for {', '.join(failed)} (see above).")
