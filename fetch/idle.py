"""IMAP IDLE (RFC 2177): new mail is fetched within seconds instead of at the next schedule.

One long-running watcher per active IMAP server (``manage.py runfetchidle`` runs them as
threads). A watcher holds its own IDLE connection and, when the server announces new mail,
runs the ordinary fetch (``incoming_server_fetch``), so exactly-once, routing and errors are the
scheduled run's. Lost connections are retried with a growing backoff; the schedule keeps
running underneath, so a broken watcher only costs latency.
"""

import logging
import threading
import time

from django.db import close_old_connections

from mailhub.encryption import SecretUnreadable
from mailhub.logfiles import log_event

from .mailboxes import ImapMailbox, MailboxError, server_errors, server_words
from .models import IncomingServer
from .services import incoming_server_fetch

logger = logging.getLogger("mailhub.fetch")

# RFC 2177 §3: servers may drop an IDLE after 30 minutes; re-issue it well before.
IDLE_RENEW_SECONDS = 25 * 60
# Seconds to wait before reconnecting after the n-th failure in a row.
BACKOFF_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300)
ACTIVE_CHECK_SECONDS = 60
NEW_MAIL = (b"EXISTS", b"RECENT")


def _watched(server_id: int) -> IncomingServer | None:
    return IncomingServer.objects.filter(pk=server_id, active=True).first()


def _fetch_now(server_id: int, stop: threading.Event) -> None:
    """Fetch; when a scheduled run holds the mailbox, wait for it and fetch after it."""
    for _ in range(120):
        if not incoming_server_fetch(server_id=server_id).busy or stop.wait(1):
            return


def _session(server: IncomingServer, stop: threading.Event, check_seconds: float) -> bool:
    """One IDLE connection until ``stop``, deactivation or an error. False: no IDLE offered."""
    mailbox = ImapMailbox(server)
    try:
        if not mailbox.client.has_capability("IDLE"):
            log_event(logger, "fetch.idle_unsupported", server=server.name)
            return False
        _fetch_now(server.pk, stop)  # what arrived while we were not watching
        checked = time.monotonic()
        while not stop.is_set():
            news = False
            with server_errors(server, "IDLE"):
                mailbox.client.idle()
                started = time.monotonic()
                while not (stop.is_set() or news):
                    if time.monotonic() - started > IDLE_RENEW_SECONDS:
                        break
                    if time.monotonic() - checked > ACTIVE_CHECK_SECONDS:
                        break
                    responses = mailbox.client.idle_check(timeout=check_seconds)
                    bye = [r for r in responses if r and r[0] == b"BYE"]
                    if bye:  # the server is going away (RFC 3501 §7.1.5): reconnect
                        raise MailboxError(
                            f"{server.host} closed the IDLE connection: {server_words(bye[0][1:])}"
                        )
                    news = any(len(r) > 1 and r[1] in NEW_MAIL for r in responses)
                mailbox.client.idle_done()
            if news:
                _fetch_now(server.pk, stop)
            if time.monotonic() - checked > ACTIVE_CHECK_SECONDS:
                checked = time.monotonic()
                if _watched(server.pk) is None:
                    return True
        return True
    finally:
        mailbox.close()


UNSUPPORTED = "no IDLE"


def idle_watch(*, server_id: int, stop: threading.Event, check_seconds: float = 1.0) -> str:
    """Watch one server until ``stop`` is set or the server is deactivated or deleted.

    Returns why it ended: ``UNSUPPORTED`` when the server offers no IDLE (not worth retrying).
    """
    failures = 0
    while not stop.is_set():
        server = _watched(server_id)
        if server is None or not server.is_imap:
            return "inactive"
        try:
            if not _session(server, stop, check_seconds):
                return UNSUPPORTED  # the schedule alone fetches this server
            failures = 0
        except (MailboxError, SecretUnreadable) as exc:
            failures += 1
            IncomingServer.objects.filter(pk=server_id).update(last_error=f"IDLE: {exc}"[:2000])
            log_event(
                logger, "fetch.idle_failed", level=logging.WARNING, server=server.name, error=exc
            )
        except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
            failures += 1
            logger.exception("IDLE watcher of %s failed", server.name)
        finally:
            close_old_connections()
        if failures:
            stop.wait(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS)) - 1])
    return "stopped"
