"""Reading bounce messages: which recipients failed, why, and which mail of ours it was.

Pure: takes an ``email.message.Message`` and returns a ``BounceReport``; no database, no Django.

Standard delivery status notifications (RFC 3464 inside an RFC 6522 ``multipart/report``) are
read field by field. Everything else (Exim's plain text, qmail, old Exchange, Yahoo, ...) goes
through flufl.bounce, Mailman's detector library, which knows those formats; we only add the
diagnostic line and the original Message-ID it does not report. The DSN is tried first because
running flufl.bounce's heuristics on a DSN can match addresses in the quoted original
(flufl.bounce issue #12).
"""

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr

from flufl.bounce import all_failures

from chatter.html_text import html_to_text

# Action values of RFC 3464 §2.3.3.
FAILED = "failed"
DELAYED = "delayed"

# Severities: what a recipient's report means for us.
HARD = "hard"  # permanent: the address does not work; counts toward the blacklist
SOFT = "soft"  # the mail failed, but the address may work tomorrow (full, policy, expired)
DELAY = "delayed"  # still being retried: not a bounce (RFC 3464 §2.3.3 "delayed")
NONE = "none"  # delivered, relayed, expanded: nothing went wrong

# RFC 3463 §3: the subject.detail parts users meet most, to say what a status means.
_STATUS_TEXT = {
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.6": "destination mailbox has moved",
    "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.4": "message too big for system",
    "4.1": "no answer from host",
    "4.2": "bad connection",
    "4.4": "unable to route",
    "4.7": "delivery time expired",
    "7.1": "delivery not authorized, message refused",
    "7.26": "multiple authentication checks failed",
}

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# An SMTP reply in free text: "550 5.1.1 <x@y>: ..." or "550-5.1.1 ..." or "550 Mailbox ...".
_REPLY_RE = re.compile(r"(?<![\d.:/-])([45]\d\d)[ -](?:([45]\.\d{1,3}\.\d{1,3})\b)?")
_MESSAGE_ID_RE = re.compile(r"^(?:message-id|x-microsoft-original-message-id):\s*(<[^>\s]+>)", re.I)
# Where non-standard bounces start quoting the original message (Exim, qmail, Sendmail...).
_COPY_MARKERS = re.compile(
    r"^\s*(-+ ?this is a copy of|-+ ?below this line is a copy|-+ ?original message|"
    r"-+ ?the header of the original message|original message follows)",
    re.I,
)
REASON_TEXT_LIMIT = 1500


@dataclass(frozen=True)
class RecipientReport:
    """One recipient block of a DSN (RFC 3464 §2.3), or what flufl.bounce found for an address."""

    address: str  # Final-Recipient, normalised (lower case, no "rfc822;")
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str = ""  # Diagnostic-Code, unfolded, e.g. "smtp; 550 5.1.1 <x@y>: User unknown"
    original_recipient: str = ""
    remote_mta: str = ""
    # True when nothing in the bounce said this (a VERP bounce nobody could read): never hard.
    assumed: bool = False

    @property
    def severity(self) -> str:
        """hard / soft / delayed / none, after protocol.md §3.3.

        A failed 5.x.x is hard, except mailbox full (X.2.2, which RFC 3463 calls transient
        although many MTAs send it with 5) and policy blocks (5.7.x: a spam filter refusing one
        mail says nothing about the address). A failed 4.x.x is a mail that expired in a queue.
        """
        if self.action == DELAYED:
            return DELAY
        if self.action != FAILED:
            return NONE
        if self.assumed:
            return SOFT
        if self.status.startswith("5.") and not (
            self.status.startswith("5.2.2") or self.status.startswith("5.7.")
        ):
            return HARD
        return SOFT

    @property
    def is_bounce(self) -> bool:
        """The mail did not reach this recipient and will not (hard or soft)."""
        return self.severity in (HARD, SOFT)

    @property
    def status_text(self) -> str:
        match = _STATUS_RE.search(self.status)
        if not match:
            return ""
        kind = {"2": "success", "4": "temporary failure", "5": "permanent failure"}[match[1]]
        meaning = _STATUS_TEXT.get(f"{match[2]}.{match[3]}")
        return f"{kind}: {meaning}" if meaning else kind


@dataclass(frozen=True)
class BounceReport:
    """What a bounce message says."""

    format: str  # "dsn" (RFC 3464), the flufl.bounce detector family ("non-standard"), or ""
    reporting_mta: str = ""
    recipients: tuple[RecipientReport, ...] = ()
    original_message_id: str = ""
    # The original's In-Reply-To and References, to find our message when the mail itself is
    # gone (odoo-behaviour §5): a resent notification replies to the message it carries.
    original_in_reply_to: str = ""
    original_references: tuple[str, ...] = ()
    human_text: str = ""  # the reporting MTA's own words, trimmed
    from_mailer_daemon: bool = False
    subject: str = ""

    @property
    def failed(self) -> list[RecipientReport]:
        return [r for r in self.recipients if r.is_bounce]

    @property
    def delayed(self) -> list[RecipientReport]:
        return [r for r in self.recipients if r.severity == DELAY]

    @property
    def looks_like_bounce(self) -> bool:
        """Recognised by form (odoo-behaviour §5 ``_detect_is_bounce``), whatever was parsed."""
        return self.format == "dsn" or bool(self.recipients) or self.from_mailer_daemon

    def reason_for(self, recipient: RecipientReport) -> str:
        """The failure reason shown in the sending-failures dialog, for one recipient.

        Status and its meaning, the remote server's reply (Diagnostic-Code) and the reporting
        MTA's own words, so the user can tell a typo from a full mailbox.
        """
        lines = [f"Bounced: the mail to {recipient.address} was not delivered."]
        status = f"Status: {recipient.status}" if recipient.status else "Status: unknown"
        if recipient.status_text:
            status += f" ({recipient.status_text})"
        lines.append(status)
        if recipient.diagnostic:
            lines.append(f"Diagnostic-Code: {recipient.diagnostic}")
        if recipient.remote_mta:
            lines.append(f"Remote-MTA: {recipient.remote_mta}")
        if self.reporting_mta:
            lines.append(f"Reported by: {self.reporting_mta}")
        if self.human_text:
            lines.extend(["", self.human_text])
        return "\n".join(lines)


def _unfold(value: object) -> str:
    return " ".join(str(value or "").split())


def _typed_value(value: object) -> str:
    """``rfc822; bob@example.net`` → ``bob@example.net`` (RFC 3464 address-type; value)."""
    text = _unfold(value)
    _, sep, rest = text.partition(";")
    return (rest if sep else text).strip()


def _normalise_address(value: str) -> str:
    address = parseaddr(value.strip().strip("<>"))[1] or value.strip().strip("<>")
    return address.strip().lower()


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: fall back to what is there
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _tidy(text: str) -> str:
    """Trim blank runs and trailing spaces; cut before the quoted original; bound the length."""
    out: list[str] = []
    for line in text.splitlines():
        if _COPY_MARKERS.match(line):
            break
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    text = "\n".join(out).strip()
    if len(text) > REASON_TEXT_LIMIT:
        text = text[:REASON_TEXT_LIMIT].rstrip() + " …"
    return text


def _human_text(message: Message) -> str:
    """The first readable text of the bounce itself (not of the attached original)."""
    for part in _own_parts(message):
        ctype = part.get_content_type()
        if ctype == "text/plain":
            text = _tidy(_part_text(part))
            if text:
                return text
    for part in _own_parts(message):
        if part.get_content_type() == "text/html":
            text = _tidy(html_to_text(_part_text(part)))
            if text:
                return text
    return ""


def _own_parts(message: Message):
    """The leaf parts of the bounce, not descending into attached messages or report blocks."""
    if message.is_multipart():
        for part in message.get_payload():
            ctype = part.get_content_type()
            if ctype in ("message/rfc822", "message/delivery-status", "text/rfc822-headers"):
                continue
            yield from _own_parts(part)
    else:
        yield message


def _find_parts(message: Message, content_type: str):
    """Parts of a type, anywhere in the bounce except inside an attached original."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype == content_type:
            yield part
            continue
        if ctype == "message/rfc822":
            continue
        if part.is_multipart():
            stack.extend(part.get_payload())


def _encoded_report_text(blocks: object, encoding: str) -> str:
    if isinstance(blocks, str):
        text = blocks
    else:
        text = "\n\n".join(
            "".join(f"{name}: {value}\n" for name, value in block.items())
            + (block.get_payload() if isinstance(block.get_payload(), str) else "")
            for block in blocks
        )
    try:
        if encoding == "base64":
            return base64.b64decode(text).decode("utf-8", errors="replace")
        if encoding == "quoted-printable":
            return quopri.decodestring(text.encode("ascii", errors="replace")).decode(
                "utf-8", errors="replace"
            )
    except (ValueError, binascii.Error):
        return ""
    return text


def _delivery_status(message: Message) -> tuple[str, list[RecipientReport]] | None:
    for part in _find_parts(message, "message/delivery-status"):
        blocks = part.get_payload()
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if isinstance(blocks, str) or encoding in ("base64", "quoted-printable"):
            # Some MTAs encode the report; the email package then parses the encoded text as
            # header blocks. Decode it and read the blocks again.
            blocks = [
                HeaderParser().parsestr(chunk)
                for chunk in re.split(r"\r?\n\r?\n", _encoded_report_text(blocks, encoding))
                if chunk.strip()
            ]
        if not blocks:
            continue
        reporting_mta = _typed_value(blocks[0].get("Reporting-MTA", ""))
        recipients = []
        for block in blocks[1:]:
            final = _typed_value(block.get("Final-Recipient", "")) or _typed_value(
                block.get("Original-Recipient", "")
            )
            if not final:
                continue
            recipients.append(
                RecipientReport(
                    address=_normalise_address(final),
                    action=_unfold(block.get("Action", "")).lower(),
                    status=_unfold(block.get("Status", "")).split(" ")[0],
                    diagnostic=_unfold(block.get("Diagnostic-Code", "")),
                    original_recipient=_normalise_address(
                        _typed_value(block.get("Original-Recipient", ""))
                    ),
                    remote_mta=_typed_value(block.get("Remote-MTA", "")),
                )
            )
        return reporting_mta, recipients
    return None


def _original_headers(message: Message) -> Message | None:
    """The headers of the mail that bounced, from the attached original (RFC 3462 §2)."""
    for part in _find_parts(message, "text/rfc822-headers"):
        return HeaderParser().parsestr(_part_text(part).lstrip())
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
            if isinstance(payload, str):
                return HeaderParser().parsestr(payload)
        elif part.is_multipart():
            stack.extend(part.get_payload())
    return None


def _message_id_in_text(message: Message) -> str:
    """The original Message-ID quoted inline (Exim, qmail copy the original into the text)."""
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        for line in _part_text(part).splitlines():
            match = _MESSAGE_ID_RE.match(line.strip())
            if match:
                return match[1]
    return ""


def _diagnostic_in_text(text: str, address: str) -> tuple[str, str]:
    """(status, diagnostic) from the reporting MTA's words, for a non-standard bounce.

    Prefers an SMTP reply line near the failed address, with its indented continuation lines;
    the enhanced status code when given, else the class of the basic reply code. Without any
    reply, the indented lines under the last mention of the address (old Exchange).
    """
    lines = text.splitlines()
    candidates = []
    for index, line in enumerate(lines):
        match = _REPLY_RE.search(line)
        if not match:
            continue
        reply = [line[match.start() :]]
        for follow in lines[index + 1 : index + 4]:
            if not follow[:1].isspace() or not follow.strip() or _REPLY_RE.match(follow.strip()):
                break
            reply.append(follow)
        near = any(address in lines[i].lower() for i in range(max(0, index - 3), index + 1))
        candidates.append((not near, index, match, reply))
    if candidates:
        _, _, match, reply = min(candidates, key=lambda c: (c[0], c[1]))
        return match[2] or f"{match[1][0]}.0.0", _unfold(" ".join(reply))
    mentions = [i for i, line in enumerate(lines) if address in line.lower()]
    if mentions:
        below = []
        for follow in lines[mentions[-1] + 1 : mentions[-1] + 4]:
            if not follow[:1].isspace() or not follow.strip():
                break
            below.append(follow)
        return "", _unfold(" ".join(below))
    return "", ""


def _flufl_failures(message: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """(temporary, permanent) addresses from flufl.bounce's detectors; empty when it fails.

    Its detectors expect ``str`` headers: under the ``compat32`` policy a header with a stray
    8-bit byte is a ``Header`` object and one of them raises, so they get a ``policy.default``
    copy. Any other exception from these heuristics on hostile input means "not recognised".
    """
    try:
        copy = message_from_bytes(message.as_bytes(), policy=policy.default)
        return all_failures(copy)
    except Exception:  # noqa: BLE001 - see the docstring
        return frozenset(), frozenset()


def bounce_parse(message: Message) -> BounceReport:
    """Read a bounce. Returns a report with no recipients when nothing could be recognised."""
    sender = _normalise_address(str(message.get("From", "")))
    from_daemon = sender.split("@")[0] in ("mailer-daemon", "postmaster")
    subject = _unfold(message.get("Subject", ""))
    human = _human_text(message)
    original = _original_headers(message)
    original_id = ""
    in_reply_to = ""
    references: tuple[str, ...] = ()
    if original is not None:
        original_id = _unfold(
            original.get("Message-ID", "") or original.get("X-Microsoft-Original-Message-ID", "")
        )
        in_reply_to = next(iter(re.findall(r"<[^>\s]+>", str(original.get("In-Reply-To", "")))), "")
        references = tuple(re.findall(r"<[^>\s]+>", str(original.get("References", ""))))
    if not original_id:
        original_id = _message_id_in_text(message)

    common = {
        "original_message_id": original_id,
        "original_in_reply_to": in_reply_to,
        "original_references": references,
        "human_text": human,
        "from_mailer_daemon": from_daemon,
        "subject": subject,
    }
    dsn = _delivery_status(message)
    if dsn is not None:
        reporting_mta, recipients = dsn
        return BounceReport(
            format="dsn", reporting_mta=reporting_mta, recipients=tuple(recipients), **common
        )

    temporary, permanent = _flufl_failures(message)
    recipients = []
    for raw, action in [(a, FAILED) for a in sorted(permanent)] + [
        (a, DELAYED) for a in sorted(temporary - permanent)
    ]:
        address = _normalise_address(raw.decode("ascii", errors="replace"))
        status, diagnostic = _diagnostic_in_text(human, address)
        if not status or (action == FAILED and status.startswith("2")):
            status = "5.0.0" if action == FAILED else "4.0.0"
        recipients.append(
            RecipientReport(address=address, action=action, status=status, diagnostic=diagnostic)
        )
    reporting_mta = ""
    if recipients:
        # A non-standard bounce names no Reporting-MTA: the daemon's domain is the best word.
        reporting_mta = sender.partition("@")[2]
    return BounceReport(
        format="non-standard" if recipients else "",
        reporting_mta=reporting_mta,
        recipients=tuple(recipients),
        **common,
    )
