"""Threads are not an open door: a leaked token, a forged reply address or a From of ours.

Everything goes through a real listener on loopback; held mail is released or discarded
through the real admin.
"""

import json
import os
import random
import smtplib
import string
import time
from email import message_from_bytes
from email.policy import SMTP
from email.utils import make_msgid

import pytest
from aiosmtpd.controller import Controller
from django.contrib.contenttypes.models import ContentType

from chatter.models import Follower, Message, Notification
from chatter.rendering import notification_reply_to
from chatter.reply_address import parse_reply_address
from chatter.services import contact_for_user, contact_get_or_create, follower_add, message_post
from inbound.models import Alias, ContactSecurity, Decision, InboundMail
from mailhub.devrelay import DevRelayHandler
from outbox.models import OutgoingMail
from outbox.services import mails_send
from records.models import Ticket
from tests.conftest import free_port
from tests.support.chatter import StaffFactory
from tests.support.inbound import build_mail, send, smtp_client, wait_processed

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/inbound/inboundmail/"


def _thread():
    """A ticket followed by an agent and a customer, with one message notified to both."""
    agent = contact_for_user(user=StaffFactory(email="agent@agency.test"))
    customer = contact_get_or_create(email="carla@customer.test", name="Carla")
    ticket = Ticket.objects.create(title="Private quote")
    follower_add(record=ticket, contact=agent)
    follower_add(record=ticket, contact=customer)
    sent = message_post(record=ticket, author=None, body="<p>Our offer: 10k</p>", subject="Offer")
    return ticket, sent, agent, customer


def _reply_address(sent: Message, contact) -> str:
    notification = Notification.objects.get(message=sent, contact=contact)
    return notification_reply_to(message_id=sent.pk, notification_id=notification.pk)


def _nothing_happened(ticket, sender: str, *, mails_before: int) -> None:
    """Held mail is never posted, never followed, never notified."""
    assert Message.objects.filter(object_id=ticket.pk).count() == 1
    assert not Follower.objects.filter(contact__email=sender).exists()
    assert OutgoingMail.objects.count() == mails_before


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@agency.test", "pw-root-123")
    client.force_login(user)
    return client


def _admin_action(admin_client, action: str, *rows: InboundMail):
    return admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [r.pk for r in rows]},
        follow=True,
    )


# --- item 1 and 2: a leaked token --------------------------------------------------------------


@pytest.mark.parametrize("to", ["catchall@mailhub.test", "support@mailhub.test"])
def test_a_leaked_message_id_from_a_non_follower_is_held(
    mail_domain, inbound_listener, admin_client, to
):
    ticket, sent, agent, _ = _thread()
    listener = inbound_listener()
    mails_before = OutgoingMail.objects.count()
    leaked = build_mail(
        sender="Mallory <mallory@evil.test>",
        to=to,
        subject="Re: Offer",
        body="Please pay to my account instead.",
        message_id="<leak-1@evil.test>",
        In_Reply_To=sent.message_id,
    )
    assert send(listener.port, leaked, mail_from="mallory@evil.test") == {}, "accepted: 250"
    row = InboundMail.objects.get(message_id="<leak-1@evil.test>")
    assert (row.decision, row.held_as, row.code) == (Decision.HELD, Decision.REPLY, 250)
    assert (row.record_type.model_class(), row.record_id) == (Ticket, ticket.pk)
    assert "neither a recipient" in row.reason and row.raw
    _nothing_happened(ticket, "mallory@evil.test", mails_before=mails_before)
    assert Ticket.objects.count() == 1, "no new ticket either"

    # The admin lists it under Held and releases it: posted as it would have been.
    page = admin_client.get(CHANGELIST, {"review": "held"}).content.decode()
    assert "mallory@evil.test" in page and "Held for review" in page
    done = _admin_action(admin_client, "release", row).content.decode()
    assert "1 held mail(s) released and posted" in done
    posted = Message.objects.get(message_id="<leak-1@evil.test>")
    assert posted.object_id == ticket.pk and posted.author.email == "mallory@evil.test"
    assert Notification.objects.filter(message=posted, contact=agent).exists()
    row.refresh_from_db()
    assert row.decision == Decision.REPLY and row.reviewed_by.username == "root"
    assert "released by root" in row.reason
    # A second release (two admins at once, a double click) posts nothing more.
    again = _admin_action(admin_client, "release", row).content.decode()
    assert "1 mail(s) skipped: not held for review" in again
    assert Message.objects.filter(message_id="<leak-1@evil.test>").count() == 1


def test_a_discarded_held_mail_is_never_posted(mail_domain, inbound_listener, admin_client):
    ticket, sent, _, _ = _thread()
    listener = inbound_listener()
    mails_before = OutgoingMail.objects.count()
    send(
        listener.port,
        build_mail(sender="eve@evil.test", to="catchall@mailhub.test", References=sent.message_id),
        mail_from="eve@evil.test",
    )
    row = InboundMail.objects.get()
    assert row.decision == Decision.HELD
    assert (
        "1 held mail(s) discarded" in _admin_action(admin_client, "discard", row).content.decode()
    )
    row.refresh_from_db()
    assert row.decision == Decision.DISCARDED and "discarded by root" in row.reason
    assert "1 mail(s) skipped" in _admin_action(admin_client, "release", row).content.decode()
    _nothing_happened(ticket, "eve@evil.test", mails_before=mails_before)
    # The same message sent again is a duplicate of what was discarded, not a way back in.
    send(
        listener.port,
        build_mail(sender="eve@evil.test", to="catchall@mailhub.test", References=sent.message_id),
        mail_from="eve@evil.test",
    )
    assert InboundMail.objects.latest("id").decision == Decision.DUPLICATE
    _nothing_happened(ticket, "eve@evil.test", mails_before=mails_before)


@pytest.mark.parametrize(
    "security,to,words",
    [
        (ContactSecurity.FOLLOWERS, "desk@mailhub.test", b"only followers"),
        (ContactSecurity.FOLLOWERS, "catchall@mailhub.test", b"only followers"),
        (ContactSecurity.CONTACTS, "catchall@mailhub.test", b"only known contacts"),
    ],
    ids=["followers-via-alias", "followers-via-catchall", "contacts-via-catchall"],
)
def test_a_restricted_record_refuses_replies_from_senders_it_does_not_allow(
    mail_domain, inbound_listener, security, to, words
):
    ticket, sent, _, customer = _thread()
    Alias.objects.create(
        domain=mail_domain,
        local_part="desk",
        model=ContentType.objects.get_for_model(Ticket),
        record_id=ticket.pk,
        contact_security=security,
    )
    # Even the recipient of the message may not write once no longer allowed.
    Follower.objects.filter(contact=customer).delete()
    if security == ContactSecurity.CONTACTS:
        customer.delete()
    listener = inbound_listener()
    mails_before = OutgoingMail.objects.count()
    reply = build_mail(to=to, message_id="<r-1@customer.test>", References=sent.message_id)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, reply)
    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    assert words in refused.value.smtp_error
    assert InboundMail.objects.get().decision == Decision.REFUSED
    _nothing_happened(ticket, "carla@customer.test", mails_before=mails_before)
    # Allowed again: the same reply is posted.
    follower_add(record=ticket, contact=contact_get_or_create(email="carla@customer.test"))
    send(
        listener.port,
        build_mail(to=to, message_id="<r-2@customer.test>", References=sent.message_id),
    )
    assert Message.objects.get(message_id="<r-2@customer.test>").object_id == ticket.pk


def test_a_recipient_who_is_not_a_follower_may_answer_a_public_thread(
    mail_domain, inbound_listener
):
    """Someone mentioned in a post got the mail: their reply is theirs to make."""
    ticket, sent, agent, customer = _thread()
    guest = contact_get_or_create(email="guest@partner.test")
    mention = message_post(record=ticket, author=agent, body="<p>Guest?</p>", mentions=[guest])
    Follower.objects.filter(contact=guest).delete()
    listener = inbound_listener()
    send(
        listener.port,
        build_mail(
            sender="guest@partner.test", to="catchall@mailhub.test", In_Reply_To=mention.message_id
        ),
        mail_from="guest@partner.test",
    )
    assert Message.objects.get(message_id="<m1@customer.test>").author == guest


# --- item 3: the signed per-recipient reply address ---------------------------------------------


def test_the_reply_address_is_taken_at_rcpt_only_with_its_signature(mail_domain, inbound_listener):
    ticket, sent, _, customer = _thread()
    address = _reply_address(sent, customer)
    local, _, domain = address.partition("@")
    forged = [
        f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}",  # one digit of the signature
        address.replace(f"reply+{sent.pk}.", f"reply+{sent.pk + 1}."),  # another thread
        f"reply+{sent.pk}.1@{domain}",  # no signature
    ]
    listener = inbound_listener()
    with smtp_client(listener.port) as client:
        client.mail("mallory@evil.test")
        for candidate in forged:
            code, text = client.rcpt(candidate)
            assert (code, text) == (550, f"5.1.1 <{candidate}>: mailbox unavailable".encode())
        assert client.rcpt(address.upper())[0] == 250, "local parts are case-insensitive"
    assert not InboundMail.objects.exists()


def test_a_reply_to_the_reply_address_needs_no_references(mail_domain, inbound_listener):
    ticket, sent, agent, customer = _thread()
    other = Ticket.objects.create(title="Another ticket")
    follower_add(record=other, contact=customer)
    listener = inbound_listener()
    address = _reply_address(sent, customer)
    # No In-Reply-To, no References; even a References to ANOTHER thread loses to the address.
    other_msg = message_post(record=other, author=None, body="<p>other</p>")
    answer = build_mail(
        to=address, message_id="<a-1@customer.test>", References=other_msg.message_id
    )
    send(listener.port, answer)
    posted = Message.objects.get(message_id="<a-1@customer.test>")
    assert (posted.object_id, posted.author) == (ticket.pk, customer)
    assert Notification.objects.filter(message=posted, contact=agent).exists()


def test_a_reply_address_used_by_someone_else_is_held(mail_domain, inbound_listener):
    ticket, sent, agent, customer = _thread()
    colleague = contact_get_or_create(email="colleague@customer.test")
    follower_add(record=ticket, contact=colleague)
    listener = inbound_listener()
    mails_before = OutgoingMail.objects.count()
    address = _reply_address(sent, customer)
    send(listener.port, build_mail(sender="eve@evil.test", to=address), mail_from="eve@evil.test")
    row = InboundMail.objects.get()
    assert (row.decision, row.held_as, row.record_id) == (Decision.HELD, Decision.REPLY, ticket.pk)
    _nothing_happened(ticket, "eve@evil.test", mails_before=mails_before)
    # A follower of the thread answering through a colleague's copy is posted.
    send(
        listener.port,
        build_mail(sender="colleague@customer.test", to=address, message_id="<c@customer.test>"),
        mail_from="colleague@customer.test",
    )
    assert Message.objects.get(message_id="<c@customer.test>").author == colleague


def test_a_reply_address_of_a_deleted_thread_is_refused(mail_domain, inbound_listener):
    ticket, sent, _, customer = _thread()
    address = _reply_address(sent, customer)
    Message.objects.filter(pk=sent.pk).delete()
    listener = inbound_listener()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, build_mail(to=address))
    assert refused.value.smtp_code == 550 and b"no longer exists" in refused.value.smtp_error


# --- item 4: a From of ours from outside --------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "Admin <Agent@Agency.test>",  # an internal user, whatever their domain (case ignored)
        "ceo@mailhub.test",  # an address at our own alias domain, user or not
        "billing@MAILHUB.TEST",
    ],
)
def test_a_from_of_ours_arriving_from_outside_is_held(
    mail_domain, inbound_listener, admin_client, sender
):
    ticket, sent, agent, _ = _thread()
    listener = inbound_listener()
    mails_before = OutgoingMail.objects.count()
    # To an alias (a new ticket) and as a reply into a thread the staff member follows.
    send(listener.port, build_mail(sender=sender, message_id="<s-1@evil.test>"))
    send(
        listener.port,
        build_mail(
            sender=sender,
            to="catchall@mailhub.test",
            message_id="<s-2@evil.test>",
            In_Reply_To=sent.message_id,
        ),
    )
    rows = list(InboundMail.objects.order_by("id"))
    assert [(r.decision, r.held_as) for r in rows] == [
        (Decision.HELD, Decision.ALIAS_NEW),
        (Decision.HELD, Decision.REPLY),
    ]
    assert all("claims an internal user or one of our domains" in r.reason for r in rows)
    assert Ticket.objects.count() == 1
    assert OutgoingMail.objects.count() == mails_before
    assert Message.objects.filter(object_id=ticket.pk).count() == 1

    # Staff posting by mail works through release only: then posted as that sender.
    _admin_action(admin_client, "release", *rows)
    created = Ticket.objects.exclude(pk=ticket.pk).get()
    assert created.title == "Printer jams again"
    reply = Message.objects.get(message_id="<s-2@evil.test>")
    assert reply.object_id == ticket.pk
    if "agency" in sender.lower():
        assert reply.author == agent


# --- a relay that rewrites Message-IDs (Amazon SES does) ---------------------------------------


class RewritingRelay(DevRelayHandler):
    """Replaces every Message-ID and drops References/In-Reply-To before storing the mail."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=SMTP)
        for name in ("Message-ID", "References", "In-Reply-To"):
            del msg[name]
        msg["Message-ID"] = make_msgid(domain="email.relay.test")
        envelope.original_content = msg.as_bytes()
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def rewriting_relay(settings):
    handler = RewritingRelay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    settings.MAILHUB_RELAY_HOST, settings.MAILHUB_RELAY_PORT = "127.0.0.1", controller.port
    yield handler
    controller.stop()


def test_replies_route_when_a_relay_rewrites_every_message_id(
    mail_domain, inbound_listener, rewriting_relay, outbox_settings
):
    ticket, sent, agent, customer = _thread()
    other = Ticket.objects.create(title="Unrelated")
    follower_add(record=other, contact=customer)
    message_post(record=other, author=None, body="<p>Unrelated</p>")
    mails_send()
    copy = next(
        m.message
        for m in rewriting_relay.received
        if m.rcpt_tos == [customer.email] and m.message["Subject"] == "Offer"
    )
    assert copy["Message-ID"] != sent.message_id and copy["References"] is None
    assert parse_reply_address(str(copy["Reply-To"])) is not None
    assert len({str(m.message["Reply-To"]) for m in rewriting_relay.received}) == len(
        rewriting_relay.received
    ), "each recipient's copy has its own reply address"

    listener = inbound_listener()
    # What a mail client sends: to the Reply-To, In-Reply-To the only Message-ID it ever saw.
    answer = build_mail(
        to=str(copy["Reply-To"]),
        subject="Re: Offer",
        body="Accepted.",
        message_id="<accept@customer.test>",
        In_Reply_To=str(copy["Message-ID"]),
    )
    send(listener.port, answer)
    posted = Message.objects.get(message_id="<accept@customer.test>")
    assert (posted.object_id, posted.author) == (ticket.pk, customer)
    assert Notification.objects.filter(message=posted, contact=agent).exists()
    # The same answer sent to the catchall has nothing left to match: refused, not misfiled.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(
            listener.port,
            build_mail(
                to="catchall@mailhub.test",
                message_id="<accept-2@customer.test>",
                In_Reply_To=str(copy["Message-ID"]),
            ),
        )
    assert refused.value.smtp_code == 550


# --- the same classes with generated inputs (``bench/threads`` prints the figures) --------------


def _variants_count() -> int:
    return int(os.environ.get("MAILHUB_THREADS_COUNT", "8"))


def _random_sender(rng: random.Random) -> str:
    local = "".join(
        rng.choices(string.ascii_lowercase + string.digits + ".-_", k=rng.randint(3, 12))
    )
    domain = rng.choice(["evil.test", "customer-lookalike.test", "gmail.test", "mailhub.test.evil"])
    return f"{local.strip('.') or 'x'}@{domain}"


def _forged(rng: random.Random, address: str, sent_pk: int) -> str:
    local, _, domain = address.partition("@")
    prefix, _, signature = local.rpartition(".")
    thread, _, recipient = prefix.removeprefix("reply+").partition(".")
    digit = rng.randrange(len(signature))
    other = rng.choice([c for c in "0123456789abcdef" if c != signature[digit]])
    return rng.choice(
        [
            f"{prefix}.{signature[:digit]}{other}{signature[digit + 1 :]}@{domain}",
            f"reply+{thread}.{int(recipient) + rng.randint(1, 99)}.{signature}@{domain}",
            f"reply+{sent_pk + rng.randint(1, 99)}.{recipient}.{signature}@{domain}",
            # Swapped numbers (a different address only when the numbers differ).
            f"reply+{recipient}.{thread}.{signature}@{domain}"
            if recipient != thread
            else f"reply+{thread}.{recipient}0.{signature}@{domain}",
            f"{prefix}.{signature[: rng.randint(0, len(signature) - 1)]}@{domain}",
            f"{prefix}@{domain}",
        ]
    )


def _ours(rng: random.Random, staff_email: str) -> str:
    local, _, domain = staff_email.partition("@")
    name = rng.choice(["", "IT Support", "Agent", "=?utf-8?q?Agent?="])
    address = rng.choice(
        [
            "".join(rng.choice([c.lower(), c.upper()]) for c in staff_email),
            f"{rng.choice(['ceo', 'billing', 'root', 'notifications'])}@"
            + "".join(rng.choice([c.lower(), c.upper()]) for c in "mailhub.test"),
        ]
    )
    return f"{name} <{address}>" if name else address


def test_generated_leaks_forgeries_and_spoofs_never_post(
    mail_domain, inbound_listener, rewriting_relay, outbox_settings
):
    seed = int(os.environ.get("MAILHUB_THREADS_SEED", random.randrange(1 << 30)))
    rng, count = random.Random(seed), _variants_count()
    ticket, sent, agent, customer = _thread()
    restricted = Ticket.objects.create(title="Board only")
    follower_add(record=restricted, contact=customer)
    board = message_post(record=restricted, author=None, body="<p>Minutes</p>", subject="Board")
    Alias.objects.create(
        domain=mail_domain,
        local_part="board",
        model=ContentType.objects.get_for_model(Ticket),
        record_id=restricted.pk,
        contact_security=ContactSecurity.FOLLOWERS,
    )
    mails_send()
    copy = next(m.message for m in rewriting_relay.received if m.rcpt_tos == [customer.email])
    their_address = str(copy["Reply-To"])
    board_token = Notification.objects.get(message=board, contact=customer)
    listener = inbound_listener()
    threads = {ticket.pk, restricted.pk}

    def counts() -> dict:
        return {
            "posted": Message.objects.filter(object_id__in=threads).count(),
            "followers": Follower.objects.filter(object_id__in=threads).count(),
            "records": Ticket.objects.count(),
            "mails": OutgoingMail.objects.count(),
        }

    def run(case: str, mails: list[tuple[str, str, dict]]) -> dict:
        """Send (sender, rcpt, headers) each on its own session; what came back and got in."""
        before, codes, start = counts(), {}, time.monotonic()
        first = InboundMail.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for n, (sender, rcpt, headers) in enumerate(mails):
            msg = build_mail(
                sender=sender, to=rcpt, message_id=f"<{seed}.{start}.{n}@x.test>", **headers
            )
            with smtp_client(listener.port) as client:
                client.mail("bounces@x.test")
                code, _ = client.rcpt(rcpt)
                if code == 250:
                    code, _ = client.data(msg.as_bytes(policy=SMTP))
            codes[code] = codes.get(code, 0) + 1
        wait_processed()
        after = counts()
        held = InboundMail.objects.filter(id__gt=first, decision=Decision.HELD).count()
        return {
            "case": case,
            "sent": len(mails),
            "answers": codes,
            "held": held,
            **{k: after[k] - before[k] for k in after},
            "seconds": round(time.monotonic() - start, 2),
        }

    rows = [
        run(
            "leaked Message-ID from a non-follower",
            [
                (
                    _random_sender(rng),
                    rng.choice(["catchall@mailhub.test", "support@mailhub.test"]),
                    {
                        rng.choice(["In_Reply_To", "References"]): rng.choice(
                            [sent.message_id, f"<noise@x.test> {sent.message_id}"]
                        )
                    },
                )
                for _ in range(count)
            ],
        ),
        run(
            "leaked reply address from a non-follower",
            [(_random_sender(rng), their_address, {}) for _ in range(count)],
        ),
        run(
            "forged reply address",
            [(_random_sender(rng), _forged(rng, their_address, sent.pk), {}) for _ in range(count)],
        ),
        run(
            "leaked token into a followers-only record",
            [
                (
                    _random_sender(rng),
                    rng.choice(
                        [
                            "board@mailhub.test",
                            "catchall@mailhub.test",
                            notification_reply_to(
                                message_id=board.pk, notification_id=board_token.pk
                            ),
                        ]
                    ),
                    {"References": board.message_id},
                )
                for _ in range(count)
            ],
        ),
        run(
            "From: an internal user or our domain",
            [
                (
                    _ours(rng, agent.email),
                    rng.choice(["support@mailhub.test", "catchall@mailhub.test"]),
                    {"In_Reply_To": sent.message_id},
                )
                for _ in range(count)
            ],
        ),
        run(
            "control: the recipient answers its Reply-To (Message-ID rewritten by the relay)",
            [(customer.email, their_address, {"In_Reply_To": str(copy["Message-ID"])})] * count,
        ),
    ]
    report = os.environ.get("MAILHUB_THREADS_REPORT")
    if report:
        with open(report, "a") as out:
            for row in rows:
                out.write(json.dumps({**row, "seed": seed}) + "\n")
    by_case = {row["case"]: row for row in rows}
    leaks = [r for r in rows if not r["case"].startswith("control")]
    for row in leaks:
        assert (row["posted"], row["followers"], row["mails"]) == (0, 0, 0), (seed, row)
    assert sum(r["records"] for r in leaks) == 0, seed
    for case in (
        "leaked Message-ID from a non-follower",
        "leaked reply address from a non-follower",
    ):
        assert by_case[case]["answers"] == {250: count} and by_case[case]["held"] == count, seed
    assert by_case["forged reply address"]["answers"] == {550: count}, seed
    assert by_case["leaked token into a followers-only record"]["answers"] == {550: count}, seed
    spoofed = by_case["From: an internal user or our domain"]
    assert spoofed["answers"] == {250: count} and spoofed["held"] == count, (seed, spoofed)
    control = by_case[
        "control: the recipient answers its Reply-To (Message-ID rewritten by the relay)"
    ]
    assert control["posted"] == count and control["held"] == 0, (seed, control)
