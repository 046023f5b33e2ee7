"""Delivery to Postfix's smtp-sink, which offers PIPELINING (RFC 2920): replies per step kept."""

import os
import shutil
import subprocess

import pytest

from outbox.models import MailAttempt, MailState, OutgoingMail, RecipientStatus
from outbox.relay import RelaySession, env_relay
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
