"""A development SMTP relay: stores what it receives and plays delivery failures on demand.

Recipients matching a reject pattern get ``550 5.1.1``, a defer pattern ``451 4.3.0``; everything
else is accepted and kept (in memory, and as .eml files when a folder is given). The test suite
uses the same class as its relay, so what a developer plays by hand is what the tests prove.
"""

import fnmatch
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def message(self):
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()


def _matches(address: str, pattern: str) -> bool:
    address = address.lower()
    pattern = pattern.strip().lower()
    if not pattern:
        return False
    if pattern.startswith("@"):
        return address.endswith(pattern)
    return fnmatch.fnmatch(address, pattern)


class DevRelayHandler:
    """aiosmtpd handler. ``rcpt_rules``: list of (pattern, reply) tried in order at RCPT;
    ``data_reply``: a reply to give at end of DATA instead of 250 (e.g. "554 5.7.1 no")."""

    def __init__(
        self,
        *,
        reject: str = "",
        defer: str = "",
        store_dir: Path | None = None,
        keep: int = 100_000,
        pipelining: bool = True,
    ) -> None:
        # Advertised like Postfix does, so the outbox's pipelined path is the one played here
        # (aiosmtpd reads each command from one buffered stream, so it copes with pipelining).
        self.pipelining = pipelining
        self.rcpt_rules: list[tuple[str, str]] = []
        for pattern in filter(None, (p.strip() for p in reject.split(","))):
            self.rcpt_rules.append((pattern, "550 5.1.1 <{addr}>: mailbox unavailable"))
        for pattern in filter(None, (p.strip() for p in defer.split(","))):
            self.rcpt_rules.append((pattern, "451 4.3.0 <{addr}>: try again later"))
        self.data_reply: str | None = None
        self.store_dir = store_dir
        self.keep = keep
        self.received: list[ReceivedMail] = []
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        for pattern, reply in self.rcpt_rules:
            if _matches(address, pattern):
                return reply.format(addr=address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.data_reply:
            return self.data_reply
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or envelope.content,
        )
        with self._lock:
            self.received.append(mail)
            del self.received[: max(0, len(self.received) - self.keep)]
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns()}.eml"
            (self.store_dir / name).write_bytes(mail.data)
        return "250 2.0.0 OK: queued"

    def message_ids(self) -> list[str]:
        with self._lock:
            return [m.message_id for m in self.received]


def stored_mails(store_dir: Path, limit: int = 200) -> list[dict]:
    """The newest stored mails, for the staff page of the dev relay."""
    if not store_dir.exists():
        return []
    files = sorted(store_dir.glob("*.eml"), reverse=True)[:limit]
    out = []
    for path in files:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        out.append(
            {
                "name": path.name,
                "from": msg.get("From", ""),
                "to": msg.get("To", ""),
                "subject": msg.get("Subject", ""),
                "message_id": msg.get("Message-ID", ""),
                "date": msg.get("Date", ""),
            }
        )
    return out
