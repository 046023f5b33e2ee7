"""Pipelined delivery (RFC 2920) to smtp-sink and the aiosmtpd relay: each reply kept."""

import os
import shutil
import subprocess
import time

import pytest
from aiosmtpd.controller import Controller

from mailhub.devrelay import DevRelayHandler
from outbox.models import MailAttempt, MailState, OutgoingMail, RecipientStatus
from outbox.relay import RelaySession, Transaction, env_relay
from outbox.services import mails_send
from tests.conftest import free_port, wait_for
from tests.support.outbox import enqueue

pytestmark = pytest.mark.django_db

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@pytest.fixture
def sink(settings):
    """Start smtp-sink with extra flags on a free port; the outbox's relay points at it."""
    if not os.path.exists(SMTP_SINK):
        pytest.skip("smtp-sink is not installed: apt-get install -y postfix")
    started = []

    def start(*flags: str) -> int:
        port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        proc = subprocess.Popen(
            [SMTP_SINK, *user, *flags, f"127.0.0.1:{port}", "16"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        settings.MAILHUB_RELAY_PORT = port

        def accepting() -> bool:
            try:
                RelaySession(env_relay()).open()
            except Exception:  # noqa: BLE001 - not listening yet
                return False
            return True

        wait_for(accepting, timeout=10, message="smtp-sink did not start")
        return port

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def test_pipelined_delivery(sink, outbox_settings):
    sink()
    session = RelaySession(env_relay())
    session.open()
    assert session.pipelining
    session.close()
    mails = enqueue(3)
    mails_send()
    assert set(OutgoingMail.objects.values_list("state", flat=True)) == {MailState.SENT}
    assert MailAttempt.objects.filter(code=250).count() == len(mails)


def test_pipelined_refusal_at_rcpt_is_kept_with_the_servers_words(sink, outbox_settings):
    sink("-B", "550 5.1.1 mailbox unavailable", "-f", "rcpt")
    first, second = enqueue(2)
    mails_send()
    for mail in (first, second):  # the session stays usable: the second gets its own answer
        mail.refresh_from_db()
        assert mail.state == MailState.EXCEPTION
        assert "SMTPRecipientsRefused: 550\n5.1.1 mailbox unavailable" in mail.failure_reason
        recipient = mail.recipients.get()
        assert (recipient.status, recipient.code) == (RecipientStatus.FAILED, 550)


def test_pipelined_4xx_after_data_is_deferred(sink, outbox_settings):
    sink("-r", ".")
    (mail,) = enqueue(1)
    mails_send()
    mail.refresh_from_db()
    assert mail.state == MailState.OUTGOING
    attempt = MailAttempt.objects.get(mail=mail)
    assert (attempt.code, attempt.error_class) == (450, "SMTPDataError")


# --- the stream: one round trip per mail (aiosmtpd relay, which advertises PIPELINING) ---------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "stepwise"])
def test_a_stream_of_mixed_answers_keeps_each_recipients_own(relay, outbox_settings, pipelining):
    relay.handler.pipelining = pipelining
    addresses = [
        "a@customer.test",
        "nobody@reject.test",
        "b@customer.test",
        "later@defer.test",
        "c@customer.test",
    ]
    mails = {}
    for address in addresses:
        (mail,) = enqueue(1, to=address)
        mails[address] = mail
    mails_send()
    states = {a: OutgoingMail.objects.get(pk=m.pk).state for a, m in mails.items()}
    assert states == {
        "a@customer.test": MailState.SENT,
        "nobody@reject.test": MailState.EXCEPTION,
        "b@customer.test": MailState.SENT,
        "later@defer.test": MailState.OUTGOING,  # 451: retried later
        "c@customer.test": MailState.SENT,
    }
    codes = dict(MailAttempt.objects.values_list("recipient", "code"))
    assert codes == {
        "a@customer.test": 250,
        "nobody@reject.test": 550,
        "b@customer.test": 250,
        "later@defer.test": 451,
        "c@customer.test": 250,
    }
    received = [rcpt for m in relay.handler.received for rcpt in m.rcpt_tos]
    assert received == ["a@customer.test", "b@customer.test", "c@customer.test"]
    # Each message arrived whole, under its own subject.
    subjects = [m.message["Subject"] for m in relay.handler.received]
    assert subjects == ["Mail 0"] * 3


def test_a_pipelined_session_holds_each_content_for_the_next_write(relay):
    """The outcome of a mail comes back with the next mail's submit (or the final flush)."""
    session = RelaySession(env_relay())
    first = Transaction("s@mailhub.test", "a@customer.test", b"Subject: 1\r\n\r\n.x\r\n", 1)
    second = Transaction("s@mailhub.test", "b@customer.test", b"Subject: 2\r\n\r\nbody\r\n", 2)
    try:
        assert session.submit(first) == []  # accepted up to 354; content not written yet
        assert relay.handler.received == []
        done = session.submit(second)
        assert [(t.token, r.code) for t, r in done] == [(1, 250)]
        assert [(t.token, r.code) for t, r in session.flush()] == [(2, 250)]
    finally:
        session.close()
    # The leading dot was stuffed on the wire and unstuffed by the relay.
    assert [m.data for m in relay.handler.received] == [first.data, second.data]


def test_closing_with_content_held_back_delivers_nothing(relay):
    session = RelaySession(env_relay())
    assert session.submit(Transaction("s@mailhub.test", "a@customer.test", b"x\r\n", 1)) == []
    session.close()  # e.g. the worker stops between two mails
    time.sleep(0.3)
    assert relay.handler.received == []


class _HangsUpOnSecond(DevRelayHandler):
    """Answers 421 at the end of the second message (the relay is going away), then goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.datas = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.datas += 1
        if self.datas == 2:
            return "421 4.3.2 Service shutting down"
        return await super().handle_DATA(server, session, envelope)


def test_421_mid_stream_defers_that_mail_and_the_next_goes_on_a_new_session(
    settings, outbox_settings
):
    handler = _HangsUpOnSecond()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    settings.MAILHUB_RELAY_PORT = controller.port
    try:
        mails = [enqueue(1, to=f"r{i}@customer.test")[0] for i in range(4)]
        mails_send()
    finally:
        controller.stop()
    states = [OutgoingMail.objects.get(pk=m.pk).state for m in mails]
    assert states == [MailState.SENT, MailState.OUTGOING, MailState.SENT, MailState.SENT]
    assert MailAttempt.objects.get(mail=mails[1]).code == 421
    # The third mail's commands went out before the 421: it is sent again, once, elsewhere.
    received = [rcpt for m in handler.received for rcpt in m.rcpt_tos]
    assert received == ["r0@customer.test", "r2@customer.test", "r3@customer.test"]
