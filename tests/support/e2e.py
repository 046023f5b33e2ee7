"""End-to-end harness: the real MailHub processes on loopback, and switches to break them.

What it gives a test (fixtures):

- ``e2e_stack``: starts web (gunicorn), Celery worker(s), beat(s) and the inbound listener
  (``manage.py runsmtpd``) as child processes sharing the test database, each on a free loopback
  port, plus a relay (``mailhub.devrelay.DevRelayHandler`` in an aiosmtpd Controller) that the
  test steers (``rcpt_rules``, ``data_reply``) and whose ``received`` mail it counts.
- ``loopback_proxy``: a TCP proxy in front of any loopback service that can be switched between
  ``forward``, ``refuse`` (connections refused, established ones cut) and ``drop`` (connections
  accepted, nothing ever answered): a PostgreSQL, Redis or relay outage without touching the
  machine's own services.
- ``private_redis``: a ``redis-server`` of our own on a free port, stopped and restarted at will.
- ``fault_report``: records one line per fault case (sent, arrived, lost, duplicates, command);
  ``bench/faults`` collects them into the table of ``docs/reliability.md``.

Counts scale with ``MAILHUB_FAULTS_SCALE`` (``ci`` by default, ``full`` for ``bench/faults``), so
CI stays bounded and the bench reuses the very same cases.
"""

from __future__ import annotations

import errno
import http.cookiejar
import json
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# --- scale and report ---------------------------------------------------------------------------


def faults_scale() -> str:
    return os.environ.get("MAILHUB_FAULTS_SCALE", "ci")


def scaled(ci: int, full: int) -> int:
    """The count a case uses: small in CI, the issue's figure under ``bench/faults``."""
    return full if faults_scale() == "full" else ci


@dataclass
class FaultFigure:
    case: str
    sent: int
    arrived: int
    lost: int
    duplicates: int
    seconds: float
    command: str
    notes: str = ""


class FaultReport:
    """Appends one JSON line per case to ``MAILHUB_FAULTS_REPORT`` (when set)."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.path = os.environ.get("MAILHUB_FAULTS_REPORT", "")

    def record(
        self,
        *,
        case: str,
        sent: int,
        arrived: int,
        lost: int,
        duplicates: int,
        seconds: float,
        notes: str = "",
    ) -> FaultFigure:
        figure = FaultFigure(
            case=case,
            sent=sent,
            arrived=arrived,
            lost=lost,
            duplicates=duplicates,
            seconds=round(seconds, 2),
            command=f"./run test '{self.nodeid}'",
            notes=notes,
        )
        print(f"FAULT {json.dumps(figure.__dict__)}")
        if self.path:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps({**figure.__dict__, "scale": faults_scale()}) + "\n")
        return figure


@pytest.fixture
def fault_report(request) -> FaultReport:
    return FaultReport(request.node.nodeid)


# --- ports --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, *, timeout: float, message, interval: float = 0.1):
    """Poll ``predicate``; fail with ``message`` (a string, or a callable saying what is left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    text = message() if callable(message) else message
    pytest.fail(f"{text} (waited {timeout:.0f}s)")


# --- the toggleable loopback proxy --------------------------------------------------------------


class LoopbackProxy:
    """A TCP proxy on a free loopback port in front of ``target_host:target_port``.

    Modes: ``forward`` (a plain pipe), ``refuse`` (the port is closed: connect() gets ECONNREFUSED,
    open connections are cut, as when the server is down) and ``drop`` (connections are accepted
    but nothing is forwarded or answered, as behind a dead network path: clients time out).
    One selector thread moves the bytes; it is small enough to carry a few hundred connections.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "forward"
        self.accepted = 0
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._clients: set[socket.socket] = set()
        self._commands: list = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stop = False
        self._cut_when: bytes = b""
        self._cut_times = 0
        self._cut_from_server = False
        self.cuts = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"proxy-{self.port}", daemon=True)

    # public API (any thread) -----------------------------------------------------------------

    def start(self) -> LoopbackProxy:
        self._listen()
        self._thread.start()
        return self

    def set_mode(self, mode: str) -> None:
        if mode not in ("forward", "refuse", "drop"):
            raise ValueError(f"unknown proxy mode {mode!r}: use forward, refuse or drop")
        self._call(lambda: self._switch(mode))

    def cut(self) -> None:
        """Close every open connection (both sides) without changing the mode."""
        self._call(self._close_all)

    def cut_when(self, marker: bytes, times: int = 1, *, from_server: bool = False) -> None:
        """Cut the next ``times`` connections that carry ``marker``, before forwarding it.

        From the client with a header line as the marker: the relay sees DATA start and never the
        final dot (dropped mid-DATA). From the server with its final ``250``: the relay has the
        mail but the sender never hears so (the one case where a duplicate is allowed).
        """

        def arm() -> None:
            self._cut_when, self._cut_times = marker, times
            self._cut_from_server = from_server

        self._call(arm)

    def stop(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        self._close_all()
        if self._listener is not None:
            self._listener.close()

    @property
    def open_connections(self) -> int:
        return sum(1 for peer in self._peers.values() if peer is not None)

    # inside the loop thread ---------------------------------------------------------------------

    def _call(self, fn) -> None:
        done = threading.Event()
        with self._lock:
            self._commands.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(timeout=5):
            raise RuntimeError("proxy thread did not answer")

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(50):
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError as exc:  # the old socket may linger for a moment after refuse
                if exc.errno != errno.EADDRINUSE:
                    raise
                time.sleep(0.05)
        listener.listen(512)
        listener.setblocking(False)
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, "accept")

    def _switch(self, mode: str) -> None:
        if mode == self.mode:
            return
        if mode == "refuse":
            self._close_all()
            if self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None
        elif mode == "drop":
            self._close_all()
            if self._listener is None:
                self._listen()
        elif mode == "forward" and self._listener is None:
            self._listen()
        if mode == "forward":
            # Connections accepted while dropping were never answered: cut them so clients retry.
            self._close_all()
        self.mode = mode

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                # RST rather than FIN: the client sees the connection die, as with a crash.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            s.close()
            self._clients.discard(s)
            self._peers.pop(s, None)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        client.setblocking(False)
        if self.mode == "drop":
            self._peers[client] = None
            self._sel.register(client, selectors.EVENT_READ, "blackhole")
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()  # the real service is down too: show it
            return
        upstream.setblocking(False)
        self._clients.add(client)
        for a, b in ((client, upstream), (upstream, client)):
            self._peers[a] = b
            self._sel.register(a, selectors.EVENT_READ, "pipe")

    def _pipe(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        peer = self._peers.get(sock)
        if peer is None:
            return
        from_client = sock in self._clients
        if self._cut_times and from_client != self._cut_from_server and self._cut_when in data:
            self._cut_times -= 1
            self.cuts += 1
            self._close(sock)
            return
        try:
            peer.setblocking(True)
            peer.settimeout(5)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(sock)

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select(timeout=0.5):
                kind = key.data
                if kind == "wake":
                    self._wake_r.recv(4096)
                    with self._lock:
                        commands, self._commands = self._commands, []
                    for fn, done in commands:
                        try:
                            fn()
                        finally:
                            done.set()
                elif kind == "accept":
                    if self._listener is not None and key.fileobj is self._listener:
                        self._accept()
                elif kind == "blackhole":
                    sock = key.fileobj
                    try:
                        if not sock.recv(65536):
                            self._close(sock)
                    except OSError:
                        self._close(sock)
                elif kind == "pipe" and key.fileobj in self._peers:
                    self._pipe(key.fileobj)


@pytest.fixture
def loopback_proxy():
    """``loopback_proxy(port)`` → a started LoopbackProxy; all are stopped at teardown."""
    proxies: list[LoopbackProxy] = []

    def make(target_port: int, target_host: str = "127.0.0.1") -> LoopbackProxy:
        proxy = LoopbackProxy(target_port, target_host).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


# --- a private Redis ----------------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a free loopback port, in memory only, ours to stop and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(
            lambda: port_answers(self.port),
            timeout=10,
            message="private redis-server did not start",
        )
        return self

    def stop(self) -> None:
        """Stop it (all queued messages in it are lost, as in a crash without persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def private_redis(tmp_path):
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed: `apt-get install -y redis-server` to run this.")
    redis = PrivateRedis(tmp_path / "redis").start()
    yield redis
    redis.stop()


# --- the relay ----------------------------------------------------------------------------------


@dataclass
class Relay:
    """The test relay: a DevRelayHandler the test steers, counting Message-IDs it accepted."""

    controller: object
    handler: object
    port: int

    def message_ids(self) -> list[str]:
        return self.handler.message_ids()

    def counts(self) -> Counter:
        return Counter(self.message_ids())

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.counts().values() if n > 1)


def fault_relay_handler():
    """The dev relay plus per-recipient replies at end of DATA and a per-mail delay."""
    import asyncio

    from mailhub.devrelay import DevRelayHandler, _matches

    class FaultRelayHandler(DevRelayHandler):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            # (pattern, reply) tried at end of DATA against the accepted recipients.
            self.data_rules: list[tuple[str, str]] = []
            self.delay = 0.0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            if self.delay:
                await asyncio.sleep(self.delay)
            for pattern, reply in self.data_rules:
                if any(_matches(addr, pattern) for addr in envelope.rcpt_tos):
                    return reply
            return await super().handle_DATA(server, session, envelope)

    return FaultRelayHandler(reject="@reject.test", defer="@defer.test", keep=1_000_000)


def start_relay(**smtp_kwargs) -> Relay:
    from aiosmtpd.controller import Controller

    handler = fault_relay_handler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="relay.e2e.test",
        ready_timeout=15,
        **smtp_kwargs,
    )
    controller.start()
    return Relay(controller=controller, handler=handler, port=port)


@pytest.fixture
def e2e_relay():
    relay = start_relay()
    yield relay
    relay.controller.stop()


# --- HTTP client for the web process ------------------------------------------------------------


class WebClient:
    """A browser-like HTTP client (cookies, CSRF token) for the gunicorn web process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def _csrf(self) -> str:
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return cookie.value
        return ""

    def request(self, path: str, data: dict | None = None, timeout: float = 20) -> WebResponse:
        body = None
        headers = {"Referer": self.base_url + "/"}
        if data is not None:
            body = urllib.parse.urlencode(data, doseq=True).encode()
            headers["X-CSRFToken"] = self._csrf()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base_url + path, data=body, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return WebResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return WebResponse(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str, **kw) -> WebResponse:
        return self.request(path, **kw)

    def post(self, path: str, data: dict, **kw) -> WebResponse:
        if not self._csrf():
            self.get(path if path.endswith("/") else "/login/")
        return self.request(path, data=data, **kw)

    def login(self, username: str, password: str) -> None:
        self.get("/login/")
        response = self.post("/login/", {"username": username, "password": password})
        assert response.status == 302, f"login as {username} failed: {response.status}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class WebResponse:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


# --- the stack of real processes ----------------------------------------------------------------


@dataclass
class Stack:
    """The real MailHub processes of one test, sharing its database.

    ``env`` is what every process gets on top of the test's own database settings; tests change
    ``database_url`` / ``broker_url`` before starting processes to put a proxy or a private Redis
    in between.
    """

    start_process: object
    relay: Relay
    tmp_path: Path
    broker_url: str
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, list] = field(default_factory=dict)
    web_port: int | None = None
    smtpd_port: int | None = None

    def _env(self, **extra: str) -> dict[str, str]:
        env = {
            "MAILHUB_RELAY_HOST": "127.0.0.1",
            "MAILHUB_RELAY_PORT": str(self.relay.port),
            "MAILHUB_RELAY_TIMEOUT": "10",
            "CELERY_BROKER_URL": self.broker_url,
            "MAILHUB_LOG_DIR": str(self.tmp_path / "log"),
            **self.env,
            **extra,
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    def _start(self, name: str, args: list[str], **extra: str):
        child = self.start_process(args, name=name, **self._env(**extra))
        self.procs.setdefault(name, []).append(child)
        return child

    def web(self, **extra: str):
        """gunicorn as in production: DEBUG off, so errors show the error page, not a trace."""
        self.web_port = self.web_port or free_port()
        extra.setdefault("DJANGO_DEBUG", "0")
        extra.setdefault("DJANGO_SECRET_KEY", "e2e-only-secret-key")
        child = self._start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "mailhub.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "60",
            ],
            **extra,
        )
        self._wait_port(self.web_port, child, "web (gunicorn)")
        return child

    def worker(self, *, pool: str = "solo", concurrency: int = 1, **extra: str):
        n = len(self.procs.get("worker", []))
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailhub",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"e2e{n}-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        return self._start("worker", args, **extra)

    def beat(self, **extra: str):
        n = len(self.procs.get("beat", []))
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailhub",
            "beat",
            "--loglevel",
            "INFO",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            # Each beat its own pidfile: two beats at once is a case we test, not a start error.
            "--pidfile",
            str(self.tmp_path / f"beat{n}.pid"),
            "--schedule",
            str(self.tmp_path / f"beat{n}.schedule"),
        ]
        return self._start("beat", args, **extra)

    def smtpd(self, *args: str, **extra: str):
        self.smtpd_port = self.smtpd_port or free_port()
        listen = f"127.0.0.1:{self.smtpd_port}"
        child = self._start(
            "smtpd", [sys.executable, "manage.py", "runsmtpd", "--listen", listen, *args], **extra
        )
        self._wait_port(self.smtpd_port, child, "listener (runsmtpd)")
        return child

    def _wait_port(self, port: int, child, what: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                pytest.fail(
                    f"{what} exited with {child.proc.returncode}:\n{child.output()[-3000:]}"
                )
            if port_answers(port):
                return
            time.sleep(0.1)
        pytest.fail(f"{what} did not listen on {port} within 60s:\n{child.output()[-3000:]}")

    def web_client(self) -> WebClient:
        assert self.web_port, "start the web process first"
        return WebClient(f"http://127.0.0.1:{self.web_port}")

    def logs(self) -> str:
        parts = []
        for name, children in self.procs.items():
            for child in children:
                parts.append(f"--- {name} ---\n{child.output()[-4000:]}")
        return "\n".join(parts)


def database_url_for_children() -> str:
    """The URL of the test database as the child processes reach it (no proxy)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def database_port() -> int | None:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return None
    return int(db["PORT"] or 5432)


def database_url_via(port: int) -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@127.0.0.1:{port}/{db['NAME']}"


@pytest.fixture
def e2e_stack(transactional_db, e2e_relay, start_process, tmp_path, settings):
    """The real processes of one test; each is stopped (SIGTERM, then SIGKILL) at teardown.

    The order of the arguments is the order of teardown, reversed: the processes stop first,
    then the relay, and only then is the database flushed (a live listener or worker holding
    locks would make the flush deadlock).
    """
    stack = Stack(
        start_process=start_process,
        relay=e2e_relay,
        tmp_path=tmp_path,
        broker_url=settings.CELERY_BROKER_URL,
    )
    settings.MAILHUB_RELAY_HOST = "127.0.0.1"
    settings.MAILHUB_RELAY_PORT = e2e_relay.port
    yield stack


def postgres_only(
    why: str = "SQLite is a file, there is no database server to take away",
) -> None:
    """Skip on the embedded SQLite default, saying why the case needs PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL: {why} (run with DATABASE_URL=postgres://…)")
