"""The listener: aiosmtpd with the limits it lacks (connections total and per address).

aiosmtpd has no connection limits (protocol.md §1.5); ``LimitedSMTP`` counts sessions in the
event loop's thread and answers ``421 4.7.0`` to one too many, then closes. Commands per session
are capped by aiosmtpd's ``command_call_limit`` (each command at most N times per session).
"""

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from django.conf import settings
from django.db import connection

from .handler import InboundHandler
from .poster import PosterProcess


class ConnectionLimits:
    """Open sessions, total and per client address (touched only from the event loop)."""

    def __init__(self, *, total: int, per_ip: int) -> None:
        self.total_limit = total
        self.per_ip_limit = per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def admit(self, ip: str) -> bool:
        if self.total >= self.total_limit or self.per_ip[ip] >= self.per_ip_limit:
            return False
        self.total += 1
        self.per_ip[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


# A plain <local@domain> (dot-atom local part, no quotes, comments or route): the form of nearly
# every MAIL FROM and RCPT TO. Anything else goes to aiosmtpd's full RFC 5322 parser.
_PLAIN_ANGLE_ADDR = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)",
    re.DOTALL,
)


class LimitedSMTP(SMTP):
    def __init__(self, handler, *, limits: ConnectionLimits, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self._admitted_ip: str | None = None
        self._refused = False

    def connection_made(self, transport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            peer = transport.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, tuple) else str(peer)
            if self.limits.admit(ip):
                self._admitted_ip = ip
            else:
                self._refused = True

    def connection_lost(self, error) -> None:
        if self._admitted_ip is not None:
            self.limits.release(self._admitted_ip)
            self._admitted_ip = None
        super().connection_lost(error)

    def _getaddr(self, arg: str):
        # aiosmtpd parses each address with the email package's header parser and builds a
        # typing.Protocol class per call: a third of the event loop's time under load. The
        # plain form gives the same (address, rest) with one regular expression.
        match = _PLAIN_ANGLE_ADDR.fullmatch(arg.lstrip())
        if match is None:
            return super()._getaddr(arg)
        address, rest = match.groups()
        rest = rest.lstrip(" \t")
        if rest.startswith("("):
            return super()._getaddr(arg)  # a comment after the address: the parser drops it
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    async def _handle_client(self) -> None:
        if self._refused:
            # RFC 5321 §3.8: 421 may answer at any time, then the server closes.
            await self.push("421 4.7.0 Too many connections, please try again later")
            self.transport.close()
            return
        await super()._handle_client()


class InboundController(Controller):
    def __init__(self, handler, *, limits: ConnectionLimits, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits

    def factory(self) -> SMTP:
        return LimitedSMTP(self.handler, limits=self.limits, **self.SMTP_kwargs)


def db_threads() -> int:
    # SQLite takes one writer at a time: more threads would only wait on its lock.
    return 1 if connection.vendor == "sqlite" else 2


def executor_close_connections(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close the database connection of every worker thread (before shutdown or a test's end).

    Each task waits at a barrier, so ``threads`` tasks run on ``threads`` distinct threads.
    """
    from django.db import connections

    barrier = threading.Barrier(threads)

    def close() -> None:
        connections.close_all()
        barrier.wait(timeout=10)

    for future in [executor.submit(close) for _ in range(threads)]:
        future.result(timeout=15)


def inbound_controller(
    *, host: str, port: int, ready_timeout: float = 10.0, poster_process: bool = False
) -> InboundController:
    """A listener on host:port with MailHub's handler and limits (not started).

    Posting into the chatter runs on a thread of its own, or with ``poster_process`` (what
    ``runsmtpd`` asks for) in a process of its own (``inbound.poster``). On SQLite it shares the
    storing thread: one writer at a time is all SQLite has, and a post waiting for the lock would
    only delay the stores the SMTP clients wait for.
    """
    executor = ThreadPoolExecutor(max_workers=db_threads(), thread_name_prefix="inbound-db")
    if connection.vendor == "sqlite":
        process_executor = executor
    elif poster_process:
        process_executor = PosterProcess()
    else:
        process_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbound-post")
    controller = InboundController(
        InboundHandler(
            executor=executor,
            process_executor=process_executor,
            # Two on PostgreSQL (its threads); SQLite has one writer, so one.
            stores_at_once=db_threads(),
        ),
        limits=ConnectionLimits(
            total=settings.MAILHUB_SMTPD_MAX_CONNECTIONS,
            per_ip=settings.MAILHUB_SMTPD_MAX_CONNECTIONS_PER_IP,
        ),
        hostname=host,
        port=port,
        ready_timeout=ready_timeout,
        # The banner name; without it aiosmtpd does a DNS lookup per connection.
        server_hostname=settings.MAILHUB_INBOUND_HOSTNAME or settings.MAILHUB_MAIL_DOMAIN,
        data_size_limit=settings.MAILHUB_SMTPD_MAX_SIZE,
        command_call_limit=settings.MAILHUB_SMTPD_MAX_COMMANDS,
        decode_data=False,
        enable_SMTPUTF8=True,
    )
    controller.executor = executor
    controller.process_executor = process_executor
    controller.db_threads = db_threads()
    return controller


def inbound_controller_close(controller: InboundController) -> None:
    """After ``stop()``: finish posting what was accepted, then close the threads' connections."""
    if isinstance(controller.process_executor, PosterProcess):
        controller.process_executor.shutdown(wait=True)  # its connection closes with it
    elif controller.process_executor is not controller.executor:
        # One thread, first in first out: the posts queued before this run before it.
        executor_close_connections(controller.process_executor, 1)
        controller.process_executor.shutdown(wait=True)
    executor_close_connections(controller.executor, controller.db_threads)
    controller.executor.shutdown(wait=True)


def sweep_forever(stop: threading.Event, *, executor, interval: float = 60.0) -> None:
    """Retry accepted rows whose processing failed, until ``stop`` is set.

    The work runs on the posting thread (``executor``), so it never races a post of this
    listener (and on SQLite never fights it for the write lock).
    """
    import logging

    from .handler import _in_thread
    from .services import inbound_process_pending

    log = logging.getLogger("mailhub.inbound")
    while True:
        try:
            executor.submit(_in_thread, inbound_process_pending, {}).result()
        except RuntimeError:
            return  # the executor shut down: the listener is stopping
        except Exception:  # noqa: BLE001 - database down: try again at the next round
            log.warning("inbound: pending sweep failed; retrying in %ss", interval, exc_info=True)
        if stop.wait(interval):
            return
