"""Reading the DATA of one message into one buffer, within a size and a shared memory budget.

aiosmtpd keeps every line of a message as a ``bytearray`` in a list until the final dot: each
costs some 80 bytes of object on top of its text, so 12 MB of empty lines held 1.1 GB
(docs/reliability.md, "Hostile input"). ``DataReader`` is fed whatever the socket delivers and
appends the un-stuffed text to a single ``bytearray``; no per-line object outlives its chunk.

It also decides, while reading, the three reasons to refuse a message after its final dot
(RFC 5321 §4.2.5: the reply waits for the end of the data): a line over 1,000 octets
(§4.5.3.1.6), more than the advertised ``SIZE`` (RFC 1870), or no room left in the budget
shared by every connection (``MemoryBudget``).
"""

from enum import StrEnum

# RFC 5321 §4.5.3.1.6: a text line is at most 1,000 octets, its CRLF included.
LINE_MAX = 1000
_END = b"\r\n.\r\n"


class DataProblem(StrEnum):
    LINE_TOO_LONG = "line too long"
    TOO_BIG = "too big"
    NO_STORAGE = "no storage"


class MemoryBudget:
    """Bytes of message data the listener may hold at once, over all its connections.

    Used from the event loop's thread only, so plain integers need no lock.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def available(self) -> int:
        return max(self.total - self.used, 0)

    def reserve(self, size: int) -> bool:
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(self.used - size, 0)


class DataReader:
    """The text of one DATA command, fed chunk by chunk (``feed``).

    ``content`` is the message as the client meant it: dot-stuffing removed (RFC 5321 §4.5.2),
    the final ``.`` line not included. After a problem, nothing more is kept: the rest of the
    data is only scanned for its end.
    """

    def __init__(self, *, size_limit: int | None, budget: MemoryBudget) -> None:
        self.size_limit = size_limit
        self.budget = budget
        self.content = bytearray()
        self.problem: DataProblem | None = None
        self.reserved = 0
        self._wire = 0  # octets received so far, stuffing included (what SIZE counts)
        self._partial = b""  # the unfinished last line
        self._at_line_start = True  # does ``_partial`` start a line?

    def feed(self, chunk: bytes) -> bytes | None:
        """Take ``chunk``; at the end of the data, return what followed the final dot."""
        data = self._partial + chunk
        if self._at_line_start and data.startswith(b".\r\n"):
            end, resume = 0, 3  # the lone dot right after the previous line
        else:
            found = data.find(_END)
            end, resume = (found + 2, found + 5) if found >= 0 else (-1, -1)
        if end >= 0:
            self._take(data[:end])
            self._partial = b""
            return data[resume:]
        cut = data.rfind(b"\r\n") + 2 if b"\r\n" in data else 0
        if cut:
            self._take(data[:cut])
            self._at_line_start = True
        rest = data[cut:]
        if len(rest) > LINE_MAX:
            # An endless line: keep its last octet only, in case it is the CR of its CRLF.
            self._count(len(rest) - 1)
            self._fail(DataProblem.LINE_TOO_LONG)
            rest, self._at_line_start = rest[-1:], False
        self._partial = rest
        return None

    def release(self) -> None:
        """Give the budget back (the message has been handed on, or refused)."""
        self.budget.release(self.reserved)
        self.reserved = 0

    def _count(self, size: int) -> None:
        self._wire += size
        if self.size_limit and self._wire > self.size_limit:
            self._fail(DataProblem.TOO_BIG)

    def _fail(self, problem: DataProblem) -> None:
        if self.problem is None:
            self.problem = problem
        self.content = bytearray()
        self.release()

    def _take(self, lines: bytes) -> None:
        """Complete lines (each ending in CRLF), the first one starting a line."""
        if not lines:
            return
        self._count(len(lines))
        if self.problem is not None:
            return
        # One list per chunk, freed at once: the longest line of the chunk (C speed).
        if max(map(len, lines.split(b"\r\n"))) > LINE_MAX - 2:
            self._fail(DataProblem.LINE_TOO_LONG)
            return
        if not self.budget.reserve(len(lines)):
            self._fail(DataProblem.NO_STORAGE)
            return
        self.reserved += len(lines)
        # RFC 5321 §4.5.2: a line starting with a period loses that period.
        if self._at_line_start and lines.startswith(b"."):
            lines = lines[1:]
        self.content += lines.replace(b"\r\n.", b"\r\n")
