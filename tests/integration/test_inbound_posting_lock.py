"""Reading a received body (the slow part of a post) happens outside any transaction.

On SQLite a transaction holds the database's one write lock: a body parsed and sanitised
inside it made every other sender wait for its ``250`` until the post was done.
"""

import pytest
from django.db import connection

from chatter.models import Message
from inbound import services
from tests.conftest import wait_for
from tests.support.inbound import build_mail, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_body_of_a_post_is_read_outside_the_transaction(
    mail_domain, inbound_listener, monkeypatch
):
    inside: list[bool] = []
    read = services.inbound_body

    def watched(**kwargs):
        inside.append(connection.in_atomic_block)
        return read(**kwargs)

    monkeypatch.setattr(services, "inbound_body", watched)
    listener = inbound_listener()
    send(listener.port, build_mail(html="<p>Read <b>first</b></p>", message_id="<lock@c.test>"))

    posted = wait_for(lambda: Message.objects.filter(message_id="<lock@c.test>").first())
    assert "Read <b>first</b>" in posted.body
    assert inside == [False]
