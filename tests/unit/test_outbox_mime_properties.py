"""Whatever a user, a customer or a stranger typed, the builder writes a mail that reads back.

Mail is built through ``outbox.mime`` (the outbox's own writer) from adversarial subjects,
display names, addresses (IDN domains, non-ASCII local parts), ids and bodies, then parsed with
the standard library's strict ``policy.default``: no defects, the same decoded values, no line
over 998 octets (RFC 5322 §2.1.1), CR and LF only as a pair.
"""

import datetime as dt
import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailhub.msgid import msg_ids
from outbox import mime

# Any character a str can hold in a database row (lone surrogates cannot be stored).
_ANY_CHAR = st.characters(blacklist_categories=("Cs",))
_TEXT = st.text(_ANY_CHAR, max_size=200)
_HOSTILE_TEXT = st.one_of(
    _TEXT,
    st.sampled_from(
        [
            "=?utf-8?q?hello?=",
            "=?utf-8?b?aGVsbG8=?= world",
            "Re: =?iso-8859-1?q?caf=E9?=",
            "x" * 998,
            "ü" * 500,
            "a\r\nBcc: victim@x.test",
            "tab\tand\x00nul\x07bell\x1b",
            "\u2028line\u2029para\x85next",
            "  leading and trailing  ",
        ]
    ),
    st.text(st.sampled_from('ab= ?_"\\()<>,;:@.ü\t'), max_size=120),
    st.text(st.sampled_from("x"), min_size=60, max_size=1200),
)
_ATEXT = st.text(st.sampled_from("abcxyz0189!#$%&'*+-/=?^_`{|}~"), min_size=1, max_size=30)
_LABEL = st.text(st.sampled_from("abcdefghz019"), min_size=1, max_size=20)
_IDN_LABEL = st.text(st.sampled_from("abcüöäßéñ東京бм"), min_size=1, max_size=12)
_DOMAIN = st.lists(st.one_of(_LABEL, _IDN_LABEL), min_size=1, max_size=3).map(
    lambda labels: ".".join(labels) + ".test"
)
_ADDRESS = st.tuples(_ATEXT, _DOMAIN).map(lambda p: f"{p[0]}@{p[1]}")
_ID_PART = st.text(st.sampled_from("abcXYZ019.!#$%&'*+-/=?^_`{|}~"), min_size=1, max_size=40)
_MSG_ID = st.tuples(_ID_PART, _ID_PART).map(lambda p: f"<{p[0]}@{p[1]}>")
_IDS_VALUE = st.lists(
    st.one_of(
        _MSG_ID,
        st.sampled_from(
            [
                "<x-ü@attacker.test>",
                "=?utf-8?q?=3Cx-=C3=BC@attacker.test=3E?=",
                "<a b@c.test>",
                "<" + "y" * 990 + "@long.test>",
                "<no-at-sign>",
                "<ctl\x01@x.test>",
                "junk",
            ]
        ),
    ),
    max_size=8,
).map(" ".join)
_BODY = st.one_of(_TEXT, st.sampled_from([".", "..\n.\nend", "x" * 5000, "a\rb\r\nc\nd"]))

_DATE = dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC)


def _decoded(text: str) -> str:
    """What a header is expected to read back as: on one line, control characters dropped."""
    return " ".join(re.sub("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]", "", text).split())


def _body(text: str) -> str:
    """What a body is expected to read back as: lines end in LF, the last one too."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _content(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def _check_wire_format(data: bytes) -> None:
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")


def _parsed(data: bytes):
    msg = message_from_bytes(data, policy=policy.default)
    assert msg.defects == []
    for name in msg.keys():
        for value in msg.get_all(name):
            assert getattr(value, "defects", ()) == (), (name, value)
    return msg


def _display_name(msg, header: str) -> str:
    """The display name of the first address in ``header``, decoded as RFC 2047 §6.2 says.

    The stdlib's address parser keeps the space between two adjacent encoded words of a name
    (its own writer's long names read back with extra spaces too); the RFC says that space is
    not text. So a name written as encoded words is decoded with ``email.header``, which
    follows the RFC, and checked against the parser's reading apart from those spaces.
    """
    parsed = msg[header].addresses[0].display_name
    raw = dict(msg.raw_items())[header].replace("\r\n", "")
    phrase = raw.rpartition("<")[0].strip()
    if not phrase.startswith("=?"):
        return parsed
    decoded = str(make_header(decode_header(phrase)))
    assert parsed.replace(" ", "") == decoded.replace(" ", "")
    return decoded


def _idna(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_HOSTILE_TEXT,
    name=_HOSTILE_TEXT,
    address=_ADDRESS,
    reply_name=_HOSTILE_TEXT,
    in_reply_to=_IDS_VALUE,
    references=_IDS_VALUE,
    body_text=_BODY,
    body_html=st.one_of(st.just(""), _BODY),
    recipient=_ADDRESS,
)
@example(
    subject="x" * 998,
    name="=?utf-8?q?not_encoded?=",
    address="anna@bücher.test",
    reply_name="",
    in_reply_to="<" + "y" * 990 + "@long.test>",
    references="<ok@a.test> <x-ü@attacker.test>",
    body_text="",
    body_html="",
    recipient="ben@müller.test",
)
def test_built_mail_reads_back_as_given(
    subject, name, address, reply_name, in_reply_to, references, body_text, body_html, recipient
):
    common = mime.build(
        message_id="<abc.def@mailhub.test>",
        from_header=mime.address_text(name, address),
        reply_to=mime.address_text(reply_name, "catchall@mailhub.test"),
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        in_reply_to=in_reply_to,
        references=references,
        system="auto-replied",
        extra={"List-Unsubscribe": "<https://mailhub.test/u/1>"},
        date=_DATE,
    )
    data = mime.with_envelope(
        common, sender="bounce+n1.sig@mailhub.test", recipient=mime.envelope_address(recipient)
    )
    _check_wire_format(data)
    msg = _parsed(data)

    assert str(msg["Subject"]) == _decoded(subject)
    (sender,) = msg["From"].addresses
    assert _display_name(msg, "From") == _decoded(name)
    assert sender.addr_spec == _idna(address)
    (reply_to,) = msg["Reply-To"].addresses
    assert _display_name(msg, "Reply-To") == _decoded(reply_name)
    assert msg["To"].addresses[0].addr_spec == _idna(recipient)
    assert msg["Message-ID"] == "<abc.def@mailhub.test>"
    # Ids a stranger wrote badly are dropped; the good ones stay, in order.
    assert (msg["In-Reply-To"] or "").split() == msg_ids(in_reply_to)
    assert (msg["References"] or "").split() == msg_ids(references)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Return-Path"] is None
    assert msg["List-Unsubscribe"] == "<https://mailhub.test/u/1>"

    assert _content(msg.get_body(("plain",))) == _body(body_text or " ")
    if body_html:
        assert _content(msg.get_body(("html",))) == _body(body_html)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.text(st.sampled_from("=?qQbB_ -utf8isoabc"), min_size=2, max_size=80).map(
        lambda s: f"=?{s}?="
    ),
)
@example(subject="=?utf-8?q?hello?=")
@example(subject="=?UTF-8?B?aGVsbG8=?=")
def test_an_ascii_subject_that_looks_encoded_reads_back_as_typed(subject):
    data = mime.build(
        message_id="<a@mailhub.test>",
        from_header="MailHub <noreply@mailhub.test>",
        subject=subject,
        body_text="x",
        body_html="",
        date=_DATE,
    )
    assert str(_parsed(data)["Subject"]) == _decoded(subject)


@settings(max_examples=40, deadline=None)
@given(
    local=st.text(st.sampled_from("aüößé東"), min_size=1, max_size=10).filter(
        lambda s: not s.isascii()
    ),
    domain=_DOMAIN,
)
def test_an_address_that_needs_smtputf8_is_refused_in_words(local, domain):
    with pytest.raises(mime.BuildError, match=re.escape("SMTPUTF8")) as refused:
        mime.build(
            message_id="<a@mailhub.test>",
            from_header=mime.address_text("Zoë", f"{local}@{domain}"),
            subject="Hello",
            body_text="x",
            body_html="",
        )
    assert refused.value.header == "From"
    with pytest.raises(mime.BuildError, match="SMTPUTF8"):
        mime.envelope_address(f"{local}@{domain}")
