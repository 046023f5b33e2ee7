"""manage.py sendtestmail drives the real listener: alias mail, replies and refusals."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chatter.models import Message
from chatter.services import message_post
from records.models import Ticket
from tests.conftest import free_port
from tests.support.inbound import wait_processed

pytestmark = pytest.mark.django_db(transaction=True)


def test_sendtestmail_creates_a_ticket_then_replies_into_it(mail_domain, inbound_listener):
    listener = inbound_listener()
    server = f"127.0.0.1:{listener.port}"
    call_command("sendtestmail", "--server", server, "--subject", "Operator check")
    wait_processed()
    ticket = Ticket.objects.get()
    assert ticket.title == "Operator check"
    message_post(record=ticket, author=None, body="<p>answer</p>")
    call_command(
        "sendtestmail",
        "--server",
        server,
        "--reply-to-record",
        f"ticket:{ticket.pk}",
        "--body",
        "customer answer",
    )
    wait_processed()
    assert Ticket.objects.count() == 1
    assert Message.objects.filter(object_id=ticket.pk, body__contains="customer answer").exists()


def test_sendtestmail_reports_refusals_and_a_missing_listener(mail_domain, inbound_listener):
    listener = inbound_listener()
    with pytest.raises(CommandError, match="550 5.1.1 <nobody@mailhub.test>"):
        call_command(
            "sendtestmail", "--server", f"127.0.0.1:{listener.port}", "--to", "nobody@mailhub.test"
        )
    with pytest.raises(CommandError, match="is `manage.py runsmtpd` running"):
        call_command("sendtestmail", "--server", f"127.0.0.1:{free_port()}")
