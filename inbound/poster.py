"""Posting accepted mail into the chatter from a process of its own (``runsmtpd`` on PostgreSQL).

A post (contact, record, message, followers) costs milliseconds of Python. Run in the listener's
process it holds the interpreter lock that the event loop needs to answer SMTP clients, and the
answers wait. A second process has a lock of its own; it runs at a lower CPU priority, so on a
busy machine the SMTP side gets the CPU first and on an idle one posts go at full speed.

SMTP goes first in time too: a post waits until the listener has been quiet (no SMTP command
waiting on the database) for ``QUIET_SECONDS``, but never more than ``POST_DELAY_MAX`` seconds
after its message was accepted, so under sustained load posts still keep up
(``post_when_quiet``).

The stored row is the hand-off: if the process dies, its pool starts again and the pending sweep
posts whatever it left (``inbound_process_pending``).
"""

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

logger = logging.getLogger("mailhub.inbound")
POSTER_NICE = 10  # added to the listener's niceness; CPU share about 1/10 under contention
# A burst of mail is answered first and posted right after; no post waits longer than this.
POST_DELAY_MAX = 10.0
QUIET_SECONDS = 0.2


class LastBusy:
    """When an SMTP command last waited on the database (``time.monotonic()``).

    Written by the listener's event loop thread only; a float store needs no lock.
    """

    def __init__(self) -> None:
        self.value = 0.0


_last_busy = None  # in the posting process: the listener's LastBusy, in shared memory


def post_when_quiet(*, ids: list[int], queued_at: float, last_busy=None) -> None:
    """Post ``ids`` once the listener is quiet, or ``POST_DELAY_MAX`` after ``queued_at``.

    Times are ``time.monotonic()``: one clock for every process of the host.
    """
    from .services import inbound_process_many

    last_busy = last_busy if last_busy is not None else _last_busy
    if last_busy is not None:
        while True:
            now = time.monotonic()
            if now - last_busy.value >= QUIET_SECONDS or now - queued_at >= POST_DELAY_MAX:
                break
            time.sleep(0.01)
    inbound_process_many(ids=ids)


def _exit_with_listener(listener_pid: int) -> None:
    # A listener killed with SIGKILL cannot stop its poster, and the pool's queue never reports
    # its end (the poster holds both ends of the pipe). Whatever the poster was posting stays
    # unprocessed in the database; the next listener's pending sweep posts it.
    while os.getppid() == listener_pid:
        time.sleep(1.0)
    os._exit(0)


def _poster_start(last_busy) -> None:
    global _last_busy
    _last_busy = last_busy
    threading.Thread(
        target=_exit_with_listener, args=(os.getppid(),), name="poster-watch", daemon=True
    ).start()
    os.nice(POSTER_NICE)
    # Ctrl-C and SIGTERM reach the whole process group: the listener decides when posting stops
    # (after the posts already queued), so the poster ignores them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import django

    django.setup()


# spawn, not fork: the listener has threads (event loop, database) that fork would copy
# mid-flight; the child sets Django up from the same environment instead.
_SPAWN = multiprocessing.get_context("spawn")


def _poster_pool(last_busy) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1, mp_context=_SPAWN, initializer=_poster_start, initargs=(last_busy,)
    )


class PosterProcess(Executor):
    """One posting process, first in first out, started again if it dies.

    Submitted callables must be picklable (module-level functions and plain arguments).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The listener's LastBusy, readable from the posting process (no lock: one writer).
        self.last_busy = _SPAWN.Value("d", 0.0, lock=False)
        self._pool = _poster_pool(self.last_busy)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                logger.warning("inbound: the posting process died; starting a new one")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = _poster_pool(self.last_busy)
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
