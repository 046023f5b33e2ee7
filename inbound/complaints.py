"""Reading feedback-loop reports: a recipient marked our mail as spam (RFC 5965, ARF).

Pure: takes an ``email.message.Message`` and returns a ``ComplaintReport`` or None; no database.

A report is a ``multipart/report; report-type=feedback-report`` with a human part, a
``message/feedback-report`` part of ``Name: value`` fields (§3.1) and the original message or
its headers (§2). Providers redact the complaining address more often than not, so who
complained is decided by the signed VERP address of the copy (``inbound.bounces``), never by
what the report claims.
"""

import re
from dataclasses import dataclass
from email.message import Message

from .dsn import find_parts, original_headers, report_fields, report_text


def _unfold(value: object) -> str:
    return " ".join(str(value or "").split())


# RFC 5965 §7.3 Feedback-Type values that say "unwanted"; "not-spam" takes one back.
_COMPLAINT_TYPES = ("abuse", "fraud", "virus", "other", "opt-out", "auth-failure", "dmarc")
FEEDBACK_ID_HEADER = "Feedback-ID"


@dataclass(frozen=True)
class ComplaintReport:
    feedback_type: str  # abuse, fraud, virus, other, not-spam... (RFC 5965 §7.3)
    user_agent: str = ""  # the provider's reporting software, e.g. "Yahoo!-Mail-Feedback/2.0"
    original_rcpt_to: str = ""  # often redacted or absent
    original_message_id: str = ""
    feedback_id: str = ""  # our Feedback-ID header as returned (campaign:list:sender-id)
    reported_domain: str = ""

    @property
    def is_complaint(self) -> bool:
        return self.feedback_type in _COMPLAINT_TYPES

    def reason(self) -> str:
        source = self.user_agent or "a mailbox provider"
        lines = [f"Feedback report ({self.feedback_type or 'no type'}) from {source}."]
        if self.original_message_id:
            lines.append(f"About our mail {self.original_message_id}.")
        if self.feedback_id:
            lines.append(f"Feedback-ID: {self.feedback_id}")
        return "\n".join(lines)


def complaint_parse(message: Message) -> ComplaintReport | None:
    """The feedback report in ``message``, or None when it carries none."""
    part = next(find_parts(message, "message/feedback-report"), None)
    if part is None:
        return None
    fields: dict[str, str] = {}
    for block in report_fields(report_text(part)):
        for name, value in block:
            fields.setdefault(name, _unfold(value))
    original = original_headers(message)
    message_id = feedback_id = ""
    if original is not None:
        ids = re.findall(r"<[^>\s]+>", str(original.get("Message-ID", "")))
        message_id = ids[0] if ids else ""
        feedback_id = _unfold(original.get(FEEDBACK_ID_HEADER, ""))
    rcpt = fields.get("original-rcpt-to", "")
    kind = fields.get("feedback-type", "").split()
    return ComplaintReport(
        feedback_type=kind[0].lower() if kind else "",
        user_agent=fields.get("user-agent", ""),
        original_rcpt_to=rcpt.strip("<>").lower(),
        original_message_id=message_id,
        feedback_id=feedback_id,
        reported_domain=fields.get("reported-domain", ""),
    )
