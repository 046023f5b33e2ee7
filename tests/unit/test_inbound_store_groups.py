"""Concurrent group stores never hold two copies of one Message-ID (``InboundHandler``)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from inbound.handler import GROUP_MAX, InboundHandler, message_id_key


def raw(message_id: str | None, *, folded: bool = False) -> bytes:
    head = "From: a@customer.test\r\nSubject: hi\r\n"
    if message_id is not None:
        head += (
            "Message-Id:\r\n " + message_id + "\r\n" if folded else f"Message-ID: {message_id}\r\n"
        )
    return (head + "\r\nbody, with\r\nMessage-ID: <not-a-header@x>\r\n").encode()


def test_the_key_is_the_header_lowercased_without_whitespace():
    assert message_id_key(raw("<A.1@Customer.test>")) == b"<a.1@customer.test>"
    assert message_id_key(raw("<A.1@Customer.test>", folded=True)) == b"<a.1@customer.test>"
    assert message_id_key(raw(None)) is None  # the body's line is not a header


@pytest.fixture
def handler():
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield InboundHandler(executor=pool, process_executor=pool, stores_at_once=2)


def waiting(*keys):
    return [(f"delivery-{i}", None, key) for i, key in enumerate(keys)]


def test_with_nothing_in_flight_everything_goes_up_to_the_group_limit(handler):
    handler._waiting = waiting(*[b"<%d@x>" % i for i in range(GROUP_MAX + 3)], None)
    assert len(handler._group_take()) == GROUP_MAX
    assert len(handler._waiting) == 4


def test_a_message_id_in_flight_waits_for_that_group(handler):
    handler._inflight = {1: {b"<same@x>"}}
    handler._waiting = waiting(b"<same@x>", b"<other@x>", None)
    taken = handler._group_take()
    assert [item[2] for item in taken] == [b"<other@x>"]
    # Unreadable Message-IDs clash with everything in flight.
    assert [item[2] for item in handler._waiting] == [b"<same@x>", None]
    handler._inflight = {}
    assert len(handler._group_take()) == 2


def test_a_group_in_flight_with_an_unknown_message_id_blocks_all_others(handler):
    handler._inflight = {1: {None}}
    handler._waiting = waiting(b"<a@x>")
    assert handler._group_take() == []
