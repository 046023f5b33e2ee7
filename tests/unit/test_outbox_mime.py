"""The hand-written MIME reads back as the mail it describes (checked with the stdlib parser)."""

import datetime as dt
from email import message_from_bytes, policy

from outbox import mime


def _parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def _mail(**overrides) -> bytes:
    fields = {
        "message_id": "<abc@mailhub.test>",
        "from_header": "Zoë Müller <notifications@mailhub.test>",
        "subject": "Überweisung für Rechnung INV/2026/0001 – bitte prüfen",
        "body_text": "Hallo,\nbitte prüfen.\n.\nEnde",
        "body_html": "<p>Hallo, <b>bitte prüfen</b>.</p>",
        "reply_to": "catchall@mailhub.test",
        "in_reply_to": "<first@mailhub.test>",
        "references": " ".join(f"<ref{i}.token.token@mailhub.test>" for i in range(30)),
        "system": True,
        "extra": {"List-Unsubscribe": "<https://mailhub.test/u/1>", "To": "evil@x.test"},
        "date": dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
    }
    fields.update(overrides)
    return mime.with_envelope(
        mime.build(**fields), sender="bounce+n1.sig@mailhub.test", recipient="anna@customer.test"
    )


def test_headers_and_both_bodies_round_trip():
    data = _mail()
    msg = _parse(data)
    assert msg["Subject"] == "Überweisung für Rechnung INV/2026/0001 – bitte prüfen"
    assert msg["From"].addresses[0].display_name == "Zoë Müller"
    assert msg["From"].addresses[0].addr_spec == "notifications@mailhub.test"
    assert msg["To"] == "anna@customer.test"
    assert msg["Return-Path"] is None  # the envelope carries it (RFC 5321 §4.4)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Unsubscribe"] == "<https://mailhub.test/u/1>"
    assert msg.get_all("To") == ["anna@customer.test"]  # extra headers cannot add recipients
    assert msg["References"].split() == [f"<ref{i}.token.token@mailhub.test>" for i in range(30)]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.splitlines() == ["Hallo,", "bitte prüfen.", ".", "Ende"]
    assert "<b>bitte prüfen</b>" in html
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert data.isascii()


def test_newlines_cannot_inject_headers():
    msg = _parse(_mail(subject="Hi\r\nBcc: victim@x.test"))
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Hi Bcc: victim@x.test"


def test_text_only_mail():
    msg = _parse(_mail(body_html=""))
    assert msg.get_content_type() == "text/plain"
    assert "bitte prüfen" in msg.get_content()
