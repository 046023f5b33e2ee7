"""The listener's limits against the real ``manage.py runsmtpd``: codes, memory, caps, sessions.

Each case is one input class of issue 14 ("Listener"): what is sent over a raw socket, the
reply it must get, what is stored or posted, and what the listener process spends (its peak
RSS, read from ``/proc``). ``bench/hostile`` sends the same classes at full size.
"""

import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client

from chatter.models import Message
from inbound.models import Alias, AliasDomain, Decision, InboundMail
from records.models import Ticket
from tests.e2e.test_hostile_input import RawSMTP, wait_processed

pytestmark = pytest.mark.e2e


def proc_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak so far) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def peak_reset(pid: int) -> int:
    """Start a new peak (``VmHWM``) from the RSS of now (Linux: 5 in ``clear_refs``); that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return proc_kib(pid, "VmRSS")


@pytest.fixture
def domains(transactional_db):
    ticket_type = ContentType.objects.get_for_model(Ticket)
    for name in ("mailhub.test", "help.example.test"):
        domain = AliasDomain.objects.create(domain=name)
        Alias.objects.create(domain=domain, local_part="support", model=ticket_type)


def start(e2e_stack, **env: str) -> tuple[int, object]:
    child = e2e_stack.smtpd(MAILHUB_SMTPD_MAX_COMMANDS="1000", **env)
    return e2e_stack.smtpd_port, child


def transaction(smtp: RawSMTP, *, mail_from: bytes, rcpt: bytes = b"support@mailhub.test"):
    smtp.command(b"RSET")
    return smtp.command(b"MAIL FROM:<" + mail_from + b">"), smtp.command(b"RCPT TO:<" + rcpt + b">")


def message(subject: str, body: bytes = b"Hello.\r\n", **headers: str) -> bytes:
    lines = [f"From: carla@customer.test\r\nTo: support@mailhub.test\r\nSubject: {subject}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
    return "".join(lines).encode() + b"\r\n" + body


def send_data(smtp: RawSMTP, data: bytes) -> tuple[int, str]:
    assert smtp.command(b"DATA")[0] == 354
    smtp.send(data + b".\r\n")
    return smtp.reply()


def test_envelope_input_gets_the_right_code(e2e_stack, domains):
    port, _ = start(e2e_stack, MAILHUB_SMTPD_MAX_SIZE="200000")
    smtp = RawSMTP(port)
    assert smtp.banner[0] == 220 and "MailHub" in smtp.banner[1], smtp.banner
    assert "aiosmtpd" not in smtp.banner[1].lower() and "python" not in smtp.banner[1].lower()
    smtp.command(b"EHLO attacker.test")
    control = [b"\x00", b"\x01", b"\x1b", b"\x7f", b"\t"]
    for char in control:
        mail, _ = transaction(smtp, mail_from=b"carla@customer.test" + char + b".evil.test")
        assert mail[0] in (501, 553), (char, mail)
        _, rcpt = transaction(
            smtp, mail_from=b"carla@customer.test", rcpt=b"support@mailhub.test" + char + b".x"
        )
        assert rcpt[0] in (501, 553), (char, rcpt)
    # Bytes that are not UTF-8, and UTF-8 without SMTPUTF8 (RFC 6531 §3.5).
    mail, _ = transaction(smtp, mail_from=b"carla\xff@customer.test")
    assert mail[0] == 553, mail
    mail, _ = transaction(smtp, mail_from="josé@exämple.test".encode())
    assert mail[0] == 553 and "5.6.7" in mail[1], mail
    _, rcpt = transaction(
        smtp, mail_from=b"carla@customer.test", rcpt="süpport@mailhub.test".encode()
    )
    assert rcpt[0] == 553 and "5.6.7" in rcpt[1], rcpt
    # RFC 5321 §4.5.1: postmaster@ of every domain of ours, in any case, and nothing else new.
    for n, rcpt_to in enumerate((b"postmaster@mailhub.test", b"PostMaster@help.example.test")):
        mail, rcpt = transaction(smtp, mail_from=b"carla@customer.test", rcpt=rcpt_to)
        assert (mail[0], rcpt[0]) == (250, 250), (mail, rcpt)
        reply = send_data(smtp, message(f"Abuse report {n}", **{"Message-ID": f"<pm-{n}@x.test>"}))
        assert reply[0] == 250, reply
    assert (
        transaction(smtp, mail_from=b"a@customer.test", rcpt=b"postmaster@evil.test")[1][0] == 550
    )
    smtp.close()
    wait_processed()
    rows = InboundMail.objects.filter(decision=Decision.POSTMASTER)
    assert sorted(rows.values_list("subject", flat=True)) == ["Abuse report 0", "Abuse report 1"]
    assert InboundMail.objects.exclude(decision=Decision.POSTMASTER).count() == 0
    # Where an admin sees it: the inbound mail list, filtered by the postmaster decision.
    admin = get_user_model().objects.create_superuser("root", "root@mailhub.test", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/inbound/inboundmail/", {"decision__exact": "postmaster"})
    assert page.status_code == 200
    assert b"Abuse report 0" in page.content and b"Abuse report 1" in page.content


def test_a_line_over_1000_octets_is_554_content_and_the_session_goes_on(e2e_stack, domains):
    port, _ = start(e2e_stack, MAILHUB_SMTPD_MAX_SIZE="200000")
    smtp = RawSMTP(port)
    smtp.command(b"EHLO sender.test")
    for length in (999, 5000, 150_000):  # 1,001 octets with CRLF; longer; no end in sight
        transaction(smtp, mail_from=b"carla@customer.test")
        code, text = send_data(smtp, message("long", b"x" * length + b"\r\n"))
        assert code == 554 and "5.6.0" in text, (length, code, text)
    transaction(smtp, mail_from=b"carla@customer.test")
    fits = message("fits", b"y" * 998 + b"\r\n..dot-stuffed\r\n", **{"Message-ID": "<fits@x.test>"})
    assert smtp.command(b"DATA")[0] == 354
    smtp.send(fits + b".\r\nNOOP\r\n")  # a command right behind the final dot
    assert smtp.reply()[0] == 250 and smtp.reply()[0] == 250, "the NOOP was read, not lost"
    smtp.close()
    wait_processed()
    stored = InboundMail.objects.get()
    assert bytes(stored.raw).endswith(b"y" * 998 + b"\r\n.dot-stuffed\r\n"), "RFC 5321 §4.5.2"


def test_receiving_holds_at_most_three_times_the_message(e2e_stack, domains):
    """12 MB of empty lines held 1.1 GB; now at most three times the message, peak RSS.

    First to ``catchall@`` (refused after the data, nothing stored): the receiving alone, on
    either database. Then to ``support@`` (stored and posted): on PostgreSQL the posting runs
    in a process of its own, so the listener's peak covers receiving and storing; on SQLite
    the listener also stores and posts (docs/reliability.md gives that figure).
    """
    size = 12 * 1024 * 1024
    port, child = start(e2e_stack, MAILHUB_SMTPD_MAX_SIZE=str(16 * 1024 * 1024))
    smtp = RawSMTP(port)
    smtp.command(b"EHLO sender.test")
    growth = {}
    for rcpt, code in ((b"catchall@mailhub.test", 550), (b"support@mailhub.test", 250)):
        before = peak_reset(child.proc.pid)
        transaction(smtp, mail_from=b"carla@customer.test", rcpt=rcpt)
        started = time.monotonic()
        reply = send_data(smtp, message("empty lines", b"\r\n" * (size // 2)))
        took = time.monotonic() - started
        assert reply[0] == code, reply
        wait_processed()
        growth[rcpt] = (proc_kib(child.proc.pid, "VmHWM") - before) * 1024
        print(f"{rcpt.decode()}: {reply[0]} after {took:.1f}s, peak +{growth[rcpt] >> 20} MiB")
        assert took < 20
    smtp.close()
    # Receiving: at most three times the message (issue 14); measured about 2×.
    assert growth[b"catchall@mailhub.test"] <= 3 * size, growth
    if connection.vendor == "postgresql":
        # Receiving and storing: the received buffer, the bytes handed to psycopg and its send
        # buffer; measured 2.1–3.0× on a loaded machine, so the bound leaves half a copy of room.
        assert growth[b"support@mailhub.test"] <= 3.5 * size, growth
    assert InboundMail.objects.filter(decision=Decision.ALIAS_NEW).count() == 1


def test_over_the_memory_budget_the_listener_answers_452(e2e_stack, domains):
    port, _ = start(
        e2e_stack, MAILHUB_SMTPD_MAX_SIZE="4000000", MAILHUB_SMTPD_MEMORY_BUDGET="1000000"
    )
    body = (b"z" * 98 + b"\r\n") * 10
    first, second = RawSMTP(port), RawSMTP(port)
    for smtp in (first, second):
        smtp.command(b"EHLO sender.test")
    # A declared size past what is free: refused at MAIL (RFC 1870 §6.2), before any data.
    code, text = first.command(b"MAIL FROM:<carla@customer.test> SIZE=2000000")
    assert code == 452 and "4.3.1" in text, (code, text)
    # One session holds 800 kB mid-DATA; another's 400 kB no longer fits.
    transaction(first, mail_from=b"carla@customer.test")
    assert first.command(b"DATA")[0] == 354
    first.send(message("held", body * 800, **{"Message-ID": "<held@x.test>"}))
    time.sleep(0.5)
    transaction(second, mail_from=b"dora@customer.test")
    code, text = send_data(second, message("second", body * 400))
    assert code == 452 and "4.3.1" in text, (code, text)
    first.send(b".\r\n")
    assert first.reply()[0] == 250
    # The budget came back: the same 400 kB now fits.
    transaction(second, mail_from=b"dora@customer.test")
    assert (
        send_data(second, message("second", body * 400, **{"Message-ID": "<2@x.test>"}))[0] == 250
    )
    first.close()
    second.close()
    wait_processed()
    assert InboundMail.objects.count() == 2


def test_mime_caps_cut_the_work_and_say_so_without_delaying_others(e2e_stack, domains):
    port, _ = start(e2e_stack, MAILHUB_SMTPD_MAX_SIZE=str(8 * 1024 * 1024))
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\np\r\n" for _ in range(30_000))
    many_parts = message(
        "many parts",
        parts + b"--b--\r\n",
        **{"MIME-Version": "1.0", "Content-Type": "multipart/mixed; boundary=b"},
    )
    filler = {f"X-Filler-{i}": "v" for i in range(30_000)}
    many_headers = message("headers", **filler)
    nested = message(
        "nested",
        b"".join(
            b"--n%d\r\nContent-Type: multipart/mixed; boundary=n%d\r\n\r\n" % (i, i + 1)
            for i in range(2000)
        ),
        **{"MIME-Version": "1.0", "Content-Type": "multipart/mixed; boundary=n0"},
    )
    hostile = {"many parts": many_parts, "headers": many_headers, "nested": nested}
    times: list[float] = []

    def ordinary(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            started = time.monotonic()
            client.sendmail(
                "erin@customer.test",
                ["support@mailhub.test"],
                message(f"ordinary {n}", **{"Message-ID": f"<ord-{n}@x.test>"}),
            )
            times.append(time.monotonic() - started)

    for n, data in enumerate(hostile.values()):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.sendmail("mallory@evil.test", ["support@mailhub.test"], data)
        # Right after a hostile message is accepted (while it is being posted), another
        # sender's 250 comes at once.
        thread = threading.Thread(target=ordinary, args=(n,))
        thread.start()
        thread.join(timeout=30)
    wait_processed()
    assert len(times) == 3 and max(times) < 2.0, times
    for subject in hostile:
        row = InboundMail.objects.get(subject=subject)
        assert row.processed_at is not None and row.error == "", (subject, row.error)
        assert "content truncated" in row.chatter_message.body, subject
    assert Message.objects.filter(subject__startswith="ordinary").count() == 3


def test_sessions_end_idle_or_old_and_a_busy_listener_shares_its_slots(e2e_stack, domains):
    port, child = start(
        e2e_stack,
        MAILHUB_SMTPD_IDLE_TIMEOUT="1.5",
        MAILHUB_SMTPD_SESSION_LIFETIME="3",
        MAILHUB_SMTPD_MAX_CONNECTIONS="10",
        MAILHUB_SMTPD_MAX_CONNECTIONS_PER_IP="10",
    )
    # Past half full, one address gets its share of what is left: 7 of 10, not all 10.
    sessions = [RawSMTP(port) for _ in range(10)]
    codes = [s.banner[0] for s in sessions]
    assert codes.count(220) == 7 and codes.count(421) == 3, codes
    assert all("4.7.0" in s.banner[1] for s in sessions if s.banner[0] == 421)
    newcomer = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
    assert newcomer.recv(200).startswith(b"220"), "another address still gets in"
    newcomer.close()
    for s in sessions:
        s.close()
    assert "inbound.refused" in child.output() and "421" in child.output()
    time.sleep(0.3)  # the listener sees the closes

    def lasts(command: bytes) -> tuple[float, tuple[int, str]]:
        smtp = RawSMTP(port)
        started = time.monotonic()
        reply = (250, "")
        while reply[0] == 250 and time.monotonic() - started < 10:
            time.sleep(0.4)
            reply = smtp.command(command)
        smtp.close()
        return time.monotonic() - started, reply

    idle, reply = lasts(b"NOOP")  # NOOP is no progress: the idle timeout runs on
    assert 1.2 < idle < 2.6 and reply[0] in (0, 421), (idle, reply)
    old, reply = lasts(b"EHLO sender.test")  # progress, but the lifetime ends it
    assert 2.7 < old < 4.2 and reply[0] in (0, 421), (old, reply)
