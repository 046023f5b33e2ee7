"""manage.py testrelay against a real relay on loopback."""

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import free_port

pytestmark = pytest.mark.django_db


def test_reports_each_step_and_sends_a_test_mail(relay, capsys, outbox_settings):
    call_command("testrelay", "--to", "me@customer.test", "--send")
    out = capsys.readouterr().out
    assert "RCPT TO   250" in out
    assert "Connection Test Successful!" in out
    assert "Sent <" in out
    (received,) = relay.handler.received
    assert received.rcpt_tos == ["me@customer.test"]
    assert received.message["Auto-Submitted"] == "auto-generated"


def test_refused_recipient_and_dead_relay_exit_with_one_line(relay, settings, outbox_settings):
    with pytest.raises(CommandError, match="SMTPRecipientsRefused: 550 5.1.1 <nobody@reject"):
        call_command("testrelay", "--to", "nobody@reject.test")
    relay.handler.data_reply = "554 5.7.1 spam"
    with pytest.raises(CommandError, match="Test mail not delivered: .* failed 554 5.7.1 spam"):
        call_command("testrelay", "--to", "me@customer.test", "--send")
    settings.MAILHUB_RELAY_PORT = free_port()
    with pytest.raises(CommandError, match="Connection Test Failed: ConnectionRefusedError"):
        call_command("testrelay")


def test_a_mail_server_row_is_used_by_name(relay, capsys, outbox_settings):
    from outbox.models import MailServer

    MailServer.objects.create(name="Loopback", host="127.0.0.1", port=relay.port)
    outbox_settings.MAILHUB_RELAY_PORT = free_port()  # the environment's relay is down
    call_command("testrelay", "--server", "Loopback")
    assert "Connection Test Successful!" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No mail server named 'Nope'"):
        call_command("testrelay", "--server", "Nope")
