"""manage.py runfetchidle: one IMAP IDLE watcher thread per active IMAP incoming server.

Servers added, activated or deactivated are picked up within a minute. With no incoming server
it only waits, so ``./run`` can start it on every install.
"""

import signal
import threading

from django.core.management.base import BaseCommand

from fetch.idle import UNSUPPORTED, idle_watch
from fetch.models import IncomingServer, Protocol

RESCAN_SECONDS = 60


class Command(BaseCommand):
    help = "Watch active IMAP incoming servers with IDLE and fetch new mail within seconds."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        watchers: dict[int, threading.Thread] = {}
        ended: dict[int, str] = {}

        def watch(pk: int) -> None:
            ended[pk] = idle_watch(server_id=pk, stop=stop)

        self.stdout.write("Watching incoming IMAP servers with IDLE (Ctrl-C to stop).")
        while not stop.is_set():
            ids = (
                IncomingServer.objects.filter(active=True)
                .exclude(protocol=Protocol.POP3_SSL)
                .values_list("pk", flat=True)
            )
            for pk in ids:
                if ended.get(pk) == UNSUPPORTED:
                    continue  # its schedule fetches it
                if pk not in watchers or not watchers[pk].is_alive():
                    ended.pop(pk, None)
                    watchers[pk] = threading.Thread(
                        target=watch,
                        args=(pk,),
                        name=f"idle-{pk}",
                        daemon=True,
                    )
                    watchers[pk].start()
            stop.wait(RESCAN_SECONDS)
        for thread in watchers.values():
            thread.join(timeout=5)
