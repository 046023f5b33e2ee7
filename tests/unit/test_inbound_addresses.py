"""The listener's fast path for MAIL FROM / RCPT TO addresses gives what aiosmtpd's parser gives."""

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from inbound.server import ConnectionLimits, LimitedSMTP

FAST = LimitedSMTP(object(), limits=ConnectionLimits(total=1, per_ip=1))
FULL = SMTP(object())

CORPUS = [
    "<a@b.c>",
    "<sender1.x@customer.test>",
    " <a@b.c> SIZE=100 BODY=8BITMIME",
    "<a@b.c>\tSIZE=1",
    "<a@b.c> (a comment) SIZE=1",
    "<a@b.c> ",
    "<a@b.c>x",
    "<>",
    "a@b.c",
    '<"q x"@b.c>',
    "<@relay.test:a@b.c>",
    "<a@[192.0.2.1]>",
    "<a..b@c.d>",
    "<.a@b.c>",
    "<a(b)@c.d>",
    "<a+tag=1@b-c.d>",
    "<é@x.test>",
    "<a@b.c",
    "<a@b.c.>",
    "<" + "x" * 65 + "@b.c>",
    "<bounce+n.12.abcdef@mailhub.test>",
]


@pytest.mark.parametrize("arg", CORPUS)
def test_fast_path_matches_the_full_parser(arg):
    assert FAST._getaddr(arg) == FULL._getaddr(arg)


ATOM = st.text(alphabet="abcXYZ019.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
REST = st.sampled_from(["", " ", " SIZE=10", "\tBODY=8BITMIME", " (c) X", "x"])


@settings(max_examples=300, deadline=None)
@given(local=ATOM, domain=ATOM, rest=REST, lead=st.sampled_from(["", " "]))
def test_generated_addresses_parse_the_same_both_ways(local, domain, rest, lead):
    arg = f"{lead}<{local}@{domain}>{rest}"
    assert FAST._getaddr(arg) == FULL._getaddr(arg)
