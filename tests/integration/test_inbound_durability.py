"""Accepted mail is never lost: a post that fails after the 250 is kept and retried."""

import datetime as dt
import sys

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from chatter.models import Message
from inbound.models import Decision, InboundMail
from inbound.services import inbound_process_many, inbound_process_pending
from records.models import Ticket
from tests.conftest import free_port, wait_for

RAW = (
    b"From: Carla <carla@customer.test>\r\nTo: catchall@mailhub.test\r\nSubject: Re: order\r\n"
    b"Message-ID: <kept@customer.test>\r\n\r\nPlease ship on Monday.\r\n"
)


def _stored_reply(*, record_id: int) -> InboundMail:
    """A reply the listener accepted (250) and committed, not yet posted."""
    return InboundMail.objects.create(
        peer="127.0.0.1",
        mail_from="carla@customer.test",
        rcpt_to="catchall@mailhub.test",
        message_id="<kept@customer.test>",
        subject="Re: order",
        raw=RAW,
        decision=Decision.REPLY,
        code=250,
        sender="carla@customer.test",
        record_type=ContentType.objects.get_for_model(Ticket),
        record_id=record_id,
    )


@pytest.mark.django_db
def test_a_failed_post_keeps_the_row_and_the_retry_posts_it():
    row = _stored_reply(record_id=424242)
    inbound_process_many(ids=[row.pk])
    row.refresh_from_db()
    assert row.processed_at is None and row.attempts == 1
    assert "DoesNotExist" in row.error, "the reason is on the row, for the admin"
    Ticket.objects.create(pk=424242, title="Order 42")
    assert inbound_process_pending(older_than_seconds=0) == 1
    row.refresh_from_db()
    assert row.processed_at is not None and row.error == ""
    assert Message.objects.get(message_id="<kept@customer.test>").object_id == 424242
    assert inbound_process_pending(older_than_seconds=0) == 0, "posted once"


@pytest.mark.django_db(transaction=True)
def test_a_restarted_listener_posts_what_was_accepted_before_a_crash(start_process):
    ticket = Ticket.objects.create(title="Order 43")
    row = _stored_reply(record_id=ticket.pk)
    InboundMail.objects.filter(pk=row.pk).update(
        received_at=timezone.now() - dt.timedelta(minutes=5)
    )
    port = free_port()
    listener = start_process(
        [sys.executable, "manage.py", "runsmtpd", "--listen", f"127.0.0.1:{port}"],
        name="smtpd-restart",
    )
    wait_for(
        lambda: Message.objects.filter(message_id="<kept@customer.test>").exists(),
        timeout=60,
        message=listener.output(),
    )
    row.refresh_from_db()
    assert row.chatter_message.object_id == ticket.pk
