"""Identifiers a stranger wrote never reach a mail we send; threads still route.

A real listener on loopback takes the customer's mail; the staff reply and the notifications it
causes go through the outbox to a real relay (aiosmtpd, which answers ``500 Line too long`` to a
line over 1,000 octets, as Postfix does).
"""

from email import message_from_bytes, policy

import pytest

from chatter.models import Message
from chatter.services import contact_for_user, follower_add, message_post
from mailhub.msgid import msg_id_valid
from outbox.services import mails_send
from records.models import Ticket
from tests.support.chatter import StaffFactory
from tests.support.inbound import send as send_mail

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE_IDS = [
    "=?utf-8?q?=3Cx-=C3=BC@attacker.test=3E?=",  # decodes to a non-ASCII id
    # 976 characters: it fits the listener's 1,000-octet line, not our 250-character cap.
    "<" + "x" * 968 + "@a.test>",
    "<two words@attacker.test>",
    "=?utf-8?b?PGN0bAFAYXR0YWNrZXIudGVzdD4=?=",  # decodes to a control character
    "<ünïcode@attacker.test>",
]


def _raw(*, message_id: str, subject: str = "Printer jams", **headers: str) -> bytes:
    lines = [
        "From: Carla Customer <carla@customer.test>",
        "To: support@mailhub.test",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Hello, the printer jams.",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def send(port: int, raw: bytes, *, mail_from: str = "carla@customer.test", to=None) -> dict:
    return send_mail(port, raw, mail_from=mail_from, to=to or ["support@mailhub.test"])


def _sent(relay, rcpt: str):
    for received in relay.handler.received:
        if rcpt in received.rcpt_tos:
            return message_from_bytes(received.data, policy=policy.default), received.data
    raise AssertionError(f"the relay received nothing for {rcpt}")


def _no_line_over_998(data: bytes) -> bool:
    return max(len(line) for line in data.split(b"\r\n")) <= 998


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_a_hostile_message_id_makes_a_ticket_whose_reply_is_delivered(
    mail_domain, inbound_listener, relay, outbox_settings, hostile
):
    listener = inbound_listener()
    assert send(listener.port, _raw(message_id=hostile)) == {}
    ticket = Ticket.objects.get()
    posted = Message.objects.get(object_id=ticket.pk)
    assert msg_id_valid(posted.message_id)  # replaced by a synthetic id of the right form

    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    reply = message_post(record=ticket, author=agent, body="<p>On it.</p>", subject="Re: x")
    report = mails_send()

    assert report.delivered == 1 and report.failed == 0
    msg, data = _sent(relay, "carla@customer.test")
    assert _no_line_over_998(data)
    assert msg["Message-ID"] == reply.message_id
    assert posted.message_id in msg["References"].split()
    assert all(msg_id_valid(i) for i in msg["References"].split())


def test_hostile_references_are_dropped_and_the_reply_still_routes(
    mail_domain, inbound_listener, relay, outbox_settings
):
    listener = inbound_listener()
    send(listener.port, _raw(message_id="<first@customer.test>"))
    ticket = Ticket.objects.get()
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    ours = message_post(record=ticket, author=agent, body="<p>On it.</p>", subject="Re")
    mails_send()

    follow_up = _raw(
        message_id="<second@customer.test>",
        subject="Re: Printer jams",
        In_Reply_To=f"{HOSTILE_IDS[0]} {ours.message_id}",
        # Folded, one id a line (RFC 5322 §2.2.3), so the long one fits a 1,000-octet line.
        References="\r\n ".join([*HOSTILE_IDS[1:], "<first@customer.test>", ours.message_id]),
    )
    send(listener.port, follow_up)

    assert Ticket.objects.count() == 1
    posted = Message.objects.get(message_id="<second@customer.test>")
    assert posted.object_id == ticket.pk
    stored = f"{posted.in_reply_to} {posted.references}".split()
    assert stored and all(msg_id_valid(i) for i in stored)
    assert stored.count(ours.message_id) == 2  # In-Reply-To, and last in References


def test_a_998_character_subject_and_a_990_character_id_leave_through_a_real_relay(
    mail_domain, inbound_listener, relay, outbox_settings
):
    listener = inbound_listener()
    long_id = "<" + "y" * 986 + "@b.test>"
    send(listener.port, _raw(message_id="<first@customer.test>"))
    ticket = Ticket.objects.get()
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    first = Message.objects.get(object_id=ticket.pk)
    # An id stored before ids were checked where they enter.
    Message.objects.filter(pk=first.pk).update(references=long_id)
    subject = "z" * 998
    message_post(
        record=ticket,
        author=agent,
        body="<p>On it.</p>",
        subject=subject,
        in_reply_to=long_id,
        references=f"{long_id} <first@customer.test>",
    )
    report = mails_send()

    assert report.delivered == 1, relay.handler.received
    msg, data = _sent(relay, "carla@customer.test")
    assert _no_line_over_998(data)
    assert str(msg["Subject"]) == subject
    assert msg["References"].split() == ["<first@customer.test>"]
    assert msg["In-Reply-To"] is None


def test_the_notification_of_a_customers_mail_carries_a_message_id_of_ours(
    mail_domain, inbound_listener, relay, outbox_settings, settings
):
    listener = inbound_listener()
    send(listener.port, _raw(message_id="<first@customer.test>"))
    ticket = Ticket.objects.get()
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    follower_add(record=ticket, contact=agent)
    send(
        listener.port,
        _raw(
            message_id="<chosen-by-them@customer.test>",
            subject="Re: Printer jams",
            In_Reply_To="<first@customer.test>",
        ),
    )
    mails_send()

    msg, data = _sent(relay, "agent@mailhub.test")
    ours = msg["Message-ID"]
    assert ours != "<chosen-by-them@customer.test>"
    assert ours.endswith(f"@{settings.MAILHUB_MAIL_DOMAIN}>") and msg_id_valid(ours)
    assert msg["In-Reply-To"] == "<chosen-by-them@customer.test>"
    assert msg["References"].split()[-1] == "<chosen-by-them@customer.test>"
    assert msg["Return-Path"] is None and b"\r\nReturn-Path:" not in b"\r\n" + data
    assert msg["Auto-Submitted"] is None  # a person wrote the mail it is about

    # Carla (a follower) answers that mail from her client: it threads by In-Reply-To/References.
    # (A From of our own staff arriving from outside is held for review: see test_inbound_threads.)
    answer = (
        "From: carla@customer.test\r\nTo: catchall@mailhub.test\r\nSubject: Re: Printer jams\r\n"
        f"Message-ID: <answer@mailhub-client.test>\r\nIn-Reply-To: {ours}\r\n"
        f"References: {msg['References']} {ours}\r\n\r\nWe replace it.\r\n"
    ).encode()
    send(listener.port, answer, mail_from="carla@customer.test", to=["catchall@mailhub.test"])
    assert Message.objects.get(message_id="<answer@mailhub-client.test>").object_id == ticket.pk
    # A client that writes In-Reply-To only: our id still leads to the record.
    terse = (
        "From: carla@customer.test\r\nTo: catchall@mailhub.test\r\nSubject: Re: Printer jams\r\n"
        f"Message-ID: <terse@mailhub-client.test>\r\nIn-Reply-To: {ours}\r\n\r\nDone.\r\n"
    ).encode()
    send(listener.port, terse, mail_from="carla@customer.test", to=["catchall@mailhub.test"])
    assert Message.objects.get(message_id="<terse@mailhub-client.test>").object_id == ticket.pk
    assert Ticket.objects.count() == 1


def test_the_notification_of_an_auto_reply_says_it_is_automatic(
    mail_domain, inbound_listener, relay, outbox_settings
):
    listener = inbound_listener()
    send(listener.port, _raw(message_id="<first@customer.test>"))
    ticket = Ticket.objects.get()
    agent = contact_for_user(user=StaffFactory(email="agent@mailhub.test"))
    follower_add(record=ticket, contact=agent)
    send(
        listener.port,
        _raw(
            message_id="<vacation@customer.test>",
            subject="Out of office",
            In_Reply_To="<first@customer.test>",
            Auto_Submitted="auto-replied",
        ),
    )
    mails_send()

    msg, _ = _sent(relay, "agent@mailhub.test")
    # RFC 3834 §5: mail caused by automatic mail is marked, so no responder answers it.
    assert msg["Auto-Submitted"] == "auto-generated"
