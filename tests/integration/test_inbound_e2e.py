"""The whole loop with real processes: a notification leaves through the relay, the customer
answers it, the listener threads the answer and the agent is notified by mail in turn."""

import sys

import pytest

from chatter.models import Message
from chatter.services import contact_for_user, contact_get_or_create, follower_add, message_post
from records.models import Ticket
from tests.conftest import free_port, wait_for
from tests.support.chatter import StaffFactory
from tests.support.inbound import build_mail, smtp_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _mails_to(relay, address: str):
    return [m for m in relay.handler.received if address in m.rcpt_tos]


def test_customer_reply_travels_back_into_the_thread(
    mail_domain, relay, celery_worker_process, start_process
):
    celery_worker_process()
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    customer = contact_get_or_create(email="carla@customer.test", name="Carla")
    ticket = Ticket.objects.create(title="Broken printer")
    follower_add(record=ticket, contact=agent)
    follower_add(record=ticket, contact=customer)
    message_post(record=ticket, author=agent, body="<p>A technician comes tomorrow.</p>")
    sent = wait_for(lambda: _mails_to(relay, "carla@customer.test"), timeout=60)[0]

    port = free_port()
    listener = start_process(
        [sys.executable, "manage.py", "runsmtpd", "--listen", f"127.0.0.1:{port}"],
        name="smtpd-e2e",
    )
    wait_for(lambda: "listening" in listener.output(), timeout=30, message=listener.output())
    reply_to = str(sent.message["Reply-To"])
    answer = build_mail(
        to=reply_to,
        subject=f"Re: {sent.message['Subject']}",
        body="Thanks, I will be there at 9.",
        message_id="<answer@customer.test>",
        In_Reply_To=sent.message_id,
        References=sent.message_id,
    )
    with smtp_client(port) as client:
        client.send_message(answer, to_addrs=[reply_to])

    posted = wait_for(
        lambda: Message.objects.filter(message_id="<answer@customer.test>").first(),
        timeout=60,
        message=listener.output(),
    )
    assert posted.object_id == ticket.pk and posted.author == customer
    to_agent = wait_for(lambda: _mails_to(relay, "agent@mailhub.test"), timeout=60)
    assert "I will be there at 9." in to_agent[-1].message.get_body().get_content()
