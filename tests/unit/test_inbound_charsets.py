"""A charset name from outside is only a hint: a bad one never stops a mail being read."""

import pytest

from inbound.dsn import bounce_parse
from inbound.parsing import body_parse, message_object


@pytest.mark.parametrize("charset", ["us-a\x00scii", "no-such-charset", "utf-8\x00", ""])
def test_a_body_with_a_broken_charset_is_read_as_text(charset):
    raw = f'Content-Type: text/plain; charset="{charset}"\r\n\r\nHello, caf\xe9.\r\n'.encode(
        "latin-1"
    )
    parsed = body_parse(raw)
    assert parsed.text.startswith("Hello, caf")


def test_a_bounce_with_a_nul_in_its_charset_is_still_read():
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.test>\r\n"
        b"Subject: Mail delivery failed\r\n"
        b'Content-Type: text/plain; charset="us-\x00ascii"\r\n\r\n'
        b"The following address(es) failed:\r\n\r\n  bob@customer.test\r\n"
        b"    550 5.1.1 <bob@customer.test>: User unknown\r\n"
    )
    report = bounce_parse(message_object(raw))
    assert report is not None
