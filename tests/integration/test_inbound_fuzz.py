"""Generated and mutated messages through the real listener: always a reply, never a crash.

Every message aiosmtpd lets through must be answered 250 (alias ``support@`` takes anyone) and
then posted without error: broken MIME is shown as well as possible, never refused or lost.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbound.models import InboundMail
from tests.support.inbound import smtp_client, wait_processed
from tests.unit.test_inbound_routing import generated_messages, mutated_messages

pytestmark = pytest.mark.django_db(transaction=True)
_senders = itertools.count()


def test_fuzzed_messages_are_accepted_and_posted(mail_domain, inbound_listener):
    listener = inbound_listener()

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.one_of(generated_messages(), mutated_messages()))
    def deliver(raw):
        # SMTP data is CRLF lines (RFC 5321 §2.3.8); smtplib sends bytes as they are.
        data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        with smtp_client(listener.port) as client:
            client.mail(f"fuzz{next(_senders)}@customer.test")
            client.rcpt("support@mailhub.test")
            code, text = client.data(data)
        too_long = code == 500 and b"Line too long" in text
        assert code == 250 or too_long, (code, text)

    deliver()
    wait_processed(timeout=120)
    failed = list(InboundMail.objects.exclude(error="").values_list("error", flat=True))
    assert failed == []
    assert not InboundMail.objects.filter(processed_at__isnull=True).exists()
