"""The listener: aiosmtpd with the limits it lacks.

aiosmtpd has no connection limits (protocol.md §1.5); ``LimitedSMTP`` counts sessions in the
event loop's thread and answers ``421 4.7.0`` to one too many, then closes; an address's share
shrinks as the listener fills (``ConnectionLimits``). Commands per session are capped by
aiosmtpd's ``command_call_limit`` (each command at most N times per session); a session also has
an absolute lifetime and an idle timeout that only progress resets (``PROGRESS_COMMANDS``).
DATA is read into one buffer within a memory budget shared by all sessions
(``inbound.data_reader``).
"""

import asyncio
import functools
import logging
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, syntax
from django.conf import settings
from django.db import connection

from mailhub.logfiles import log_event

from .data_reader import DataReader, MemoryBudget
from .handler import DATA_REPLIES, InboundHandler
from .poster import PosterProcess
from .tls import tls_listener_context

logger = logging.getLogger("mailhub.inbound")
# The banner names the product, not the library and its version (an attacker's shopping list).
IDENT = "ESMTP MailHub"
# Commands that move a transaction on; NOOP, RSET, HELP, VRFY and unknown ones do not, so they
# never keep an idle session alive.
PROGRESS_COMMANDS = ("HELO", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA", "QUIT")
DATA_CHUNK = 65536


class ConnectionLimits:
    """Open sessions, total and per client address (touched only from the event loop)."""

    def __init__(self, *, total: int, per_ip: int) -> None:
        self.total_limit = total
        self.per_ip_limit = per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()
        # Refusals not yet logged, by address; a flood is logged once a second, with its count.
        self.refused: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def refusal_to_log(self, ip: str, now: float) -> int:
        """Count a refusal; how many to log now (0: wait, a line went out less than 1 s ago)."""
        self.refused[ip] += 1
        if now - self._logged_at.get(ip, -1.0) < 1.0:
            return 0
        if len(self._logged_at) > 10_000:
            self._logged_at = {k: t for k, t in self._logged_at.items() if now - t < 1.0}
            self.refused = Counter({k: n for k, n in self.refused.items() if k in self._logged_at})
        self._logged_at[ip] = now
        return self.refused.pop(ip)

    def per_ip_now(self) -> int:
        """An address's slots: all of ``per_ip`` while half the listener is free, then less.

        Past half full, an address may hold its share of what is left, so a few addresses can
        never take every slot and a newcomer still gets in.
        """
        free = self.total_limit - self.total
        if 2 * free >= self.total_limit:
            return self.per_ip_limit
        return max(1, min(self.per_ip_limit, self.per_ip_limit * 2 * free // self.total_limit))

    def admit(self, ip: str) -> bool:
        if self.total >= self.total_limit or self.per_ip[ip] >= self.per_ip_now():
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

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _address_part(arg: str) -> str:
    """The address of a MAIL/RCPT argument: ``<…>``, or up to the first blank without them."""
    head = arg.lstrip()
    if head.startswith("<"):
        end = head.find(">")
        return head if end < 0 else head[: end + 1]
    return re.split(r"[ \t]", head, maxsplit=1)[0]


class LimitedSMTP(SMTP):
    """One session: aiosmtpd's, with MailHub's limits on connections, time, memory and input."""

    def __init__(
        self,
        handler,
        *,
        limits: ConnectionLimits,
        budget: MemoryBudget | None = None,
        idle_timeout: float = 300.0,
        lifetime: float = 1800.0,
        **kwargs,
    ) -> None:
        super().__init__(handler, ident=IDENT, timeout=idle_timeout, **kwargs)
        self.limits = limits
        self.budget = budget if budget is not None else MemoryBudget(1 << 30)
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime
        self._admitted_ip: str | None = None
        self._refused = False
        self._started_at = self.loop.time()
        self._progress_at = self._started_at
        for name in PROGRESS_COMMANDS:
            self._smtp_methods[name] = self._with_progress(self._smtp_methods[name])

    def _with_progress(self, method):
        @functools.wraps(method)  # keeps aiosmtpd's HELP text (its ``syntax`` attributes)
        async def call(arg):
            self._progress()
            return await method(arg)

        return call

    def _progress(self) -> None:
        self._progress_at = self.loop.time()
        self._reset_timeout()

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd re-arms its timer on every command; ours runs from the last progress, and
        # never past the session's lifetime.
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        deadline = min(self._progress_at + self.idle_timeout, self._started_at + self.lifetime)
        self._timeout_handle = self.loop.call_later(
            max(deadline - self.loop.time(), 0.0), self._timeout_cb
        )

    def _timeout_cb(self) -> None:
        # RFC 5321 §4.5.3.2: the server may close an idle session; 421 says why first.
        if self.transport is None:
            return  # the session ended meanwhile
        if not self.transport.is_closing():
            self.transport.write(b"421 4.4.2 Session timed out, closing connection\r\n")
        super()._timeout_cb()

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
                count = self.limits.refusal_to_log(ip, self.loop.time())
                if count:
                    log_event(
                        logger,
                        "inbound.refused",
                        level=logging.WARNING,
                        code=421,
                        peer=ip,
                        reason="too many connections",
                        refused=count,
                        open=self.limits.total,
                        from_peer=self.limits.per_ip[ip],
                    )

    def connection_lost(self, error) -> None:
        if self._admitted_ip is not None:
            self.limits.release(self._admitted_ip)
            self._admitted_ip = None
        super().connection_lost(error)

    def _getaddr(self, arg: str):
        # aiosmtpd parses each address with the email package's header parser and builds a
        # typing.Protocol class per call: a third of the event loop's time under load. The
        # plain form gives the same (address, rest) with one regular expression.
        if _CONTROL_CHARS.search(_address_part(arg)):
            # No control character belongs in a MAIL or RCPT argument (RFC 5321 §4.1.2), and
            # the header parser would fold some (a tab) away: 553 malformed address.
            return None, None
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

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, reading into one buffer (``DataReader``) instead of a list of lines."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = DataReader(size_limit=self.data_size_limit, budget=self.budget)
        try:
            while self.transport is not None:
                try:
                    chunk = await self._reader.read(DATA_CHUNK)
                except asyncio.CancelledError:
                    self._writer.close()  # the connection went away during DATA
                    raise
                if not chunk:
                    return  # end of file: aiosmtpd cancels this session
                self._progress()  # data arriving is progress; the lifetime still holds
                rest = reader.feed(chunk)
                if rest is not None:
                    if rest:
                        # What the client sent after the final dot (pipelined commands) goes
                        # back to the reader, where the command loop reads it.
                        self._reader._buffer[:0] = rest
                    break
            else:
                return
            if reader.problem is not None:
                log_event(
                    logger,
                    "inbound.refused",
                    code=DATA_REPLIES[reader.problem][:3],
                    peer=self._admitted_ip,
                    reason=f"DATA: {reader.problem}",
                )
                self._set_post_data_state()
                await self.push(DATA_REPLIES[reader.problem])
                return
            # One copy as bytes (what the handler stores), then the buffer goes.
            content = bytes(reader.content)
            reader.content = bytearray()
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)
        finally:
            reader.release()


class InboundController(Controller):
    def __init__(
        self,
        handler,
        *,
        limits: ConnectionLimits,
        budget: MemoryBudget,
        idle_timeout: float,
        lifetime: float,
        **kwargs,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.budget = budget
        self.session_times = {"idle_timeout": idle_timeout, "lifetime": lifetime}

    def factory(self) -> SMTP:
        return LimitedSMTP(
            self.handler,
            limits=self.limits,
            budget=self.budget,
            **self.session_times,
            **self.SMTP_kwargs,
        )


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
    *,
    host: str,
    port: int,
    ready_timeout: float = 10.0,
    poster_process: bool = False,
) -> InboundController:
    """A listener on host:port with MailHub's handler and limits (not started).

    Posting into the chatter runs on a thread of its own, or with ``poster_process`` (what
    ``runsmtpd`` asks for) in a process of its own (``inbound.poster``). On SQLite it shares the
    storing thread: one writer at a time is all SQLite has, and a post waiting for the lock would
    only delay the stores the SMTP clients wait for.
    """
    server_hostname = settings.MAILHUB_INBOUND_HOSTNAME or settings.MAILHUB_MAIL_DOMAIN
    # Before any thread starts: a certificate that cannot be loaded stops the start-up.
    tls_context = tls_listener_context(
        cert=settings.MAILHUB_SMTPD_TLS_CERT,
        key=settings.MAILHUB_SMTPD_TLS_KEY,
        debug=settings.DEBUG,
        var_dir=settings.VAR_DIR,
        hostname=server_hostname,
    )
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
        budget=MemoryBudget(settings.MAILHUB_SMTPD_MEMORY_BUDGET),
        idle_timeout=settings.MAILHUB_SMTPD_IDLE_TIMEOUT,
        lifetime=settings.MAILHUB_SMTPD_SESSION_LIFETIME,
        hostname=host,
        port=port,
        ready_timeout=ready_timeout,
        # The banner name; without it aiosmtpd does a DNS lookup per connection.
        server_hostname=server_hostname,
        data_size_limit=settings.MAILHUB_SMTPD_MAX_SIZE,
        command_call_limit=settings.MAILHUB_SMTPD_MAX_COMMANDS,
        decode_data=False,
        enable_SMTPUTF8=True,
        # STARTTLS (RFC 3207) is offered when a certificate is configured; never required:
        # MX-to-MX mail falls back to plain text rather than bounce (RFC 3207 §4).
        tls_context=tls_context,
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
