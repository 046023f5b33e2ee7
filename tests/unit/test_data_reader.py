"""``DataReader``: the text of DATA, whatever chunks the socket cuts it into (RFC 5321 §4.5.2)."""

from hypothesis import given
from hypothesis import strategies as st

from inbound.data_reader import DataProblem, DataReader, MemoryBudget

# Lines without CRLF inside (bare CR and LF allowed: they are text, not line ends).
LINES = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r\n", b"\r")),
    max_size=20,
)


def stuffed(lines: list[bytes]) -> bytes:
    """What a client sends: each line ending in CRLF, a leading dot doubled, then the end."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


def feed(wire: bytes, cuts: list[int], reader: DataReader) -> bytes | None:
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for start, end in zip(points, points[1:], strict=False):
        rest = reader.feed(wire[start:end])
        if rest is not None:
            return rest + wire[end:]
    return None


@given(lines=LINES, after=st.binary(max_size=20), cuts=st.lists(st.integers(0, 10_000)))
def test_any_chunking_gives_the_lines_back_and_what_followed_the_end(lines, after, cuts):
    reader = DataReader(size_limit=None, budget=MemoryBudget(1 << 20))
    rest = feed(stuffed(lines) + b".\r\n" + after, cuts, reader)
    assert rest == after
    assert reader.problem is None
    assert bytes(reader.content) == b"".join(line + b"\r\n" for line in lines)


@given(cuts=st.lists(st.integers(0, 10_000)), length=st.integers(999, 3000))
def test_a_line_over_1000_octets_is_a_problem_and_the_end_is_still_found(cuts, length):
    budget = MemoryBudget(1 << 20)
    reader = DataReader(size_limit=None, budget=budget)
    rest = feed(b"ok\r\n" + b"x" * length + b"\r\n.\r\nQUIT\r\n", cuts, reader)
    assert rest == b"QUIT\r\n"
    assert reader.problem == DataProblem.LINE_TOO_LONG
    assert budget.used == 0 and not reader.content


def test_the_budget_is_shared_and_given_back():
    budget = MemoryBudget(100)
    first = DataReader(size_limit=None, budget=budget)
    second = DataReader(size_limit=None, budget=budget)
    assert first.feed(b"a" * 60 + b"\r\n") is None
    assert second.feed(b"b" * 60 + b"\r\n.\r\n") == b""
    assert second.problem == DataProblem.NO_STORAGE
    first.release()
    assert budget.used == 0
    third = DataReader(size_limit=10, budget=budget)
    assert third.feed(b"c" * 20 + b"\r\n.\r\n") == b""
    assert third.problem == DataProblem.TOO_BIG
