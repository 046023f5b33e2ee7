"""The inbound listener (``manage.py runsmtpd``) under faults, driven like a sending MTA would.

A sending MTA keeps every message it has no ``250`` for and tries it again later. These cases
play that sender (``Sender`` below) against the real listener process while its database goes
away or the listener itself is killed mid-conversation, then count what the listener stored
and posted: each message exactly once, none lost.
"""

import signal
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from chatter.models import Message
from inbound.models import Alias, AliasDomain, InboundMail
from records.models import Ticket
from tests.support.chatter import TicketFactory
from tests.support.e2e import (
    database_port,
    database_url_via,
    postgres_only,
    scaled,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def aliases(transactional_db):
    """``mailhub.test``: ``support@`` creates tickets, ``desk@`` posts on one ticket."""
    domain = AliasDomain.objects.create(domain="mailhub.test")
    ticket_type = ContentType.objects.get_for_model(Ticket)
    Alias.objects.create(domain=domain, local_part="support", model=ticket_type)
    desk = TicketFactory(title="Help desk")
    Alias.objects.create(domain=domain, local_part="desk", model=ticket_type, record_id=desk.pk)
    return desk


def mail(n: int, *, tag: str, to: str = "desk@mailhub.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {n} <c{n}@customer.test>"
    msg["To"] = to
    msg["Subject"] = f"{tag} {n}"
    msg["Message-ID"] = f"<{tag}-{n}@customer.test>"
    msg.set_content(f"Message {n} of the {tag} case.\n")
    return msg.as_bytes(policy=policy.SMTP)


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Sender:
    """An MTA's retry loop: keep a message until it gets a 250, retry 4xx and lost connections."""

    port: int
    accepted: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)
    replies: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_all(self, messages: dict[str, bytes], *, to: str, pause: float = 0.0) -> None:
        """Send over one connection, reconnecting after a drop; one pass over ``messages``."""
        client = None
        for key, data in messages.items():
            if key in self.accepted or key in self.refused:
                continue
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
                    client.ehlo("sender.customer.test")
                client.sendmail("c@customer.test", [to], data)
                with self.lock:
                    self.accepted.add(key)
                    self.replies.append(250)
            except smtplib.SMTPRecipientsRefused as exc:
                code = next(iter(exc.recipients.values()))[0]
                self._note(key, code, exc)
                client = self._reset(client)
            except smtplib.SMTPResponseException as exc:
                self._note(key, exc.smtp_code, exc)
                client = self._reset(client)
            except (smtplib.SMTPServerDisconnected, OSError):
                with self.lock:
                    self.replies.append(0)  # no answer: keep it and try again
                client = None
            if pause:
                time.sleep(pause)
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def _note(self, key: str, code: int, exc: Exception) -> None:
        with self.lock:
            self.replies.append(code)
            if code >= 500:
                self.refused[key] = str(exc)

    @staticmethod
    def _reset(client):
        try:
            client.rset()
            return client
        except (smtplib.SMTPException, OSError):
            return None


def stored_once(message_ids: list[str]) -> tuple[int, int, int]:
    """(stored, lost, duplicates) of these Message-IDs in the chatter (posted messages)."""
    posted: dict[str, int] = {}
    for mid in Message.objects.filter(message_id__in=message_ids).values_list(
        "message_id", flat=True
    ):
        posted[mid] = posted.get(mid, 0) + 1
    stored = sum(1 for m in message_ids if posted.get(m))
    duplicates = sum(n - 1 for n in posted.values())
    return stored, len(message_ids) - stored, duplicates


@pytest.mark.postgres
def test_database_refusing_connections_listener_answers_451_and_the_retry_lands_once(
    e2e_stack, aliases, loopback_proxy, fault_report
):
    postgres_only()
    proxy = loopback_proxy(database_port())
    e2e_stack.database_url = database_url_via(proxy.port)
    # Mail stored but not yet posted is retried by the listener's sweep once 30s old; 5s rounds
    # instead of the default 60s keep the case short.
    e2e_stack.smtpd("--sweep-interval", "5")
    count = scaled(30, 1000)
    messages = {f"<dbdown-{n}@customer.test>": mail(n, tag="dbdown") for n in range(count)}
    sender = Sender(e2e_stack.smtpd_port)
    started = time.monotonic()

    # A few go through while the database is up, then it refuses connections.
    first = dict(list(messages.items())[:5])
    sender.send_all(first, to="desk@mailhub.test")
    assert sender.accepted == set(first)
    proxy.set_mode("refuse")
    time.sleep(6)  # longer than the listener's recipient cache: every lookup needs the database
    sender.send_all(messages, to="desk@mailhub.test")
    during = sender.replies[len(first) :]
    assert during and set(during) == {451}, f"replies while the database was down: {during}"
    assert sender.refused == {}, "a database outage must never be answered with 5xx"
    assert e2e_stack.procs["smtpd"][0].proc.poll() is None, "the listener stays up"

    proxy.set_mode("forward")
    for _ in range(30):  # the sender's retry queue, a pass per second until all are accepted
        sender.send_all(messages, to="desk@mailhub.test")
        if len(sender.accepted) == count:
            break
        time.sleep(1)
    accepted_at = time.monotonic()
    wait_until(
        lambda: stored_once(list(messages))[0] == count,
        timeout=scaled(90, 900),
        message=lambda: (
            "accepted mail was not posted after the database came back: "
            f"{stored_once(list(messages))}\n{e2e_stack.logs()}"
        ),
    )
    posting_delay = time.monotonic() - accepted_at
    stored, lost, duplicates = stored_once(list(messages))
    fault_report.record(
        case="PostgreSQL refuses connections (listener)",
        sent=count,
        arrived=stored,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"{during.count(451)} answers 451 during the outage, none 5xx; all accepted on "
        f"retry, the last posted {posting_delay:.0f}s after its 250 (pending sweep every 5s)",
    )
    assert (stored, lost, duplicates) == (count, 0, 0)
    assert sender.accepted == set(messages)


def test_listener_killed_mid_conversations_and_restarted_nothing_lost_nothing_doubled(
    e2e_stack, aliases, fault_report
):
    e2e_stack.smtpd("--sweep-interval", "5")
    conversations = 10
    per_conversation = scaled(20, 500)
    batches = [
        {
            f"<restart-{c}-{n}@customer.test>": mail(n, tag=f"restart-{c}")
            for n in range(per_conversation)
        }
        for c in range(conversations)
    ]
    all_ids = [key for batch in batches for key in batch]
    senders = [Sender(e2e_stack.smtpd_port) for _ in batches]
    started = time.monotonic()
    threads = [
        threading.Thread(target=s.send_all, args=(b,), kwargs={"to": "desk@mailhub.test"})
        for s, b in zip(senders, batches, strict=True)
    ]
    for t in threads:
        t.start()
    wait_until(
        lambda: sum(len(s.accepted) for s in senders) >= len(all_ids) // 4,
        timeout=60,
        message="the conversations did not get going",
    )
    listener = e2e_stack.procs["smtpd"][0]
    helpers = []
    if connection.vendor == "postgresql":  # on SQLite the listener posts on a thread of its own
        helpers = wait_until(
            lambda: children_of(listener.proc.pid),
            timeout=30,
            message="the listener did not start its posting process",
        )
    # Mid-conversation (some DATA in flight, some unanswered), and the listener process alone,
    # as the kernel's OOM killer would: its posting process must notice and stop by itself.
    listener.proc.send_signal(signal.SIGKILL)
    listener.proc.wait(timeout=10)
    # Nothing of the killed listener lives on holding a database connection.
    wait_until(
        lambda: not any(alive(pid) for pid in helpers),
        timeout=15,
        message=lambda: f"processes of the killed listener still run: {helpers}",
    )
    for t in threads:
        t.join(timeout=60)
    at_kill = sum(len(s.accepted) for s in senders)
    assert at_kill < len(all_ids), "the kill landed after everything was sent"

    e2e_stack.smtpd("--sweep-interval", "5")  # same port, as a supervisor would restart it
    for _ in range(20):
        for sender, batch in zip(senders, batches, strict=True):
            sender.send_all(batch, to="desk@mailhub.test")
        if sum(len(s.accepted) for s in senders) == len(all_ids):
            break
        time.sleep(0.5)
    wait_until(
        lambda: stored_once(all_ids)[0] == len(all_ids),
        timeout=scaled(90, 900),
        message=lambda: (
            "mail accepted around the restart was not all posted: "
            f"{stored_once(all_ids)}\n{e2e_stack.logs()}"
        ),
    )
    stored, lost, duplicates = stored_once(all_ids)
    rows = InboundMail.objects.filter(message_id__in=all_ids).count()
    fault_report.record(
        case="listener SIGKILLed mid-conversation, restarted",
        sent=len(all_ids),
        arrived=stored,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"{conversations} conversations, {at_kill} accepted before the kill, "
        f"{rows} stored rows for {len(all_ids)} messages",
    )
    assert (stored, lost, duplicates) == (len(all_ids), 0, 0)
