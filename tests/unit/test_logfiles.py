"""Daily log rotation at 05:00 UTC with a controlled clock, and structured key=value lines."""

import datetime as dt
import gzip
import logging

import pytest

from mailhub.logfiles import DailyRotatingFileHandler, format_event, log_day, log_event


class Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> float:
        return self.moment.timestamp()

    def set(self, text: str) -> None:
        self.moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture
def make_logger(tmp_path):
    handlers = []

    def make(clock: Clock, name: str = "a", backup_count: int = 30) -> logging.Logger:
        handler = DailyRotatingFileHandler(
            str(tmp_path / "mailhub.log"), backupCount=backup_count, clock=clock
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger(f"test.logfiles.{name}.{id(handler)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        handlers.append((logger, handler))
        return logger

    yield make
    for logger, handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def test_log_day_starts_at_five_utc():
    assert log_day(utc("2026-03-10 04:59:59")) == dt.date(2026, 3, 9)
    assert log_day(utc("2026-03-10 05:00:00")) == dt.date(2026, 3, 10)


def test_rotation_names_and_compression(tmp_path, make_logger):
    clock = Clock(utc("2026-03-10 06:00"))
    log = make_logger(clock)
    log.info("day one")
    clock.set("2026-03-11 04:59:59")
    log.info("day one, last second")
    assert sorted(p.name for p in tmp_path.glob("mailhub.log*")) == ["mailhub.log"]

    clock.set("2026-03-11 05:00:00")
    log.info("day two")
    assert (tmp_path / "mailhub.log").read_text() == "day two\n"
    assert (tmp_path / "mailhub.log.1").read_text() == "day one\nday one, last second\n"

    clock.set("2026-03-12 05:00:01")
    log.info("day three")
    assert (tmp_path / "mailhub.log").read_text() == "day three\n"
    assert (tmp_path / "mailhub.log.1").read_text() == "day two\n"
    dated = tmp_path / "mailhub.log.2026-03-10.gz"
    assert gzip.decompress(dated.read_bytes()).decode() == "day one\nday one, last second\n"

    # Three idle days: the next line rotates once, the file of 03-12 becomes .1.
    clock.set("2026-03-15 12:00")
    log.info("day six")
    assert sorted(p.name for p in tmp_path.glob("mailhub.log*")) == [
        "mailhub.log",
        "mailhub.log.1",
        "mailhub.log.2026-03-10.gz",
        "mailhub.log.2026-03-11.gz",
    ]
    assert (tmp_path / "mailhub.log.1").read_text() == "day three\n"


def test_old_dated_files_are_pruned(tmp_path, make_logger):
    clock = Clock(utc("2026-03-01 06:00"))
    log = make_logger(clock, backup_count=2)
    for day in range(1, 7):
        clock.set(f"2026-03-{day:02d} 06:00")
        log.info(f"line of {day}")
    assert sorted(p.name for p in tmp_path.glob("mailhub.log.*.gz")) == [
        "mailhub.log.2026-03-03.gz",
        "mailhub.log.2026-03-04.gz",
    ]


def test_two_writers_rotate_once_and_lose_no_line(tmp_path, make_logger):
    """Two handlers on one file stand for two processes (web and worker) with their own fds."""
    clock = Clock(utc("2026-03-10 23:00"))
    web, worker = make_logger(clock, "web"), make_logger(clock, "worker")
    web.info("web 1")
    worker.info("worker 1")
    clock.set("2026-03-11 05:00:00")
    worker.info("worker 2")  # rotates
    web.info("web 2")  # sees the rotation already done, reopens the new file
    clock.set("2026-03-11 09:00")
    web.info("web 3")
    assert (tmp_path / "mailhub.log.1").read_text() == "web 1\nworker 1\n"
    assert (tmp_path / "mailhub.log").read_text() == "worker 2\nweb 2\nweb 3\n"
    assert not list(tmp_path.glob("*.gz"))


def test_restart_after_idle_days_rotates_the_stale_file(tmp_path, make_logger):
    clock = Clock(utc("2026-03-10 06:00"))
    first = make_logger(clock, "before")
    first.info("before the restart")
    for handler in first.handlers:
        handler.close()
    clock.set("2026-03-13 06:00")
    second = make_logger(clock, "after")  # a new process, days later
    second.info("after the restart")
    assert (tmp_path / "mailhub.log.1").read_text() == "before the restart\n"
    assert (tmp_path / "mailhub.log").read_text() == "after the restart\n"


def test_structured_line_quotes_what_needs_quoting(caplog):
    line = format_event(
        "mail.failed",
        message_id="<abc.1@mailhub.test>",
        rcpt=["a@x.test", "b@y.test"],
        code=550,
        reason='5.1.1 "nobody" here\nsecond line',
        server=None,
    )
    assert line == (
        "event=mail.failed message_id=<abc.1@mailhub.test> rcpt=a@x.test,b@y.test code=550 "
        'reason="5.1.1 \\"nobody\\" here\\nsecond line" server=-'
    )
    with caplog.at_level(logging.INFO, logger="mailhub.outbox"):
        log_event(logging.getLogger("mailhub.outbox"), "mail.sent", code=250, rcpt="a@x.test")
    assert "event=mail.sent code=250 rcpt=a@x.test" in caplog.text
