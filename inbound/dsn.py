"""Reading bounce messages: which recipients failed, why, and which mail of ours it was.

Pure: takes an ``email.message.Message`` and returns a ``BounceReport``; no database, no Django.

Delivery status reports (RFC 3464) are read field by field wherever their
``message/delivery-status`` part sits (any nesting, with or without ``report-type``), whatever
its transfer encoding, with blocks parted by lines of white space, every spelling of ``Action``
and comments in fields. Per recipient the address we sent to comes first (``Original-Recipient``
§2.3.1, then ``Final-Recipient``; other address types such as X.400 are not addresses). A
report without a usable recipient, and everything else (Exim's plain text, qmail, old Exchange,
Yahoo, GroupWise...), goes through flufl.bounce, Mailman's detector library; we only add the
diagnostic line and the original Message-ID it does not report. The report is tried first
because flufl.bounce's heuristics on a DSN can match addresses in the quoted original
(flufl.bounce issue #12). ``status_severity`` says hard / soft / policy from the RFC 3463 code,
the diagnostic words breaking ties; ``bounce_like`` tells a bounce from other mail by its form.
"""

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email import errors, message_from_bytes, policy
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
SOFT = "soft"  # the mail failed, but the address may work tomorrow (full, expired, too big)
POLICY = "policy"  # refused by a filter (spam, reputation): says nothing about the mailbox
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

# The many ways MTAs spell RFC 3464's Action values (Lotus "failed (Bad destination mailbox
# address)", old Exchange "error", "failure", "bounced"...), by their first word.
_ACTION_WORDS = {
    "failed": FAILED,
    "failure": FAILED,
    "fail": FAILED,
    "error": FAILED,
    "bounced": FAILED,
    "bounce": FAILED,
    "undeliverable": FAILED,
    "rejected": FAILED,
    "permanent": FAILED,
    "delayed": DELAYED,
    "delay": DELAYED,
    "deferred": DELAYED,
    "retrying": DELAYED,
    "pending": DELAYED,
    "transient": DELAYED,
    "delivered": "delivered",
    "relayed": "relayed",
    "expanded": "expanded",
}

# Diagnostic words that decide when the status code does not (X.0.0, or no code at all).
_POLICY_WORDS = re.compile(
    r"block(ed|list)|black ?list|spam|reputation|\bpolicy\b|\brbl\b|dnsbl|spamhaus|"
    r"unsolicited|junk|abuse|not authori[sz]ed|denied|dmarc|\bspf\b|dkim|"
    r"sender (address|domain) (rejected|not)|content (rejected|filter)|virus",
    re.I,
)
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|unknown (local|recipient|mailbox|address)|no such (user|"
    r"mailbox|recipient|address)|(mailbox|user|recipient|account|address)[^.;\n]{0,30}"
    r"(does not exist|doesn't exist|not exist|not found|unavailable|disabled|inactive|"
    r"deactivated|closed|suspended|invalid)|invalid (recipient|mailbox|address|user)|"
    r"(recipient|name) (is )?not recogni[sz]ed|no mailbox|mailbox not found|"
    r"unrouteable address|address rejected|not a valid (mailbox|user|recipient)|"
    r"account (has been )?(disabled|closed|removed|expired)|not listed in|"
    r"(doesn't|does not) have an? [\w.-]+ account|no longer (active|valid|in use)",
    re.I,
)
_SOFT_WORDS = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|"
    r"insufficient (storage|disk)|too (big|large)|size limit|temporar|try again|timed? ?out|"
    r"connection refused|expired|out of storage",
    re.I,
)

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# An SMTP reply in free text: "550 5.1.1 <x@y>: ..." or "550-5.1.1 ..." or "550 Mailbox ...",
# or Yahoo's "554: 5.7.9 ...".
_REPLY_RE = re.compile(r"(?<![\d.:/-])([45]\d\d)(?:[ -]|: )(?:([45]\.\d{1,3}\.\d{1,3})\b)?")
_MESSAGE_ID_RE = re.compile(r"^(?:message-id|x-microsoft-original-message-id):\s*(<[^>\s]+>)", re.I)
# Where non-standard bounces start quoting the original message (Exim, qmail, Sendmail...).
_COPY_MARKERS = re.compile(
    r"^\s*(-+ ?this is a copy of|-+ ?below this line is a copy|-+ ?original message|"
    r"-+ ?the header of the original message|original message follows)",
    re.I,
)
# An RFC 5322 addr-spec good enough to send to: one @, a dot in the domain, nothing of X.400.
_ADDRESS_RE = re.compile(r"^[^@\s<>()\[\]/,;:\"=]+@[a-z0-9-]+(\.[a-z0-9-]+)+$", re.I)
REASON_TEXT_LIMIT = 1500


def status_severity(*, action: str, status: str, diagnostic: str = "") -> str:
    """hard / soft / policy / delayed / none for one recipient (protocol.md §3.3).

    RFC 3463 first: the enhanced status code (the Diagnostic-Code's when Status only says
    X.0.0, as "550 5.7.1" behind "Status: 5.0.0"); 5.1.x and 5.2.1 are dead or disabled
    mailboxes, 5.7.x a policy refusal, 4.x.x / 5.2.x / 5.3.x / 5.4.x conditions that can pass.
    Where the code does not say (X.0.0, protocol and media errors, no code at all) the
    diagnostic text decides; a permanent failure nobody explains is hard.
    """
    if action == DELAYED:
        return DELAY
    if action != FAILED:
        return NONE
    code = _STATUS_RE.search(status or "")
    detailed = _STATUS_RE.search(diagnostic or "")
    if detailed is not None and (
        code is None or ((code[2], code[3]) == ("0", "0") and code[1] == detailed[1])
    ):
        code = detailed
    if code is not None and code[1] == "4":
        return SOFT
    subject, detail = (code[2], code[3]) if code is not None else ("0", "0")
    if subject == "7":
        return POLICY
    if subject == "1" or (subject, detail) == ("2", "1"):
        return HARD
    if subject in ("2", "3", "4"):
        return SOFT
    # X.0.x, X.5.x, X.6.x or no code: the words decide, a refusal by policy before a dead
    # mailbox (a "550 mailbox unavailable" from a content filter is still a refusal).
    text = diagnostic or ""
    if _POLICY_WORDS.search(text):
        return POLICY
    if _HARD_WORDS.search(text):
        return HARD
    if _SOFT_WORDS.search(text) or subject in ("5", "6"):
        return SOFT
    return HARD


@dataclass(frozen=True)
class RecipientReport:
    """One recipient block of a DSN (RFC 3464 §2.3), or what flufl.bounce found for an address."""

    address: str  # the address we sent to as best known, normalised (lower case, no "rfc822;")
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str = ""  # Diagnostic-Code, unfolded, e.g. "smtp; 550 5.1.1 <x@y>: User unknown"
    original_recipient: str = ""
    remote_mta: str = ""
    # True when nothing in the bounce said this (a VERP bounce nobody could read): never hard.
    assumed: bool = False
    final_recipient: str = ""

    @property
    def candidates(self) -> tuple[str, ...]:
        """The addresses this block names, the one we sent to first (RFC 3464 §2.3.1)."""
        names = (self.original_recipient, self.address, self.final_recipient)
        return tuple(dict.fromkeys(a for a in names if a))

    @property
    def severity(self) -> str:
        if self.assumed and self.action == FAILED:
            return SOFT
        return status_severity(action=self.action, status=self.status, diagnostic=self.diagnostic)

    @property
    def is_bounce(self) -> bool:
        """The mail did not reach this recipient and will not (hard, soft or policy)."""
        return self.severity in (HARD, SOFT, POLICY)

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
    has_report: bool = False  # a message/delivery-status part was there, readable or not

    @property
    def failed(self) -> list[RecipientReport]:
        return [r for r in self.recipients if r.is_bounce]

    @property
    def delayed(self) -> list[RecipientReport]:
        return [r for r in self.recipients if r.severity == DELAY]

    @property
    def looks_like_bounce(self) -> bool:
        """Recognised by form (odoo-behaviour §5 ``_detect_is_bounce``), whatever was parsed."""
        return (
            self.format == "dsn"
            or self.has_report
            or bool(self.recipients)
            or self.from_mailer_daemon
        )

    def reason_for(self, recipient: RecipientReport) -> str:
        """The failure reason shown in the sending-failures dialog, for one recipient.

        Status and its meaning, the remote server's reply (Diagnostic-Code) and the reporting
        MTA's own words, so the user can tell a typo from a full mailbox.
        """
        verb = "Refused by policy" if recipient.severity == POLICY else "Bounced"
        lines = [f"{verb}: the mail to {recipient.address} was not delivered."]
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
    except (LookupError, ValueError):  # an unknown charset, or one with a NUL in its name
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


# RFC 6533 (internationalised mail) has "global" twins of the report's parts.
_ATTACHED = ("message/rfc822", "message/global")
_REPORTS = ("message/delivery-status", "message/global-delivery-status")
_HEADERS = ("text/rfc822-headers", "message/global-headers")


def _own_parts(message: Message):
    """The leaf parts of the bounce, not descending into attached messages or report blocks."""
    if message.is_multipart():
        for part in message.get_payload():
            ctype = part.get_content_type()
            if ctype in (*_ATTACHED, *_REPORTS, *_HEADERS, "message/feedback-report"):
                continue
            yield from _own_parts(part)
    else:
        yield message


def find_parts(message: Message, *content_types: str):
    """Parts of these types, anywhere in the bounce except inside an attached original."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype in content_types:
            yield part
            continue
        if ctype in _ATTACHED:
            continue
        if part.is_multipart():
            stack.extend(part.get_payload())


_COMMENT_RE = re.compile(r"\([^()]*\)")
# RFC 3464 §2.3.1/§2.3.2 address types that name an Internet mailbox (RFC 6533 adds utf-8);
# X.400 and the rest are not addresses we sent to.
_MAILBOX_TYPES = ("rfc822", "rfc-822", "utf-8", "smtp", "internet", "")
_PER_RECIPIENT = ("original-recipient", "final-recipient", "action", "status")


def _without_comments(value: str) -> str:
    """RFC 5322 §3.2.2 comments out of a field value, nested ones too."""
    for _ in range(5):
        stripped = _COMMENT_RE.sub(" ", value)
        if stripped == value:
            break
        value = stripped
    return _unfold(value)


def report_text(part: Message) -> str:
    """The text of a ``message/delivery-status`` part as sent, transfer encoding undone.

    The email package splits this part into header blocks at blank lines; an encoded part
    (quoted-printable, base64) or a separator line holding a space fools that split. The
    blocks are put back together as they came and read again by ``report_fields``.
    """
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            head = "".join(f"{name}: {value}\n" for name, value in block.raw_items())
            body = block.get_payload()
            body = body if isinstance(body, str) else ""
            glued = any(
                isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in block.defects
            )
            chunk = head + ("" if glued or not body else "\n") + body
            chunks.append(chunk if chunk.endswith("\n") else chunk + "\n")
        text = "\n".join(chunks)
    else:
        text = payload if isinstance(payload, str) else ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    charset = part.get_content_charset() or "utf-8"
    try:
        if encoding == "base64":
            raw = base64.b64decode("".join(text.split()), validate=False)
        elif encoding == "quoted-printable":
            raw = quopri.decodestring(text.encode("utf-8", errors="replace"))
        else:
            return text
        try:
            return raw.decode(charset, errors="replace")
        except (LookupError, ValueError):  # unknown, or a NUL in its name
            return raw.decode("utf-8", errors="replace")
    except (ValueError, binascii.Error):
        return text


def report_fields(text: str) -> list[list[tuple[str, str]]]:
    """``Name: value`` fields of a report, block by block (RFC 3464 §2.1).

    A line of nothing but white space ends a block too; continuation lines are unfolded;
    lines that are not fields are skipped rather than ending the report.
    """
    blocks: list[list[tuple[str, str]]] = []
    fields: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if fields:
                blocks.append(fields)
            fields = []
            continue
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if sep and name and " " not in name:
            fields.append((name, value.strip()))
    if fields:
        blocks.append(fields)
    return blocks


# RFC 2156 §4.2.2 (MIXER): the printable-string escapes of an RFC 822 address inside an X.400
# O/R address's ``RFC-822=`` attribute.
_X400_ESCAPES = {"(a)": "@", "(p)": "%", "(b)": "!", "(q)": '"', "(u)": "_", "(l)": "(", "(r)": ")"}
_X400_RFC822 = re.compile(r"/RFC-822=([^/]+)/", re.I)


def _mailbox(value: str, *, x400: bool = False) -> str:
    """``rfc822; <Bob@Example.net> (Bob)`` → ``bob@example.net``; "" for other types and junk.

    With ``x400`` an X.400 address that carries an ``RFC-822=`` attribute gives that address
    (a last resort, when the report names no Internet address at all).
    """
    if x400:
        match = _X400_RFC822.search(value)
        if not match:
            return ""
        text = match[1]
        for escape, char in _X400_ESCAPES.items():
            text = re.sub(re.escape(escape), char, text, flags=re.I)
        address = _normalise_address(text)
        return address if _ADDRESS_RE.match(address) else ""
    text = _without_comments(value)
    kind, sep, rest = text.partition(";")
    if sep and kind.strip().lower() not in _MAILBOX_TYPES:
        return ""
    address = _normalise_address(rest if sep else text)
    return address if _ADDRESS_RE.match(address) else ""


def _action(value: str, status: str, diagnostic: str) -> str:
    words = _without_comments(value).lower().split()
    if words and words[0].rstrip(".:,;") in _ACTION_WORDS:
        return _ACTION_WORDS[words[0].rstrip(".:,;")]
    # No Action, or one nobody defined: the status class says what happened (RFC 3463 §3.1).
    klass = status[:1] or (_REPLY_RE.search(diagnostic) or "  ")[1][:1]
    return {"5": FAILED, "4": DELAYED, "2": "delivered"}.get(klass, "")


def _status(value: str, diagnostic: str) -> str:
    value = _without_comments(value)
    match = _STATUS_RE.search(value)
    if match:
        return match[0]
    basic = re.match(r"([45])\d\d\b", value)
    if basic:  # "Status: 550": an SMTP reply code where the enhanced code belongs
        detailed = _STATUS_RE.search(diagnostic)
        return detailed[0] if detailed and detailed[1] == basic[1] else f"{basic[1]}.0.0"
    match = _STATUS_RE.search(diagnostic)
    if match:
        return match[0]
    reply = _REPLY_RE.search(diagnostic)
    return f"{reply[1][0]}.0.0" if reply else ""


def _recipient(fields: dict[str, str]) -> RecipientReport | None:
    original = _mailbox(fields.get("original-recipient", ""))
    final = _mailbox(fields.get("final-recipient", ""))
    if not (original or final):
        final = _mailbox(fields.get("final-recipient", ""), x400=True)
    if not (original or final):
        return None
    diagnostic = _unfold(fields.get("diagnostic-code", ""))
    status = _status(fields.get("status", ""), diagnostic)
    return RecipientReport(
        # The address we sent to is Original-Recipient (§2.3.1); Final-Recipient is often
        # an internal mailbox name after forwarding or aliasing (§2.3.2).
        address=original or final,
        action=_action(fields.get("action", ""), status, diagnostic),
        status=status,
        diagnostic=diagnostic,
        original_recipient=original,
        final_recipient=final,
        remote_mta=_typed_value(fields.get("remote-mta", "")),
    )


def _delivery_status(message: Message) -> tuple[bool, str, list[RecipientReport]]:
    """(a report part was there, Reporting-MTA, recipients) from every delivery-status part.

    Found at any depth outside the attached original, with or without ``report-type``. A
    block starts a new recipient, and so does a per-recipient field seen twice (an MTA that
    left out the blank line between recipients).
    """
    found = False
    reporting_mta = ""
    recipients: list[RecipientReport] = []
    for part in find_parts(message, *_REPORTS):
        found = True
        for block in report_fields(report_text(part)):
            names = {name for name, _ in block}
            if not names & {"original-recipient", "final-recipient"}:
                if not reporting_mta and "reporting-mta" in names:
                    reporting_mta = _typed_value(dict(block)["reporting-mta"])
                continue
            current: dict[str, str] = {}
            groups = [current]
            for name, value in block:
                starts_next = name == "original-recipient" and (
                    "action" in current or "status" in current
                )
                if name in _PER_RECIPIENT and (name in current or starts_next):
                    current = {}
                    groups.append(current)
                current.setdefault(name, value)
            for fields in groups:
                recipient = _recipient(fields)
                if recipient is not None:
                    recipients.append(recipient)
    return found, reporting_mta, recipients


def original_headers(message: Message) -> Message | None:
    """The headers of the mail that bounced, from the attached original (RFC 3462 §2)."""
    for part in find_parts(message, *_HEADERS):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]  # message/global-headers: parsed as a message already
        return HeaderParser().parsestr(_part_text(part).lstrip())
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_type() in _ATTACHED:
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
    original = original_headers(message)
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
    has_report, reporting_mta, recipients = _delivery_status(message)
    if recipients:
        return BounceReport(
            format="dsn",
            reporting_mta=reporting_mta,
            recipients=tuple(recipients),
            has_report=True,
            **common,
        )
    # No report, or one without a usable recipient block: flufl.bounce's detectors read the
    # words (RFC 3464 reports with only X.400 addresses, Exim, qmail, Lotus, GroupWise...).
    temporary, permanent = _flufl_failures(message)
    recipients = []
    for raw, action in [(a, FAILED) for a in sorted(permanent)] + [
        (a, DELAYED) for a in sorted(temporary - permanent)
    ]:
        address = _normalise_address(raw.decode("ascii", errors="replace"))
        if not _ADDRESS_RE.match(address):
            continue
        status, diagnostic = _diagnostic_in_text(human, address)
        if not status or (action == FAILED and status.startswith("2")):
            status = "5.0.0" if action == FAILED else "4.0.0"
        recipients.append(
            RecipientReport(address=address, action=action, status=status, diagnostic=diagnostic)
        )
    if recipients and not reporting_mta:
        # A non-standard bounce names no Reporting-MTA: the daemon's domain is the best word.
        reporting_mta = sender.partition("@")[2]
    return BounceReport(
        format="non-standard" if recipients else "",
        reporting_mta=reporting_mta,
        recipients=tuple(recipients),
        has_report=has_report,
        **common,
    )


def bounce_like(message: Message, *, null_sender: bool = False) -> bool:
    """Does this look like a bounce or a feedback report, whoever it was sent to?

    A null reverse-path (RFC 5321 §4.5.5), a report (RFC 6522, any ``report-type``), a
    ``MAILER-DAEMON``/``postmaster`` sender, or a format flufl.bounce recognises.
    """
    if null_sender or message.get_content_type() == "multipart/report":
        return True
    sender = _normalise_address(str(message.get("From", "")))
    if sender.split("@")[0] in ("mailer-daemon", "postmaster"):
        return True
    if next(find_parts(message, *_REPORTS, "message/feedback-report"), None) is not None:
        return True
    temporary, permanent = _flufl_failures(message)
    return bool(temporary or permanent)
