"""Reading inbound messages: headers for routing, bodies and attachments for the chatter.

Everything here takes raw bytes from the network and never raises: broken MIME (unknown
charsets, truncated parts, missing boundaries, undecodable headers) degrades to the best text we
can get. The stdlib ``compat32`` policy is used on purpose: it never raises while accessing a
header or a payload, where ``policy.default`` raises on some malformed values.
"""

import hashlib
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from mailhub.msgid import msg_ids

# RFC 3834 / common practice: these mark mail written by a program, which must never trigger
# another automatic mail (spec §4 Loops).
AUTOMATIC_PRECEDENCE = {"bulk", "junk", "auto_reply", "auto-reply"}
MAX_REFERENCES = 50
# Caps of the MIME walk, applied while walking (``message_object``): past them the work stops
# and the message says so ("content truncated: …"); the raw source is kept whole.
MAX_PARTS = 200
MAX_DEPTH = 10  # multiparts and message/rfc822 inside each other
MAX_HEADERS = 500  # header fields per part
MAX_HEADER_BYTES = 256 * 1024  # header block per part
MAX_TEXT_CHARS = 2_000_000  # text and HTML of the body, each
MAX_REPORT_BYTES = 256 * 1024  # one message/delivery-status part (RFC 3464)
# Content-ID is only matched against the HTML of the same mail (cid: links), never sent on:
# kept lenient, as mailers write ids without "@" there (Gmail's "<ii_…>").
_CONTENT_ID = re.compile(r"<[^<>\s]{1,990}>")
_CRLF = re.compile(r"[\r\n\t]+")
_END_OF_HEADERS = re.compile(rb"\n\r?\n")
# A line that neither starts a header field nor continues one (the stdlib's headerRE).
_NOT_A_HEADER_LINE = re.compile(rb"^(?![\x21-\x39\x3b-\x7e]+:|[ \t]|From |\Z)", re.M)
_FIELD_START = re.compile(rb"\n(?=[^ \t\r\n])")  # the start of a header field but the first


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
    head = raw[: end.end()] if end else raw
    # Within the caps of the MIME walk: 100,000 header fields took 3 s before the 250.
    return _header_cap(head)[0]


def _header_cap(head: bytes) -> tuple[bytes, str]:
    """``head`` cut to ``MAX_HEADER_BYTES`` and ``MAX_HEADERS`` fields, and why ("" if not)."""
    reason = ""
    if len(head) > MAX_HEADER_BYTES:
        reason = f"a header block over {MAX_HEADER_BYTES:,} bytes"
        head = head[: head.rfind(b"\n", 0, MAX_HEADER_BYTES) + 1]
    # Fields start at a line that does not begin with white space (RFC 5322 §2.2.3).
    for count, match in enumerate(_FIELD_START.finditer(head), start=2):
        if count > MAX_HEADERS:
            return head[: match.start() + 1], f"more than {MAX_HEADERS} header fields in a part"
    return head, reason


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
    truncated: list[str] = field(default_factory=list)  # what the caps cut, for the reader


class _Walk:
    """What one walk has spent: parts made, and what it cut."""

    def __init__(self) -> None:
        self.parts = 0
        self.truncated: list[str] = []

    def cut(self, reason: str) -> None:
        if reason not in self.truncated:
            self.truncated.append(reason)


def _header_block(raw: bytes, walk: _Walk) -> tuple[bytes, bytes]:
    """(header block within the caps, body) of one part."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    end = _END_OF_HEADERS.search(raw)
    head, body = (raw[: end.start() + 1], raw[end.end() :]) if end else (raw, b"")
    head, reason = _header_cap(head)
    if reason:
        walk.cut(reason)
    not_header = _NOT_A_HEADER_LINE.search(head)
    if not_header is not None:
        # As the stdlib parser does: a line that is no header field starts the body.
        return head[: not_header.start()], raw[not_header.start() :]
    return head, body


def _boundary_lines(body: bytes, boundary: bytes):
    """(start, end, is_close) of each delimiter line of ``boundary`` in ``body`` (RFC 2046 §5.1.1).

    ``start`` is where the CRLF before the delimiter begins, ``end`` past the delimiter line.
    """
    delimiter = re.compile(rb"\n--" + re.escape(boundary) + rb"(--)?[ \t]*(?=\r?\n|$)")
    text = b"\n" + body  # the first delimiter may open the body
    for match in delimiter.finditer(text):
        start = match.start() - 1  # in ``body``
        if start > 0 and body[start - 1 : start] == b"\r":
            start -= 1
        end = match.end() - 1
        end += 2 if body[end : end + 2] == b"\r\n" else 1 if body[end : end + 1] == b"\n" else 0
        yield max(start, 0), end, bool(match.group(1))


def _part(raw: bytes, depth: int, walk: _Walk) -> EmailMessage:
    walk.parts += 1
    head, body = _header_block(raw, walk)
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    except Exception:  # noqa: BLE001 - the parser is lenient; this is belt and braces
        msg = EmailMessage()
    ctype = (msg.get_content_type() or "").lower()
    if ctype == "message/delivery-status":
        return _delivery_status_part(head, body, walk)
    if ctype.startswith("multipart/") or ctype == "message/rfc822":
        if depth >= MAX_DEPTH:
            walk.cut(f"parts nested deeper than {MAX_DEPTH}")
            msg.set_payload("")
            return msg
        if ctype == "message/rfc822":
            msg.set_payload([_part(body, depth + 1, walk)])
            return msg
        boundary = msg.get_boundary()
        if boundary:
            msg.set_payload(_children(body, boundary, depth, walk))
            return msg
    if ctype.startswith("text/") and len(body) > MAX_TEXT_CHARS:
        # Shown as text, never all of it: cut before decoding (an attachment keeps its bytes).
        disposition = str(msg.get("Content-Disposition", "")).lower()
        if not disposition.startswith("attachment"):
            walk.cut(f"{ctype} part over {MAX_TEXT_CHARS:,} bytes")
            body = body[:MAX_TEXT_CHARS]
    # A leaf: its text as the parser would keep it (bytes above 127 as surrogates).
    msg.set_payload(body.decode("ascii", "surrogateescape"))
    return msg


def _delivery_status_part(head: bytes, body: bytes, walk: _Walk) -> EmailMessage:
    """A DSN report part, split into its header blocks as the stdlib does (RFC 3464 §2.1).

    The generator (``as_bytes``) and the DSN reader expect those blocks, not one string; a
    report is a few hundred bytes, so parsing it whole costs nothing once it is capped.
    """
    if len(body) > MAX_REPORT_BYTES:
        walk.cut(f"delivery-status part over {MAX_REPORT_BYTES:,} bytes")
        body = body[:MAX_REPORT_BYTES]
    separator = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    try:
        return BytesParser(policy=compat32).parsebytes(head + separator + body)
    except Exception:  # noqa: BLE001 - the parser is lenient; this is belt and braces
        msg = EmailMessage()
        msg.set_payload(body.decode("ascii", "surrogateescape"))
        return msg


def _children(body: bytes, boundary: str, depth: int, walk: _Walk) -> list[EmailMessage]:
    children: list[EmailMessage] = []
    opened_at = None
    raw_boundary = boundary.encode("ascii", "surrogateescape")
    for start, end, is_close in _boundary_lines(body, raw_boundary):
        if opened_at is not None:
            if walk.parts >= MAX_PARTS:
                walk.cut(f"more than {MAX_PARTS} MIME parts")
                return children
            children.append(_part(body[opened_at:start], depth + 1, walk))
        if is_close:
            return children
        opened_at = end
    if opened_at is not None and walk.parts < MAX_PARTS:
        children.append(_part(body[opened_at:], depth + 1, walk))  # no closing delimiter
    return children


def message_object(raw: bytes) -> EmailMessage:
    """The whole message as a stdlib (compat32) object, built within the caps; never raises.

    The stdlib parser keeps every line of every part as an object of its own and has no limit
    on parts or headers: 400,000 tiny parts took 81 s. Here each part is cut out of the bytes
    with one search for its boundary and only its header block goes to the parser, so the cost
    follows the parts kept, not the lines sent. ``msg.truncated`` lists what was cut.
    """
    walk = _Walk()
    try:
        msg = _part(raw or b"", 0, walk)
    except Exception:  # noqa: BLE001
        msg = EmailMessage()
    msg.truncated = walk.truncated
    return msg


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
        except (LookupError, ValueError, TypeError):  # ValueError: a NUL in the name
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
    body.truncated = list(getattr(msg, "truncated", []))
    html_parts: list[str] = []
    text_parts: list[str] = []
    try:
        parts = list(msg.walk())[:MAX_PARTS]
    except Exception:  # noqa: BLE001 - belt and braces: the walk is bounded
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
    body.html = _capped("\n".join(html_parts), body.truncated, "HTML")
    body.text = _capped("\n".join(text_parts), body.truncated, "text")
    if body.truncated:
        # Said where the reader looks: the body shown in the chatter.
        note = "content truncated: " + "; ".join(body.truncated)
        body.text = f"{body.text}\n\n[{note}]" if body.text or not body.html else body.text
        if body.html:
            body.html += f"<p>[{note}]</p>"
    return body


def _capped(text: str, truncated: list[str], what: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    truncated.append(f"{what} over {MAX_TEXT_CHARS:,} characters")
    return text[:MAX_TEXT_CHARS]
