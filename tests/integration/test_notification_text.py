"""The text part of a chatter notification, as the relay receives it, keeps the body's shape."""

import pytest
from django.contrib.contenttypes.models import ContentType

from chatter.services import contact_get_or_create, follower_add
from outbox.services import mails_send
from tests.support.chatter import TicketFactory

pytestmark = pytest.mark.django_db


def _text_part(received) -> str:
    message = received.message
    part = message.get_body(preferencelist=("plain",))
    return part.get_content().replace("\r\n", "\n")


def test_the_sent_text_part_keeps_paragraphs_lines_and_links(
    relay, outbox_settings, client, staff_user
):
    ticket = TicketFactory(title="Printer")
    follower_add(record=ticket, contact=contact_get_or_create(email="anna@customer.test"))
    client.force_login(staff_user)
    ct = ContentType.objects.get_for_model(ticket)
    typed = "Hello Anna,\n\nthe printer is fixed.\nSee https://status.example.test/p1 for details."
    response = client.post(
        f"/chatter/{ct.pk}/{ticket.pk}/post/",
        {"action": "message", "subject": "Printer", "body": typed},
    )
    assert response.status_code in (200, 302)
    mails_send()
    (received,) = [m for m in relay.handler.received if "anna@customer.test" in m.rcpt_tos]
    text = _text_part(received)
    assert text.startswith(
        "Hello Anna,\n\nthe printer is fixed.\nSee https://status.example.test/p1 for details.\n"
    ), text
    # The HTML part still carries the same paragraphs.
    html = received.message.get_body(preferencelist=("html",)).get_content()
    assert "<p>Hello Anna,</p><p>the printer is fixed.<br>" in html
