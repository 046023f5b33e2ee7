"""Inbound fixtures: our alias domain, a real listener on a free loopback port, an SMTP client.

``inbound_listener`` runs the same controller as ``manage.py runsmtpd`` in this process (its
database work runs in its own threads), so tests using it need
``pytest.mark.django_db(transaction=True)``.
"""

import smtplib
from email import policy
from email.message import EmailMessage

import pytest
from django.contrib.contenttypes.models import ContentType

from inbound.models import Alias, AliasDomain, InboundMail
from inbound.server import inbound_controller, inbound_controller_close
from records.models import Quote, Ticket


@pytest.fixture
def mail_domain(db):
    """``mailhub.test`` with ``support@`` → Ticket and ``sales@`` → Quote, as in the demo."""
    domain = AliasDomain.objects.create(domain="mailhub.test")
    for local, model in (("support", Ticket), ("sales", Quote)):
        Alias.objects.create(
            domain=domain, local_part=local, model=ContentType.objects.get_for_model(model)
        )
    return domain


@pytest.fixture
def inbound_listener(settings, transactional_db):
    """Start a listener; ``inbound_listener()`` returns it (call after changing settings)."""
    from tests.conftest import free_port

    started = []

    def start():
        controller = inbound_controller(host="127.0.0.1", port=free_port())
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()
        inbound_controller_close(controller)


def smtp_client(port: int, timeout: float = 30) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    client.ehlo("client.test")
    return client


def build_mail(
    *,
    sender: str = "Carla Customer <carla@customer.test>",
    to: str = "support@mailhub.test",
    subject: str = "Printer jams again",
    body: str = "Hello, the printer jams.",
    html: str | None = None,
    message_id: str | None = "<m1@customer.test>",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def send(port: int, msg, *, mail_from: str = "carla@customer.test", to=None) -> dict:
    """Send one message; returns smtplib's refused-recipients dict (raises on refusals)."""
    recipients = to or [msg["To"]]
    # SMTP lines end in CRLF (RFC 5321 §2.3.8); smtplib sends bytes as they are.
    data = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
    with smtp_client(port) as client:
        refused = client.sendmail(mail_from, recipients, data)
    wait_processed()
    return refused


def wait_processed(timeout: float = 30) -> None:
    """Wait until the listener has posted what it accepted (it does so right after the 250)."""
    from tests.conftest import wait_for

    wait_for(
        lambda: not InboundMail.objects.filter(processed_at__isnull=True, attempts=0).exists(),
        timeout=timeout,
        message="the listener did not process the accepted mail",
    )
