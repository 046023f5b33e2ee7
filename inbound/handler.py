"""The aiosmtpd handler: every SMTP reply code of the inbound gateway is decided here.

A thin adapter: each hook calls one service in a worker thread (the Django ORM is synchronous
and must stay off the event loop) and turns the result, or the failure, into a reply line.
Nothing may escape as an exception: aiosmtpd would answer a permanent ``500`` (protocol.md
§1.1), telling the sender to give up on mail we merely failed to store.
"""

import asyncio
import functools
import logging
import re
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, connections

from mailhub.logfiles import log_event

from . import services
from .data_reader import DataProblem
from .parsing import header_section
from .poster import LastBusy, post_when_quiet
from .routing import REPLY_TEMPFAIL, too_many_recipients

logger = logging.getLogger("mailhub.inbound")
# Alias changes reach a running listener within this many seconds.
RCPT_CACHE_SECONDS = 5.0
RCPT_CACHE_SIZE = 1000
GROUP_MAX = 50  # messages stored in one transaction at most


# A connection busy within this many seconds is trusted as it is; one idle longer is checked.
HOT_CONNECTION_SECONDS = 1.0
_thread_state = threading.local()


def _heal_connections(*, recheck: bool) -> None:
    """Drop this thread's broken or expired connections, so a database restart heals itself.

    ``recheck`` re-arms Django's health check: a ``SELECT 1`` before the next query, which
    reconnects a connection the server dropped while it was idle. Under load that round trip
    would double the queries of every SMTP command, so hot connections skip it and are checked
    only after an error (the command that saw it answered ``451``; the client retries).
    """
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or (conn.vendor == "sqlite" and not conn.errors_occurred):
            continue  # SQLite: reopening costs more than the work, and it rarely breaks
        expired = conn.close_at is not None and now >= conn.close_at
        if recheck or conn.errors_occurred or expired:
            conn.close_if_unusable_or_obsolete()


def _in_thread(fn, kwargs, hot_seconds: float = 0.0):
    """Run ``fn`` on this worker thread's connections, healing them around it.

    ``hot_seconds``: skip the health check when this thread used the database that recently
    (the SMTP commands' path); 0 checks every time (posting, sweeping: not latency-bound).
    """
    idle = time.monotonic() - getattr(_thread_state, "used_at", 0.0)
    _heal_connections(recheck=idle >= hot_seconds)
    try:
        return fn(**kwargs)
    finally:
        _thread_state.used_at = time.monotonic()
        _heal_connections(recheck=False)


_MESSAGE_ID_HEADER = re.compile(rb"^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)


def message_id_key(raw: bytes) -> bytes | None:
    """The Message-ID header as bytes, whitespace removed and lowercased; None when absent.

    Only for keeping two copies of one message out of concurrent groups, so it errs towards
    finding a clash: the header parser's normalisation is finer, never coarser.
    """
    match = _MESSAGE_ID_HEADER.search(header_section(raw))
    return b"".join(match.group(1).split()).lower() if match else None


# C0 controls, DEL, and the lone surrogates that stand for bytes that are not UTF-8.
_BAD_ADDRESS_CHARS = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")
REPLY_NO_STORAGE = "452 4.3.1 Insufficient system storage, please try again later"
# The replies after the final dot, when the data is refused (RFC 5321 §4.2.5: only then).
DATA_REPLIES = {
    # RFC 3463 §3.7 5.6.0: a content problem, not a syntax error (500) of the command.
    DataProblem.LINE_TOO_LONG: "554 5.6.0 Message refused: a line is longer than 1000 octets "
    "(RFC 5321 section 4.5.3.1.6); encode the body (quoted-printable or base64) and resend",
    DataProblem.TOO_BIG: "552 5.3.4 Message too big for this server",
    # RFC 3463 §3.4 4.3.1: temporary; the sender keeps the message and tries again later.
    DataProblem.NO_STORAGE: REPLY_NO_STORAGE,
}


def envelope_address_problem(address: str, *, command: str, smtputf8: bool) -> str | None:
    """The refusal of a MAIL FROM or RCPT TO address, or None when its characters are fine.

    A control character is never part of an address (RFC 5321 §4.1.2); an address that is not
    ASCII needs the SMTPUTF8 parameter on MAIL (RFC 6531 §3.5), else ``553 5.6.7``.
    """
    if _BAD_ADDRESS_CHARS.search(address):
        # RFC 3463 §3.2: 5.1.7 bad sender address syntax, 5.1.3 bad destination.
        status = "5.1.7" if command == "MAIL" else "5.1.3"
        what = "sender" if command == "MAIL" else "recipient"
        return f"553 {status} Bad {what} address syntax: control characters or invalid UTF-8"
    if not smtputf8 and not address.isascii():
        return "553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531 section 3.5)"
    return None


def _declared_size(mail_options: list[str]) -> int:
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


class InboundHandler:
    def __init__(
        self, *, executor: Executor, process_executor: Executor, stores_at_once: int = 1
    ) -> None:
        self.executor = executor
        # Groups stored at the same time: a second one is routed while the first waits on the
        # database (its commit), which the listener would otherwise spend idle.
        self.stores_at_once = stores_at_once
        # Posting into the chatter runs on its own thread after the 250: the sender waits only
        # for the durable store (spec §4: heavier work follows from the stored row).
        self.process_executor = process_executor
        self._processing: set[asyncio.Future] = set()
        # When RCPT/DATA last waited on the database: posts wait for quiet (inbound.poster).
        shared = getattr(process_executor, "last_busy", None)  # a ctypes double: falsy at 0
        self.last_busy = shared if shared is not None else LastBusy()
        # (delivery, future, Message-ID key) of each message waiting to be stored.
        self._waiting: list[tuple[object, asyncio.Future, bytes | None]] = []
        self._storing = 0  # store tasks running
        # The Message-ID keys of each group being stored, by group.
        self._inflight: dict[int, set[bytes | None]] = {}
        # Accepted addresses, remembered briefly: a burst of mail to support@ costs one lookup.
        self._rcpt_cache: dict[str, tuple[float, object]] = {}

    async def _db(self, fn, **kwargs):
        loop = asyncio.get_running_loop()
        call = functools.partial(_in_thread, fn, kwargs, HOT_CONNECTION_SECONDS)
        self.last_busy.value = time.monotonic()
        try:
            return await loop.run_in_executor(self.executor, call)
        finally:
            self.last_busy.value = time.monotonic()

    async def _receive(self, delivery) -> "services.ReceiveResult":
        """Store a message; messages ending DATA meanwhile are stored in the same transaction.

        Group commit: under load one transaction (and one set of lookups) serves every session
        waiting, instead of one each; alone, a message is stored at once. Up to
        ``stores_at_once`` groups are stored at a time, never two holding the same Message-ID:
        each group's duplicate check must see the other's commit (``_group_take``).
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((delivery, future, message_id_key(delivery.raw)))
        if self._storing < self.stores_at_once:
            self._storing += 1
            loop.create_task(self._store_waiting())
        return await future

    def _group_take(self) -> list:
        """The next group: waiting messages that share no Message-ID with a group in flight.

        A message whose Message-ID could not be read clashes with every other group. What is
        left waits for the next group; the store task in flight takes it when it loops.
        """
        busy: set[bytes | None] = set().union(*self._inflight.values())
        group, left = [], []
        for item in self._waiting:
            key = item[2]
            clash = bool(self._inflight) and (key is None or key in busy or None in busy)
            (left if clash or len(group) >= GROUP_MAX else group).append(item)
        self._waiting = left
        return group

    async def _store_waiting(self) -> None:
        try:
            while group := self._group_take():
                token = id(group)
                self._inflight[token] = {key for _, _, key in group}
                try:
                    results = await self._db(
                        services.inbound_receive_many, deliveries=[d for d, _, _ in group]
                    )
                except Exception as exc:  # noqa: BLE001 - every message of the group gets 451
                    results = [exc] * len(group)
                finally:
                    del self._inflight[token]
                # One hand-off to the poster per group, not per message: each costs the
                # listener a pickle and a pipe write. Stored rows are posted even if their
                # session went away before its 250.
                stored = [
                    pk for r in results if not isinstance(r, Exception) for pk in r.to_process
                ]
                if stored:
                    self._process_later(stored)
                for (_, future, _), result in zip(group, results, strict=True):
                    if future.done():
                        continue  # the session went away meanwhile
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._storing -= 1

    def _process_later(self, ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        kwargs = {"ids": ids, "queued_at": time.monotonic()}
        if self.process_executor is self.executor:
            kwargs["last_busy"] = None  # SQLite: one thread stores and posts; waiting blocks it
        elif isinstance(self.process_executor, ThreadPoolExecutor):
            kwargs["last_busy"] = self.last_busy
        # A posting process reads the counter it was given at start (it is not picklable).
        call = functools.partial(_in_thread, post_when_quiet, kwargs)
        future = loop.run_in_executor(self.process_executor, call)
        self._processing.add(future)
        future.add_done_callback(self._processed)

    def _processed(self, future: asyncio.Future) -> None:
        self._processing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # Stored already: the rows stay unprocessed and the pending sweep retries them.
            logger.error("inbound processing deferred: %s", future.exception())

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        # RFC 2034: enhanced status codes are used only after they are advertised.
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        problem = envelope_address_problem(
            address, command="MAIL", smtputf8=bool(envelope.smtp_utf8)
        )
        if problem:
            return problem
        budget = getattr(server, "budget", None)
        if budget is not None and _declared_size(mail_options) > budget.available():
            # RFC 1870 §6.2: a size we could take, but not now.
            return REPLY_NO_STORAGE
        # A hook that answers must do what aiosmtpd does without one.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        problem = envelope_address_problem(
            address, command="RCPT", smtputf8=bool(envelope.smtp_utf8)
        )
        if problem:
            return problem
        limit = too_many_recipients(
            accepted=len(envelope.rcpt_tos), limit=settings.MAILHUB_SMTPD_MAX_RECIPIENTS
        )
        if limit:
            return limit
        key = address.strip().lower()
        cached = self._rcpt_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            decision = cached[1]
        else:
            try:
                decision = await self._db(services.rcpt_check, address=address)
            except Exception as exc:  # noqa: BLE001 - any lookup failure is temporary
                _log_failure("RCPT", exc, rcpt=address)
                return REPLY_TEMPFAIL
            if decision.accepted:
                now = time.monotonic()
                if len(self._rcpt_cache) >= RCPT_CACHE_SIZE:
                    # Every VERP address is new: drop what expired so the cache stays small.
                    self._rcpt_cache = {k: v for k, v in self._rcpt_cache.items() if v[0] > now}
                self._rcpt_cache[key] = (now + RCPT_CACHE_SECONDS, decision)
        if decision.accepted:
            envelope.rcpt_tos.append(address)
            if not hasattr(envelope, "inbound_rcpts"):
                envelope.inbound_rcpts = {}
            envelope.inbound_rcpts[address] = decision
        return decision.reply

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        delivery = services.Delivery(
            peer=peer,
            mail_from=envelope.mail_from or "",
            rcpts=dict(getattr(envelope, "inbound_rcpts", {})),
            raw=envelope.original_content or b"",
        )
        try:
            result = await self._receive(delivery)
        except Exception as exc:  # noqa: BLE001 - nothing committed: the client keeps the mail
            _log_failure("DATA", exc, rcpt=list(envelope.rcpt_tos))
            return REPLY_TEMPFAIL
        return result.reply

    async def handle_exception(self, error: Exception) -> str:
        # Must be a coroutine: aiosmtpd awaits it (protocol.md §1.1); the session goes on.
        _log_failure("session", error)
        return REPLY_TEMPFAIL


def _log_failure(stage: str, exc: BaseException, **fields) -> None:
    reason = "database unavailable" if isinstance(exc, DatabaseError) else "internal error"
    log_event(
        logger,
        "inbound.refused",
        level=logging.WARNING,
        code=451,
        reason=f"{stage}: {reason}: {type(exc).__name__}: {exc}"[:500],
        **fields,
    )
    if not isinstance(exc, DatabaseError):
        logger.exception("unexpected error in the inbound listener", exc_info=exc)
