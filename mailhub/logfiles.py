"""Log files under ``var/log/`` that rotate daily at 05:00 UTC, and structured log lines.

Layout (as the seed describes Odoo.sh's logs)::

    mailhub.log                 the current day (05:00 UTC to 05:00 UTC)
    mailhub.log.1               the previous day, plain text
    mailhub.log.2026-11-21.gz   older days, named by the day they start on, gzip-compressed

Several processes (web, worker, beat, listener) append to the same file. Each opens it in
append mode, so a line is one ``write()`` and lines do not interleave on a local file system.
Rotation is decided under an exclusive ``flock`` on ``.mailhub.log.lock``, which also records the
day the current file belongs to: the first process past 05:00 renames and compresses, the others
see the recorded day already moved on and just reopen ``mailhub.log``.

Caveats: a line written by another process in the instant between the rename and its own
reopen lands at the end of ``mailhub.log.1`` (it is not lost); ``flock`` is advisory and
unreliable on NFS, so keep ``MAILHUB_LOG_DIR`` on a local disk.
"""

import datetime as dt
import fcntl
import gzip
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

ROTATE_AT = dt.time(5, 0)
_DATED = re.compile(r"\.(\d{4}-\d{2}-\d{2})\.gz$")


def log_day(moment: dt.datetime) -> dt.date:
    """The log day a moment belongs to: days start at 05:00 UTC."""
    utc = moment.astimezone(dt.UTC)
    return utc.date() if utc.time() >= ROTATE_AT else utc.date() - dt.timedelta(days=1)


def log_day_end(day: dt.date) -> dt.datetime:
    """When the file of ``day`` stops being current."""
    return dt.datetime.combine(day + dt.timedelta(days=1), ROTATE_AT, tzinfo=dt.UTC)


class DailyRotatingFileHandler(logging.FileHandler):
    """Appends to ``filename``; at 05:00 UTC moves it to ``.1`` and the old ``.1`` to a dated gzip.

    ``clock`` returns the current time as epoch seconds (tests pass a controllable one).
    ``backupCount`` dated files are kept; older ones are deleted.
    """

    def __init__(
        self,
        filename: str,
        backupCount: int = 30,  # noqa: N803 - the logging module's spelling, used in LOGGING
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.backup_count = backupCount
        path = Path(filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = path.with_name(f".{path.name}.lock")
        super().__init__(filename, mode="a", encoding="utf-8", delay=True)
        self.current_day = self._today()
        # Records which day mailhub.log holds (first start: from its last write) and rotates a
        # file left over from an earlier day by a stopped process.
        try:
            self.rollover()
        except OSError as exc:
            # An unwritable log directory must not stop the web or the worker from starting;
            # each failed write then reports itself on stderr (logging.Handler.handleError).
            logging.getLogger(__name__).warning("log rotation state unavailable: %s", exc)

    # --- time ---------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)

    def _today(self) -> dt.date:
        return log_day(self._now())

    # --- state shared between processes ---------------------------------------------------------
    def _recorded_days(self) -> tuple[dt.date | None, dt.date | None]:
        """(day of mailhub.log, day of mailhub.log.1) as recorded by the last rotation."""
        try:
            text = self.lock_path.read_text(encoding="ascii")
        except (FileNotFoundError, UnicodeDecodeError):
            return None, None
        days: list[dt.date | None] = []
        for part in (text.split() + ["", ""])[:2]:
            try:
                days.append(dt.date.fromisoformat(part))
            except ValueError:
                days.append(None)
        return days[0], days[1]

    # --- logging.Handler --------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._now() >= log_day_end(self.current_day):
                self.rollover()
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)
        super().emit(record)

    def rollover(self) -> None:
        """Rotate once per day across processes; safe to call from every process."""
        today = self._today()
        base = Path(self.baseFilename)
        with open(self.lock_path, "a+", encoding="ascii") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current, previous = self._recorded_days()
                if current is None:
                    # No state yet: the file's last write tells which day it holds.
                    current = log_day(self._file_moment(base)) if base.exists() else today
                    current = min(current, today)
                if current < today:
                    previous = self._rotate(base, current=current, previous=previous)
                    current = today
                lock.seek(0)
                lock.truncate()
                lock.write(f"{current.isoformat()} {previous.isoformat() if previous else ''}\n")
                lock.flush()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        # Whoever rotated, this process's stream may point at the renamed file: reopen.
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # reopened by FileHandler.emit (delay=True)
        self.current_day = current

    def _file_moment(self, path: Path) -> dt.datetime:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)

    def _rotate(self, base: Path, *, current: dt.date, previous: dt.date | None) -> dt.date | None:
        """Dated gzip ← .1 ← current; returns the day now held by ``.1``."""
        one = base.with_name(base.name + ".1")
        if one.exists():
            day = previous or log_day(self._file_moment(one))
            target = base.with_name(f"{base.name}.{day.isoformat()}.gz")
            # Append mode: if that day was already compressed (clock changes, a restore), the
            # file gets a second gzip member, which gunzip and zgrep read as one stream.
            with open(one, "rb") as src, gzip.open(target, "ab") as dst:
                shutil.copyfileobj(src, dst)
            one.unlink()
        if base.exists():
            os.replace(base, one)
            self._prune(base)
            return current
        self._prune(base)
        return None

    def _prune(self, base: Path) -> None:
        dated = sorted(
            (p for p in base.parent.glob(base.name + ".*.gz") if _DATED.search(p.name)),
            key=lambda p: p.name,
        )
        for old in dated[: max(0, len(dated) - self.backup_count)]:
            old.unlink(missing_ok=True)


# --- structured lines -------------------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_.@<>:/+,\-]+$")


def format_value(value: object) -> str:
    """One value of a key=value line: bare when safe, else double-quoted with escapes."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set | frozenset):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and _BARE.match(text) and not text.startswith('"'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped.replace(chr(13), "")}"'


def format_event(event: str, **fields: object) -> str:
    """``event=mail.sent message_id=<x@y> rcpt=a@b,c@d code=250 reason="..."``."""
    parts = [f"event={format_value(event)}"]
    parts.extend(f"{key}={format_value(value)}" for key, value in fields.items())
    return " ".join(parts)


def log_event(
    logger: logging.Logger, event: str, /, *, level: int = logging.INFO, **fields: object
) -> str:
    """Log one structured line, grep-friendly, and return it ("" when the level is off).

    Outbox, inbound and bounces use the same keys so one ``grep message_id=<...>`` follows a
    mail through every process: ``message_id``, ``rcpt``, ``server``, ``code``, ``reason``.
    """
    if not logger.isEnabledFor(level):
        return ""  # formatting is most of the cost: skip it when nobody reads the line
    line = format_event(event, **fields)
    logger.log(level, line)
    return line
