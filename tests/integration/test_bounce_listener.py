"""Bounces through the real listener over SMTP, for mail the outbox really sent to a relay.

A message is posted to followers, the outbox delivers it to the test relay (aiosmtpd on
loopback) with a VERP Return-Path per recipient, then a real-format DSN for one of those mails
comes back to the inbound listener with ``MAIL FROM:<>``, as a remote MTA would send it.
"""

import datetime as dt

import pytest
from django.utils import timezone

from chatter.models import FailureType, Notification, NotificationStatus
from chatter.models import Message as ChatterMessage
from chatter.services import contact_for_user, contact_get_or_create, follower_add, message_post
from chatter.suppression import contact_bounce_record
from inbound.models import Decision, InboundMail
from outbox.models import OutgoingMail
from outbox.services import mails_send
from outbox.verp import VerpRef, bounce_address
from tests.conftest import wait_for
from tests.support import bounces
from tests.support.chatter import StaffFactory, TicketFactory
from tests.support.inbound import build_mail, send, smtp_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def delivered(mail_domain, relay, outbox_settings):
    """A staff post on a ticket, delivered by the outbox to Bob and Alice through the relay.

    Returns (message, {address: notification}, {address: (envelope sender, Message-ID)}).
    """
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    ticket = TicketFactory(title="Printer on fire")
    follower_add(record=ticket, contact=agent)
    for address in ("bob@customer.test", "alice@customer.test"):
        follower_add(record=ticket, contact=contact_get_or_create(email=address))
    message = message_post(record=ticket, author=agent, body="<p>Technician on the way.</p>")
    return message, *_deliver(message, relay)


def _deliver(message, relay):
    mails_send(mail_ids=list(OutgoingMail.objects.values_list("pk", flat=True)))
    notifications = {
        n.contact.email: n for n in message.notifications.select_related("contact").all()
    }
    assert {n.status for n in notifications.values()} == {NotificationStatus.SENT}
    envelopes = {}
    for mail in relay.handler.received:
        [rcpt] = mail.rcpt_tos
        envelopes[rcpt] = (mail.mail_from, mail.message_id)
    return notifications, envelopes


def dsn_back(listener, raw: bytes, rcpt: str) -> dict:
    """A remote MTA returning a DSN: null reverse-path (RFC 5321 §4.5.5).

    Returns once the listener has processed what it accepted (it may do so after its 250).
    """
    with smtp_client(listener.port) as client:
        refused = client.sendmail("<>", [rcpt], raw)
    all_processed()
    return refused


def all_processed() -> None:
    wait_for(
        lambda: not InboundMail.objects.filter(processed_at__isnull=True).exists(),
        timeout=30,
        message="the listener did not process the mail it accepted",
    )


def test_the_outbox_gives_each_recipient_its_own_verp_return_path(delivered):
    message, notifications, envelopes = delivered
    for address, notification in notifications.items():
        sender, _ = envelopes[address]
        assert sender == bounce_address(ref=VerpRef("n", notification.pk))


def test_postfix_dsn_to_the_verp_address_turns_exactly_that_notification_bounce(
    delivered, inbound_listener, bounce_log, relay
):
    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]
    messages_before = ChatterMessage.objects.count()

    refused = dsn_back(
        listener,
        bounces.postfix_dsn(message_id=message_id, recipient="bob@customer.test", sender=sender),
        sender,
    )

    assert refused == {}
    bob = Notification.objects.get(pk=notifications["bob@customer.test"].pk)
    alice = Notification.objects.get(pk=notifications["alice@customer.test"].pk)
    assert bob.status == NotificationStatus.BOUNCE
    assert bob.failure_type == FailureType.BOUNCE
    assert "Status: 5.1.1" in bob.failure_reason
    assert "Recipient address rejected: User unknown in local recipient table" in (
        bob.failure_reason
    )
    assert alice.status == NotificationStatus.SENT
    stored = InboundMail.objects.get()
    assert stored.decision == Decision.BOUNCE
    assert stored.rcpt_to == sender
    assert stored.processed_at is not None
    bob.contact.refresh_from_db()
    assert bob.contact.bounce_count == 1
    assert any("event=bounce.applied" in line for line in bounce_log)
    # A bounce is not a post, and nothing answers it (RFC 3834 §2).
    assert ChatterMessage.objects.count() == messages_before
    assert len(relay.handler.received) == 2
    assert not OutgoingMail.objects.exists()


@pytest.mark.parametrize("sample", sorted(bounces.SAMPLES))
def test_real_format_bounces_to_the_plain_bounce_address(delivered, inbound_listener, sample):
    message, notifications, envelopes = delivered
    listener = inbound_listener()
    # The bounce returns Alice's copy's headers, her VERP Return-Path among them.
    sender, message_id = envelopes["alice@customer.test"]
    raw = bounces.SAMPLES[sample](
        message_id=message_id, recipient="alice@customer.test", sender=sender
    )

    assert dsn_back(listener, raw, "bounce@mailhub.test") == {}

    alice = Notification.objects.get(pk=notifications["alice@customer.test"].pk)
    bob = Notification.objects.get(pk=notifications["bob@customer.test"].pk)
    assert alice.status == NotificationStatus.BOUNCE, sample
    assert "Bounced: the mail to alice@customer.test was not delivered." in alice.failure_reason
    assert bob.status == NotificationStatus.SENT


def test_a_dsn_recognised_by_its_form_at_the_catchall(delivered, inbound_listener):
    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]
    raw = bounces.exchange_online_ndr(
        message_id=message_id, recipient="bob@customer.test", sender=sender
    )

    assert dsn_back(listener, raw, "catchall@mailhub.test") == {}

    bob = Notification.objects.get(pk=notifications["bob@customer.test"].pk)
    assert bob.status == NotificationStatus.BOUNCE
    assert "RESOLVER.ADR.RecipientNotFound" in bob.failure_reason


def test_a_delayed_warning_leaves_the_notification_sent(delivered, inbound_listener, bounce_log):
    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]
    raw = bounces.postfix_delayed(message_id=message_id, recipient="bob@customer.test")

    assert dsn_back(listener, raw, sender) == {}

    bob = Notification.objects.get(pk=notifications["bob@customer.test"].pk)
    assert bob.status == NotificationStatus.SENT
    assert bob.contact.bounce_count == 0
    assert InboundMail.objects.get().decision == Decision.BOUNCE
    assert any("event=bounce.delayed" in line for line in bounce_log)


def test_a_bounce_for_an_unknown_token_is_stored_and_logged(
    mail_domain, inbound_listener, bounce_log
):
    listener = inbound_listener()
    ghost = bounce_address(ref=VerpRef("n", 424242), domain="mailhub.test")
    raw = bounces.postfix_dsn(message_id="<gone@mailhub.test>", recipient="x@customer.test")

    assert dsn_back(listener, raw, ghost) == {}

    stored = InboundMail.objects.get()
    assert stored.decision == Decision.BOUNCE
    assert stored.processed_at is not None and stored.error == ""
    assert bytes(stored.raw) == raw
    assert any("event=bounce.unmatched" in line and "n424242" in line for line in bounce_log)


def test_the_fifth_bounce_blacklists_and_the_next_post_mails_nobody_there(
    delivered, inbound_listener, relay
):
    message, notifications, envelopes = delivered
    bob = notifications["bob@customer.test"].contact
    now = timezone.now()
    for days in (40, 30, 20, 10):
        contact_bounce_record(contact=bob, hard=True, status="5.1.1", at=now - dt.timedelta(days))
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]

    dsn_back(listener, bounces.exim_bounce(message_id=message_id, recipient=bob.email), sender)

    bob.refresh_from_db()
    assert bob.bounce_count == 5 and bob.blacklisted
    received_before = len(relay.handler.received)
    again = message_post(record=message.record, author=message.author, body="<p>Done.</p>")
    mails_send()
    to_bob = again.notifications.get(contact=bob)
    assert to_bob.status == NotificationStatus.CANCELED
    assert to_bob.failure_reason == "Blacklisted Address"
    new = relay.handler.received[received_before:]
    assert [m.rcpt_tos for m in new] == [["alice@customer.test"]]


def test_a_genuine_reply_resets_the_bounce_counter(delivered, inbound_listener):
    message, notifications, envelopes = delivered
    bob = notifications["bob@customer.test"].contact
    contact_bounce_record(contact=bob, hard=True, status="5.1.1")
    contact_bounce_record(contact=bob, hard=True, status="5.1.1")
    listener = inbound_listener()
    _, message_id = envelopes["bob@customer.test"]
    reply = build_mail(
        sender=f"Bob <{bob.email}>",
        to="catchall@mailhub.test",
        subject="Re: Printer on fire",
        body="Thanks, it works again.",
        message_id="<reply-1@customer.test>",
        In_Reply_To=message_id,
    )

    assert send(listener.port, reply, mail_from=bob.email, to=["catchall@mailhub.test"]) == {}
    all_processed()

    bob.refresh_from_db()
    assert bob.bounce_count == 0


def test_the_dashboard_shows_the_bounce_rate(delivered, inbound_listener, client, staff_user):
    from diagnostics.selectors import bounce_rate, mail_per_day

    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]
    dsn_back(
        listener, bounces.qmail_bounce(message_id=message_id, recipient="bob@customer.test"), sender
    )

    today = mail_per_day(days=1)[-1]
    assert (today.sent, today.bounced, today.bounce_rate) == (2, 1, 50.0)
    assert bounce_rate(mail_per_day()) == (1, 2, 50.0)
    client.force_login(staff_user)
    page = client.get("/ops/").content.decode()
    assert "Bounce rate 50.0% (1 of 2 sent, 30 days)" in page


def test_a_verp_address_with_a_forged_signature_is_refused_at_rcpt(delivered, inbound_listener):
    import smtplib

    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["bob@customer.test"]
    forged = sender.replace(sender.split(".")[1].split("@")[0], "0" * 20)
    raw = bounces.postfix_dsn(message_id=message_id, recipient="bob@customer.test", sender=forged)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        with smtp_client(listener.port) as client:
            client.sendmail("<>", [forged], raw)

    [(code, _)] = refused.value.recipients.values()
    assert code == 550
    bob = Notification.objects.get(pk=notifications["bob@customer.test"].pk)
    assert bob.status == NotificationStatus.SENT
    assert not InboundMail.objects.filter(decision=Decision.BOUNCE).exists()


@pytest.mark.parametrize(
    "sample",
    ["groupwise", "sendgrid-no-report-type", "dsn-in-multipart-mixed", "yahoo", "x400-only"],
)
def test_bounce_like_mail_to_the_catchall_is_read_whatever_its_envelope(
    delivered, inbound_listener, sample
):
    from tests.support.bounce_samples import SAMPLES

    message, notifications, envelopes = delivered
    listener = inbound_listener()
    sender, message_id = envelopes["alice@customer.test"]
    build = next(s.build for s in SAMPLES if s.name == sample)
    raw = build(message_id=message_id, recipient="alice@customer.test", sender=sender)

    with smtp_client(listener.port) as client:
        assert client.sendmail("forwarder@relay.test", ["catchall@mailhub.test"], raw) == {}
    all_processed()

    alice = Notification.objects.get(pk=notifications["alice@customer.test"].pk)
    assert alice.status == NotificationStatus.BOUNCE
    stored = InboundMail.objects.get(rcpt_to="catchall@mailhub.test")
    assert stored.decision == Decision.BOUNCE
    # Admin → Inbound mails shows the decision taken.
    assert f"bounce.applied: n{alice.pk} alice@customer.test" in stored.reason


def test_ordinary_mail_to_the_catchall_is_still_refused(mail_domain, inbound_listener):
    import smtplib

    listener = inbound_listener()
    mail = build_mail(
        sender="Carla <carla@customer.test>",
        to="catchall@mailhub.test",
        subject="Hello",
        body="Not a reply, not a bounce.",
        message_id="<hello-1@customer.test>",
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, mail, mail_from="carla@customer.test", to=["catchall@mailhub.test"])
    assert refused.value.smtp_code == 550


def test_a_large_ordinary_mail_to_the_catchall_is_refused_without_reading_it_all(
    mail_domain, inbound_listener
):
    """Telling a bounce from other mail happens before the 250: it reads only the head."""
    import smtplib
    import time

    listener = inbound_listener()
    line = b"Quarterly figures, 550 5.1.1 and user@x.test mentioned in passing.\r\n"
    raw = (
        b"From: Carla <carla@customer.test>\r\nTo: catchall@mailhub.test\r\n"
        b"Subject: Figures\r\nMessage-ID: <figures-1@customer.test>\r\n\r\n"
        + line
        * (6_000_000 // len(line))
    )
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        with smtp_client(listener.port) as client:
            client.sendmail("carla@customer.test", ["catchall@mailhub.test"], raw)
    assert refused.value.smtp_code == 550
    assert time.monotonic() - started < 5
