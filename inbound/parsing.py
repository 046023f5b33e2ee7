"""Reading inbound messages: headers for routing, bodies and attachments for the chatter.

Everything here takes raw bytes from the network and never raises: broken MIME (unknown
charsets, truncated parts, missing boundaries, undecodable headers) degrades to the best text we
can get. The stdlib ``compat32`` policy is used on purpose: it never raises while accessing a
header or a payload, where ``policy.default`` raises on some malformed values.
"""

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from mailhub.msgid import msg_ids

# RFC 3834 / common practice: these mark mail written by a program, which must never trigger
# another automatic mail (spec §4 Loops).
AUTOMATIC_PRECEDENCE = {"bulk", "junk", "auto_reply", "auto-reply"}
MAX_REFERENCES = 50
MAX_PARTS = 200
# Content-ID is only matched against the HTML of the same mail (cid: links), never sent on:
# kept lenient, as mailers write ids without "@" there (Gmail's "<ii_…>").
_CONTENT_ID = re.compile(r"<[^<>\s]{1,990}>")
_CRLF = re.compile(r"[\r\n\t]+")
_END_OF_HEADERS = re.compile(rb"\n\r?\n")


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as text on one line ("" when absent); never raises."""
    if value is None:
        return ""
    try:
        parts = decode_header(value)
        if any(charset == "unknown-8bit" for _, charset in parts):
            # Raw 8-bit bytes in a header (SMTPUTF8, RFC 6532): UTF-8, the only charset that
            # RFC allows there; Latin-1 for the older senders that send it without saying so.
            text = "".join(_raw_header_text(part) for part, _ in parts)
        else:
            text = str(make_header(parts))
    except Exception:  # noqa: BLE001 - any malformed encoded word: keep the raw text
        text = str(value)
    # Decoded words can contain newlines (header injection if reused): one line only. NUL is
    # never valid in a header (RFC 5322 §2.2) and no database text column can hold it.
    return _CRLF.sub(" ", text.replace("\x00", "")).strip()


def _raw_header_text(part: bytes | str) -> str:
    if isinstance(part, str):
        return part
    try:
        return part.decode("utf-8")
    except UnicodeDecodeError:
        return part.decode("latin-1")


def message_ids(value: str) -> list[str]:
    """The valid ``<id>`` tokens of a Message-ID, In-Reply-To or References header, in order.

    Checked where they enter (``mailhub.msgid``): an id that decodes to non-ASCII, holds spaces
    or control characters, or is over-long is dropped, so it is never stored, never routes a
    thread and never reaches a mail we send; the valid ids around it still thread the mail.
    """
    return msg_ids(value)


def normalize_address(address: str) -> str:
    """``"Name" <A@B.test>`` or ``<a@b.test>`` → ``a@b.test`` ("" for the null path).

    NUL is dropped, as in headers: no address holds it and no database text column can.
    """
    address = (address or "").replace("\x00", "")
    _, addr = parseaddr(address)
    addr = addr or address.strip().strip("<>")
    return addr.strip().lower()


@dataclass(frozen=True)
class HeaderFacts:
    """What routing needs, read from the headers only (cheap; no body decoding)."""

    message_id: str
    subject: str
    from_name: str
    from_email: str
    in_reply_to: list[str]
    references: list[str]
    automatic: bool
    is_dsn: bool
    from_mailer_daemon: bool


def synthetic_message_id(raw: bytes) -> str:
    """A stable Message-ID for mail without one, so a retried delivery is seen as a duplicate."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"


def _header(msg: EmailMessage, name: str) -> str:
    try:
        return decode_header_value(msg.get(name))
    except Exception:  # noqa: BLE001
        return ""


def header_section(raw: bytes) -> bytes:
    """``raw`` up to the blank line that ends its headers (all of it when there is none).

    Routing reads headers only; handing the parser just this spares it the body, which it would
    otherwise read line by line (most of the cost for an ordinary message).
    """
    end = _END_OF_HEADERS.search(raw)
    return raw[: end.end()] if end else raw


def header_facts(raw: bytes, *, null_sender: bool = False) -> HeaderFacts:
    """Parse the header block of ``raw``; a mail without headers gives empty facts."""
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(header_section(raw or b""))
    except Exception:  # noqa: BLE001 - the parser is lenient; this is belt and braces
        msg = EmailMessage()
    ids = message_ids(_header(msg, "Message-ID"))
    message_id = ids[0] if ids else synthetic_message_id(raw or b"")
    from_name, from_email = "", ""
    try:
        pairs = getaddresses([_header(msg, "From")])
        if pairs:
            from_name, from_email = pairs[0]
    except Exception:  # noqa: BLE001
        pass
    from_email = from_email.strip().lower()
    auto_submitted = _header(msg, "Auto-Submitted").lower()
    precedence = _header(msg, "Precedence").lower()
    content_type = _header(msg, "Content-Type").lower()
    is_dsn = content_type.startswith("multipart/report") and "delivery-status" in content_type
    mailer_daemon = from_email.startswith(("mailer-daemon@", "postmaster@")) or (
        from_email in ("mailer-daemon", "postmaster")
    )
    automatic = (
        null_sender
        or (bool(auto_submitted) and not auto_submitted.startswith("no"))
        or precedence in AUTOMATIC_PRECEDENCE
        or bool(_header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"))
    )
    return HeaderFacts(
        message_id=message_id[:998],
        subject=_header(msg, "Subject")[:998],
        from_name=from_name.strip()[:200],
        from_email=from_email[:254],
        in_reply_to=message_ids(_header(msg, "In-Reply-To"))[:MAX_REFERENCES],
        # The newest references are at the end (RFC 5322 §3.6.4); keep those when capping.
        references=message_ids(_header(msg, "References"))[-MAX_REFERENCES:],
        automatic=automatic,
        is_dsn=is_dsn,
        from_mailer_daemon=mailer_daemon,
    )


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


@dataclass
class ParsedBody:
    html: str = ""
    text: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    defects: int = 0


def message_object(raw: bytes) -> EmailMessage:
    """The whole message as a stdlib object (for bounce processing); never raises."""
    try:
        return message_from_bytes(raw or b"", policy=compat32)
    except Exception:  # noqa: BLE001
        return EmailMessage()


def _decode_payload(part: EmailMessage) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - e.g. broken base64 padding
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def _text_of(part: EmailMessage, payload: bytes) -> str:
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError, TypeError):
            continue
    # Latin-1 maps every byte: the text may look odd but nothing is lost or refused.
    return payload.decode("latin-1")


def _filename(part: EmailMessage) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:  # noqa: BLE001
        name = ""
    if isinstance(name, tuple):  # RFC 2231 value compat32 did not collapse
        name = name[2] if len(name) > 2 else ""
    name = decode_header_value(name)
    # A file name from outside is only a label: no directories, no control characters.
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"[\x00-\x1f]+", "_", name).strip(" .")
    return name[:200]


def body_parse(raw: bytes) -> ParsedBody:
    """Text, HTML and attachments of a message, as well as broken MIME allows."""
    body = ParsedBody()
    msg = message_object(raw)
    body.defects = len(getattr(msg, "defects", []) or [])
    html_parts: list[str] = []
    text_parts: list[str] = []
    try:
        parts = list(msg.walk())[:MAX_PARTS]
    except Exception:  # noqa: BLE001 - pathological nesting
        parts = [msg]
    for index, part in enumerate(parts):
        try:
            if part.is_multipart():
                continue
            ctype = (part.get_content_type() or "text/plain").lower()
            disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
            filename = _filename(part)
            payload = _decode_payload(part)
            is_body_text = ctype in ("text/plain", "text/html") and not filename
            if is_body_text and disposition != "attachment":
                target = html_parts if ctype == "text/html" else text_parts
                target.append(_text_of(part, payload))
                continue
            if ctype == "message/delivery-status" or not payload:
                continue
            content_id = _CONTENT_ID.findall(decode_header_value(part.get("Content-ID")))
            body.attachments.append(
                ParsedAttachment(
                    filename=filename or f"part-{index}.{ctype.rsplit('/', 1)[-1][:10]}",
                    content_type=ctype[:255],
                    content=payload,
                    content_id=content_id[0].strip("<>") if content_id else "",
                    inline=disposition == "inline" or bool(content_id),
                )
            )
        except Exception:  # noqa: BLE001 - one broken part never loses the others
            body.defects += 1
    body.html = "\n".join(html_parts)
    body.text = "\n".join(text_parts)
    return body
