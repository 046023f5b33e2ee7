"""Hostile input against the real listener, web and sender: a code or a form error, never harm.

Each case talks to the real ``manage.py runsmtpd`` process over a raw socket or smtplib and
checks what a user would see: the SMTP reply, what got stored and posted, what the record page
shows, what leaves for the relay. None may end in a 500, a traceback, a smuggled second message,
an injected header or a post into a record the sender has no token for.
"""

import re
import smtplib
import socket
import time
from email import policy
from email.message import EmailMessage

import pytest
from django.contrib.contenttypes.models import ContentType

from chatter.models import Message
from chatter.services import contact_get_or_create, follower_add, message_post
from inbound.models import Alias, AliasDomain, Decision, InboundMail
from outbox.models import MailState, OutgoingMail
from records.models import Ticket
from tests.support.chatter import TicketFactory
from tests.support.e2e import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def listener(e2e_stack, transactional_db):
    domain = AliasDomain.objects.create(domain="mailhub.test")
    ticket_type = ContentType.objects.get_for_model(Ticket)
    Alias.objects.create(domain=domain, local_part="support", model=ticket_type)
    e2e_stack.smtpd(MAILHUB_SMTPD_MAX_SIZE=str(200_000), MAILHUB_SMTPD_MAX_COMMANDS="1000")
    return e2e_stack.smtpd_port


class RawSMTP:
    """A socket that speaks SMTP byte for byte, so we can send what smtplib never would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.banner = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return (0, "connection closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line: bytes) -> tuple[int, str]:
        self.send(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def wait_processed() -> None:
    wait_until(
        lambda: not InboundMail.objects.filter(processed_at__isnull=True, attempts=0).exists(),
        timeout=30,
        message="the listener did not process what it accepted",
    )


# --- SMTP smuggling (RFC 5321 §2.3.8: only CRLF.CRLF ends DATA) ----------------------------------

SMUGGLING_ENDS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
}


@pytest.mark.parametrize("end", SMUGGLING_ENDS.values(), ids=SMUGGLING_ENDS.keys())
def test_smuggled_second_message_is_never_accepted(listener, end):
    smtp = RawSMTP(listener)
    assert smtp.banner[0] == 220
    assert smtp.command(b"EHLO attacker.test")[0] == 250
    assert smtp.command(b"MAIL FROM:<carla@customer.test>")[0] == 250
    assert smtp.command(b"RCPT TO:<support@mailhub.test>")[0] == 250
    assert smtp.command(b"DATA")[0] == 354
    smuggled = (
        b"MAIL FROM:<ceo@mailhub.test>\r\nRCPT TO:<support@mailhub.test>\r\nDATA\r\n"
        b"From: ceo@mailhub.test\r\nSubject: smuggled\r\n"
        b"Message-ID: <smuggled-inner@evil.test>\r\n\r\nWire the money.\r\n"
    )
    smtp.send(
        b"From: carla@customer.test\r\nTo: support@mailhub.test\r\nSubject: outer\r\n"
        b"Message-ID: <smuggle-outer@customer.test>\r\n\r\nHello." + end + smuggled + b"\r\n.\r\n"
    )
    replies = [smtp.reply()]
    smtp.send(b"QUIT\r\n")
    while replies[-1][0] not in (0, 221):
        replies.append(smtp.reply())
    smtp.close()
    wait_processed()
    codes = [code for code, _ in replies]
    assert codes.count(250) <= 1, f"two messages accepted from one DATA: {replies}"
    assert 500 not in codes, f"a crash-like 500: {replies}"
    assert not InboundMail.objects.filter(message_id="<smuggled-inner@evil.test>").exists()
    assert not Message.objects.filter(subject="smuggled").exists()
    assert not InboundMail.objects.filter(mail_from__icontains="ceo@mailhub.test").exists()


def test_bare_cr_and_lf_in_commands_never_split_into_two_commands(listener):
    smtp = RawSMTP(listener)
    smtp.command(b"EHLO attacker.test")
    code, _ = smtp.command(b"MAIL FROM:<carla@customer.test>\rRCPT TO:<x@evil.test>")
    # Either one malformed MAIL (a 5xx syntax error) or one MAIL with a strange address;
    # never a RCPT for a foreign domain slipped in.
    second = smtp.command(b"RCPT TO:<support@mailhub.test>")
    smtp.command(b"RSET")
    assert code in (250, 501, 500, 553), code
    assert second[0] in (250, 503), second
    assert smtp.command(b"NOOP")[0] == 250, "the session is still usable"
    smtp.close()


# --- addresses, sizes, recipient floods ----------------------------------------------------------


def test_relaying_to_foreign_domains_and_unknown_mailboxes_is_refused(listener):
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo("attacker.test")
        client.mail("spammer@evil.test")
        foreign = client.rcpt("victim@gmail.example")
        unknown = client.rcpt("nobody@mailhub.test")
    smtp = RawSMTP(listener)
    smtp.command(b"EHLO attacker.test")
    smtp.command(b"MAIL FROM:<spammer@evil.test> SMTPUTF8")
    utf8_unknown = smtp.command("RCPT TO:<désk@mailhub.test>".encode())
    utf8_foreign = smtp.command("RCPT TO:<victim@exämple.test>".encode())
    smtp.close()
    assert foreign[0] == 550 and b"5.7.1" in foreign[1], foreign
    assert unknown[0] == 550 and b"5.1.1" in unknown[1], unknown
    assert utf8_unknown[0] == 550 and "5.1.1" in utf8_unknown[1], utf8_unknown
    assert utf8_foreign[0] == 550 and "5.7.1" in utf8_foreign[1], utf8_foreign
    assert InboundMail.objects.count() == 0


def test_smtputf8_mail_is_accepted_stored_intact_and_shown_right(listener):
    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = "José Müller <josé@exämple.test>"
    msg["To"] = "support@mailhub.test"
    msg["Subject"] = "Ünïcödé subject ✓"
    msg["Message-ID"] = "<utf8-1@example.test>"
    msg.set_content("Grüße aus Köln ✓\n")
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo("sender.test")
        assert client.has_extn("smtputf8"), "SMTPUTF8 is advertised"
        refused = client.send_message(msg, mail_options=["SMTPUTF8"])
    assert refused == {}
    wait_processed()
    stored = InboundMail.objects.get()
    assert "Ünïcödé subject ✓".encode() in bytes(stored.raw), "the raw source is kept as sent"
    posted = Message.objects.get(message_id="<utf8-1@example.test>")
    assert "Grüße aus Köln ✓" in posted.body
    assert posted.subject == "Ünïcödé subject ✓"


def test_encoded_non_ascii_headers_are_shown_decoded(listener):
    msg = EmailMessage()  # RFC 2047 encoded words: what most senders still use
    msg["From"] = "José Müller <jose@example.test>"
    msg["To"] = "support@mailhub.test"
    msg["Subject"] = "Ünïcödé subject ✓"
    msg["Message-ID"] = "<utf8-2@example.test>"
    msg.set_content("Grüße aus Köln ✓\n")
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        assert client.send_message(msg) == {}
    wait_processed()
    posted = Message.objects.get(message_id="<utf8-2@example.test>")
    assert posted.subject == "Ünïcödé subject ✓"
    assert posted.author is not None and posted.author.name == "José Müller"
    assert "Grüße aus Köln ✓" in posted.body


def test_ten_thousand_recipients_get_452_past_100_and_the_session_is_cut(listener):
    smtp = RawSMTP(listener)
    smtp.command(b"EHLO flood.test")
    smtp.command(b"MAIL FROM:<flood@customer.test>")
    codes = []
    started = time.monotonic()
    for i in range(10_000):
        code, text = smtp.command(b"RCPT TO:<support@mailhub.test>" if i < 150 else b"RCPT TO:<a>")
        codes.append(code)
        if code in (0, 421):
            break
    smtp.close()
    assert codes[:100] == [250] * 100, "RFC 5321 §4.5.3.1.8: 100 recipients must be taken"
    assert set(codes[100:150]) == {452}, "past 100: 452, the sender sends the rest later"
    assert codes[-1] == 421, "a flood of commands ends the session with 421"
    assert len(codes) <= 1000 + 1, "the per-session command limit holds"
    assert time.monotonic() - started < 60
    # The listener is fine for the next client.
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        assert client.noop()[0] == 250


def test_oversized_mail_is_refused_with_552_with_and_without_size(listener):
    big = b"x" * 300_000
    msg = EmailMessage()
    msg["From"] = "carla@customer.test"
    msg["To"] = "support@mailhub.test"
    msg["Subject"] = "huge"
    msg["Message-ID"] = "<huge-1@customer.test>"
    msg.add_attachment(big, maintype="application", subtype="octet-stream", filename="big.bin")
    with smtplib.SMTP("127.0.0.1", listener, timeout=20) as client:
        client.ehlo("sender.test")
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.send_message(msg)
    assert declared.value.smtp_code == 552
    # A client that does not declare SIZE is refused after the data, and nothing is stored.
    smtp = RawSMTP(listener)
    smtp.command(b"EHLO sender.test")
    smtp.command(b"MAIL FROM:<carla@customer.test>")
    smtp.command(b"RCPT TO:<support@mailhub.test>")
    assert smtp.command(b"DATA")[0] == 354
    body = b"Subject: huge\r\nMessage-ID: <huge-2@customer.test>\r\n\r\n"
    body += (b"y" * 998 + b"\r\n") * 300
    smtp.send(body + b".\r\n")
    code, _ = smtp.reply()
    smtp.close()
    assert code == 552
    assert InboundMail.objects.filter(message_id__startswith="<huge-").count() == 0


# --- content: header injection and script in inbound mail ----------------------------------------


def test_inbound_encoded_newlines_and_script_become_inert_text(e2e_stack, listener, staff_user):
    raw = (
        b"From: Mallory <mallory@evil.test>\r\nTo: support@mailhub.test\r\n"
        b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@evil.test?=\r\n"
        b"Message-ID: <xss-1@evil.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Hello</p><script>window.__xss=1</script>"
        b'<img src=x onerror="window.__xss=2"><a href="javascript:window.__xss=3">click</a>\r\n'
    )
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.sendmail("mallory@evil.test", ["support@mailhub.test"], raw)
    wait_processed()
    posted = Message.objects.get(message_id="<xss-1@evil.test>")
    ticket = posted.record
    for text in (posted.subject, ticket.title):
        assert "\r" not in text and "\n" not in text, f"a decoded newline survived: {text!r}"

    e2e_stack.web()
    web = e2e_stack.web_client()
    web.login("staff", "staff-password")
    page = web.get(ticket.get_absolute_url())
    assert page.status == 200
    assert "Hello" in page.text
    assert "<script>window.__xss" not in page.text
    assert not re.search(r"<[^>]+onerror", page.text), "an event handler attribute survived"
    assert "javascript:window" not in page.text


def test_a_forged_reply_without_the_token_never_posts_into_the_record(listener):
    victim = TicketFactory(title="Private quote negotiation")
    known = message_post(record=victim, author=None, body="<p>Our offer</p>", subject="Offer")
    before = Message.objects.filter(object_id=victim.pk).count()
    token = known.message_id.strip("<>").split("@")[0]
    forged_ids = [
        f"<{token[:-4]}AAAA@mailhub.test>",  # a near miss of the real token
        f"<ticket-{victim.pk}@mailhub.test>",  # a guess from the record number
        "<1@mailhub.test>",
    ]

    def reply(n: int, in_reply_to: str, to: str) -> tuple[int, bytes]:
        msg = EmailMessage()
        msg["From"] = "mallory@evil.test"
        msg["To"] = to
        msg["Subject"] = "Re: Offer"
        msg["Message-ID"] = f"<forged-{n}@evil.test>"
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
        msg.set_content("Change the bank account to mine.")
        with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
            client.ehlo("evil.test")
            client.mail("mallory@evil.test")
            code, text = client.rcpt(to)
            if code == 250:
                code, text = client.data(msg.as_bytes(policy=policy.SMTP))
            return code, text

    answers = [reply(n, mid, "catchall@mailhub.test") for n, mid in enumerate(forged_ids)]
    assert all(code == 550 for code, _ in answers), answers
    # Through a public alias the forged reply only opens a new ticket of its own.
    assert reply(9, forged_ids[0], "support@mailhub.test")[0] == 250
    wait_processed()
    assert Message.objects.filter(object_id=victim.pk, content_type=known.content_type).count() == (
        before
    )
    assert not Message.objects.filter(object_id=victim.pk, body__contains="bank account").exists()

    # The genuine token is taken (the refusals above were about the token), but a leaked token
    # is not a key: from someone the thread was never sent to, it is held for review.
    assert reply(10, known.message_id, "catchall@mailhub.test")[0] == 250
    wait_processed()
    held = InboundMail.objects.get(message_id="<forged-10@evil.test>")
    assert (held.decision, held.record_id) == (Decision.HELD, victim.pk)
    assert not Message.objects.filter(object_id=victim.pk, body__contains="bank account").exists()


def test_header_injection_from_the_web_never_reaches_the_relay(e2e_stack, staff_user, fault_report):
    """The composer's subject carries CRLF + Bcc: the mail that leaves has neither."""
    ticket = TicketFactory(title="Injection target", created_by=staff_user)
    follower_add(record=ticket, contact=contact_get_or_create(email="cust@customer.test"))
    e2e_stack.env.update(MAILHUB_DAILY_QUOTA="0")
    e2e_stack.web()
    e2e_stack.worker()
    web = e2e_stack.web_client()
    web.login("staff", "staff-password")
    ct = ContentType.objects.get_for_model(Ticket).pk
    response = web.post(
        f"/chatter/{ct}/{ticket.pk}/post/",
        {
            "action": "message",
            "subject": "Hello\r\nBcc: victim@evil.test\r\nX-Injected: 1",
            "body": "See the subject.",
        },
    )
    assert response.status in (302, 400), response.status
    if response.status == 400:
        return  # refused as a form error: nothing was queued
    relay = e2e_stack.relay

    def settled() -> bool:
        return (
            bool(relay.handler.received)
            or OutgoingMail.objects.filter(state=MailState.EXCEPTION).exists()
        )

    wait_until(settled, timeout=60, message=f"the notification never left\n{e2e_stack.logs()}")
    subjects = []
    for received in relay.handler.received:
        assert received.rcpt_tos == ["cust@customer.test"], received.rcpt_tos
        headers = received.data.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"(?im)^(bcc|x-injected):", headers), headers.decode()
        subjects.append(str(received.message["Subject"]))
    failed = OutgoingMail.objects.filter(state=MailState.EXCEPTION).first()
    fault_report.record(
        case="header injection (CRLF + Bcc) in the composer subject",
        sent=1,
        arrived=len(relay.handler.received),
        lost=0,
        duplicates=0,
        seconds=0,
        notes=f"left with Subject {subjects[0]!r}, no Bcc, one recipient"
        if subjects
        else f"not sent: {failed.failure_reason[:120]!r}",
    )
