"""Shared fixtures: a real SMTP relay on loopback, a real Celery worker process, users.

Area-specific fixtures live in ``tests/support/<area>.py`` and are loaded below.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection

from mailhub.devrelay import DevRelayHandler
from mailhub.permissions import STAFF_PAGE_PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = [
    f"tests.support.{p.stem}"
    for p in sorted((Path(__file__).parent / "support").glob("*.py"))
    if p.stem != "__init__"
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def relay(settings):
    """A real SMTP relay (aiosmtpd) on a free loopback port; settings point the outbox at it.

    ``relay.handler.rcpt_rules`` / ``relay.handler.data_reply`` choose what it answers;
    ``relay.handler.received`` lists what it accepted.
    """
    handler = DevRelayHandler(reject="@reject.test", defer="@defer.test")
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="relay.test",
        ready_timeout=10,
    )
    controller.start()
    settings.MAILHUB_RELAY_HOST = "127.0.0.1"
    settings.MAILHUB_RELAY_PORT = port
    controller.port = port
    try:
        yield controller
    finally:
        controller.stop()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    """Poll until ``predicate()`` is truthy; fail the test with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(message or f"condition not met within {timeout}s")


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a child process (worker, listener, web) sharing this test's database."""
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    env.setdefault("DJANGO_DEBUG", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ChildProcess:
    """A process started by a test, always stopped (and its group killed) at teardown."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_process(tmp_path):
    """Start child processes that share the test database; all are stopped at teardown."""
    started: list[ChildProcess] = []

    def start(args: list[str], name: str = "proc", **env: str) -> ChildProcess:
        child = ChildProcess(args, process_env(**env), tmp_path / f"{name}-{len(started)}.log")
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


@pytest.fixture
def celery_worker_process(start_process, transactional_db, settings):
    """A real Celery worker process (solo pool) bound to the test database and broker.

    Tests using it must commit their data (transactional_db) so the worker sees it.
    """

    def start(concurrency: int = 1, name: str = "worker", **env: str) -> ChildProcess:
        env.setdefault("MAILHUB_RELAY_HOST", str(settings.MAILHUB_RELAY_HOST))
        env.setdefault("MAILHUB_RELAY_PORT", str(settings.MAILHUB_RELAY_PORT))
        return start_process(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mailhub",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            name=name,
            **env,
        )

    return start


def grant(user, *perms: str):
    """Give ``user`` the permissions named ``app_label.codename``; returns it fresh from the DB."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)  # a fresh object: the permission cache is empty


@pytest.fixture
def staff_user(django_user_model):
    """Internal user with every permission the staff pages check (the operations role)."""
    user = django_user_model.objects.create_user(
        "staff", "staff@mailhub.test", "staff-password", is_staff=True
    )
    return grant(user, *STAFF_PAGE_PERMISSIONS)


@pytest.fixture
def bare_staff_user(django_user_model):
    """Internal user (``is_staff``) without any permission."""
    return django_user_model.objects.create_user(
        "bare", "bare@mailhub.test", "bare-password", is_staff=True
    )


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("user", "user@customer.test", "user-password")
