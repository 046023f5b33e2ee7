"""Recording each recipient's answer: a journal line at once, the database rows in bulk.

See ``OutcomeWriter`` and docs/adr/0002-outbox-claims-leases-and-journal.md.
"""

import json
import logging
import os
import socket
import time

from django.conf import settings
from django.db import connection

from mailhub.logfiles import log_event

from .models import MailAttempt, MailRecipient, RecipientStatus

logger = logging.getLogger("mailhub.outbox")


class OutcomeWriter:
    """Records each recipient's outcome the moment the relay answers, cheaply and crash-safely.

    A row UPDATE per answer costs a database round trip (0.3-0.7 ms here), several times the SMTP
    transaction itself. Instead each outcome is appended to a per-claim journal file (one
    ``write()``: the kernel keeps it when the process is SIGKILLed) and the rows are updated in
    bulk every ``FLUSH_ROWS`` answers or ``FLUSH_SECONDS``. A worker that dies leaves its journal;
    the next batch started on the same host replays it before sending anything, so only the
    mail on the wire at the kill can go twice. Journals live in ``MAILHUB_VAR_DIR/outbox-journal``
    (keep it on a local disk shared by the workers of one host; see docs/adr/0002).
    """

    FLUSH_ROWS = 500
    FLUSH_SECONDS = 1.0

    def __init__(self, holder: str, background=None) -> None:
        self.background = background  # an executor whose thread has its own connection
        self.futures: list = []
        self.rows: list[tuple] = []
        self.flushed_at = time.monotonic()
        _, pid, claim = holder.rsplit(":", 2)
        self.path = journal_dir() / f"{pid}-{claim}.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def put(self, params: tuple) -> None:
        status, code, response, pk = params
        os.write(self.fd, f"{pk}\t{status}\t{code or ''}\t{_one_line(response)}\n".encode())
        self.rows.append(params)
        if (
            len(self.rows) >= self.FLUSH_ROWS
            or time.monotonic() - self.flushed_at > self.FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.rows:
            if self.background is not None:
                # Safe to write later: the journal already holds these answers.
                self.futures.append(self.background.submit(recipients_write, self.rows))
            else:
                recipients_write(self.rows)
            self.rows = []
        self.flushed_at = time.monotonic()

    def close(self) -> None:
        """Flush, then drop the journal once everything in it is in the database."""
        self.flush()
        os.close(self.fd)
        if self.background is not None:
            # Runs after the writes queued before it (one thread, first in, first out).
            self.background.submit(self.path.unlink, missing_ok=True)
        else:
            self.path.unlink(missing_ok=True)


def journal_dir():
    # Per host: a process id means something only on the host that runs it.
    return settings.VAR_DIR / "outbox-journal" / socket.gethostname()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


def _json_rows(names: tuple[str, ...], rows: list[tuple]) -> str:
    """Rows as one JSON parameter for ``jsonb_to_recordset``: encoded in C by ``json``, where
    the driver's array parameters cost a Python call per element (docs/performance.md)."""
    return json.dumps([dict(zip(names, row, strict=True)) for row in rows], default=str)


def recipients_write(rows: list[tuple]) -> None:
    """Write (status, code, response, id) rows in one statement on PostgreSQL, executemany on
    SQLite (in-process)."""
    table = MailRecipient._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS r SET status = v.status, code = v.code, response = v.response "
                "FROM jsonb_to_recordset(%s::jsonb) "
                "AS v(status varchar, code integer, response text, id bigint) WHERE r.id = v.id",
                [_json_rows(("status", "code", "response", "id"), rows)],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET status = %s, code = %s, response = %s WHERE id = %s", rows
            )


def journals_replay() -> int:
    """Write the outcomes journaled by dead workers of this host; returns how many rows.

    A journal is named ``<pid>-<claim>.log`` in this host's folder: it is replayed once that
    process is gone. Only recipients still pending or deferred take the journaled outcome.
    """
    folder = journal_dir()
    if not folder.is_dir():
        return 0
    replayed = 0
    for path in folder.glob("*.log"):
        pid_text = path.stem.partition("-")[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        rows = []
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t", 3)
            if len(parts) == 4 and parts[0].isdigit():
                pk, status, code, response = parts
                rows.append((status, int(code) if code.isdigit() else None, response, int(pk)))
        undecided = set(
            MailRecipient.objects.filter(
                pk__in=[r[3] for r in rows],
                status__in=[RecipientStatus.PENDING, RecipientStatus.DEFERRED],
            ).values_list("pk", flat=True)
        )
        rows = [r for r in rows if r[3] in undecided]
        if rows:
            recipients_write(rows)
            replayed += len(rows)
            log_event(logger, "queue.journal_replayed", rows=len(rows), journal=path.name)
        path.unlink(missing_ok=True)
    return replayed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_ATTEMPT_COLUMNS = ("mail_id", "at", "server", "recipient", "code", "error_class", "text")


def attempts_insert(rows: list[tuple]) -> None:
    """Insert (mail_id, at, server, recipient, code, error_class, text) rows, in one statement
    on PostgreSQL."""
    if not rows:
        return
    table = MailAttempt._meta.db_table
    columns = f"({', '.join(_ATTEMPT_COLUMNS)})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} {columns} SELECT * FROM jsonb_to_recordset(%s::jsonb) "
                "AS v(mail_id bigint, at timestamptz, server varchar, recipient varchar, "
                "code integer, error_class varchar, text text)",
                [_json_rows(_ATTEMPT_COLUMNS, rows)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} {columns} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows
            )
