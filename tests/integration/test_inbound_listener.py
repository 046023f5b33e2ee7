"""The inbound gateway seen from a real SMTP client: every reply code, routing and storage."""

import smtplib
import socket
import sys
from email import policy

import pytest
from django.contrib.contenttypes.models import ContentType

from chatter.models import Contact, Message, MessageKind, Notification
from chatter.services import contact_for_user, contact_get_or_create, follower_add, message_post
from inbound.models import Alias, ContactSecurity, Decision, InboundMail
from outbox.models import OutgoingMail
from outbox.verp import VerpRef, bounce_address
from records.models import Quote, Ticket
from tests.conftest import free_port, wait_for
from tests.support.chatter import StaffFactory
from tests.support.inbound import build_mail, send, smtp_client

pytestmark = pytest.mark.django_db(transaction=True)


def _ticket_with_thread(*, customer_email: str = "carla@customer.test"):
    """A ticket followed by a customer and a staff member, with one message sent from it."""
    staff = StaffFactory(email="agent@mailhub.test")
    agent = contact_for_user(user=staff)
    customer = contact_get_or_create(email=customer_email, name="Carla")
    ticket = Ticket.objects.create(title="Broken printer")
    follower_add(record=ticket, contact=agent)
    follower_add(record=ticket, contact=customer)
    sent = message_post(record=ticket, author=agent, body="<p>We are on it.</p>", subject="Re")
    return ticket, sent, agent, customer


def test_banner_and_ehlo_advertise_size_and_enhanced_codes(mail_domain, inbound_listener, settings):
    settings.MAILHUB_SMTPD_MAX_SIZE = 1_000_000
    listener = inbound_listener()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        assert sock.recv(200).startswith(b"220 ")
    with smtp_client(listener.port) as client:
        assert client.has_extn("size") and client.esmtp_features["size"] == "1000000"
        assert client.has_extn("enhancedstatuscodes")


def test_rcpt_refuses_foreign_domains_and_unknown_mailboxes(mail_domain, inbound_listener):
    listener = inbound_listener()
    with smtp_client(listener.port) as client:
        client.mail("carla@customer.test")
        code, text = client.rcpt("someone@elsewhere.test")
        assert (code, text.split()[0]) == (550, b"5.7.1"), "never an open relay"
        code, text = client.rcpt("nobody@mailhub.test")
        assert code == 550
        assert text == b"5.1.1 <nobody@mailhub.test>: mailbox unavailable"
        assert client.rcpt("support@mailhub.test")[0] == 250
        assert client.rcpt("SUPPORT@MailHub.Test")[0] == 250, "addresses are case-insensitive"
        assert client.rcpt("catchall@mailhub.test")[0] == 250
        assert client.rcpt("bounce@mailhub.test")[0] == 250
        forged = "bounce+n12.0123456789abcdef0123@mailhub.test"
        assert client.rcpt(forged)[0] == 550, "a VERP address with a bad signature is refused"
        verp = bounce_address(ref=VerpRef("n", 12), domain="mailhub.test")
        assert client.rcpt(verp)[0] == 250
    assert InboundMail.objects.count() == 0, "RCPT refusals store nothing"


def test_the_101st_recipient_gets_452(mail_domain, inbound_listener):
    listener = inbound_listener()
    with smtp_client(listener.port) as client:
        client.mail("carla@customer.test")
        codes = [client.rcpt("support@mailhub.test")[0] for _ in range(100)]
        assert codes == [250] * 100
        code, text = client.rcpt("support@mailhub.test")
        assert (code, text.split()[0]) == (452, b"4.5.3")
        client.rset()


def test_alias_mail_creates_a_record_with_the_sender_as_author(mail_domain, inbound_listener):
    listener = inbound_listener()
    msg = build_mail(subject="Printer jams again", body="It jams on page 2.")
    assert send(listener.port, msg) == {}
    ticket = Ticket.objects.get()
    assert ticket.title == "Printer jams again"
    message = Message.objects.get(object_id=ticket.pk)
    assert message.kind == MessageKind.EMAIL
    assert message.message_id == "<m1@customer.test>"
    assert "It jams on page 2." in message.body
    assert message.author.email == "carla@customer.test" and message.author.name == "Carla Customer"
    row = InboundMail.objects.get()
    assert row.decision == Decision.ALIAS_NEW and row.code == 250
    raw = bytes(row.raw)
    assert raw.startswith(b"From: Carla Customer") and b"It jams on page 2." in raw
    assert row.chatter_message == message and row.processed_at is not None


def test_one_message_to_two_aliases_creates_one_record_each(mail_domain, inbound_listener):
    listener = inbound_listener()
    msg = build_mail(to="support@mailhub.test, sales@mailhub.test", subject="Chairs")
    send(listener.port, msg, to=["support@mailhub.test", "sales@mailhub.test"])
    assert Ticket.objects.get().title == "Chairs"
    assert Quote.objects.get().title == "Chairs"
    assert InboundMail.objects.filter(decision=Decision.ALIAS_NEW).count() == 2


def test_reply_by_in_reply_to_lands_in_the_thread_and_notifies_followers(
    mail_domain, inbound_listener
):
    ticket, sent, agent, customer = _ticket_with_thread()
    listener = inbound_listener()
    before = OutgoingMail.objects.count()
    reply = build_mail(
        to="catchall@mailhub.test",
        subject="Re: Re",
        body="Thanks!\n\nOn Monday you wrote:\n> We are on it.",
        message_id="<reply-1@customer.test>",
        In_Reply_To=sent.message_id,
    )
    send(listener.port, reply)
    posted = Message.objects.get(message_id="<reply-1@customer.test>")
    assert (posted.content_type.model_class(), posted.object_id) == (Ticket, ticket.pk)
    assert posted.author == customer and posted.kind == MessageKind.EMAIL
    assert "<details>" in posted.body, "the quoted history is folded"
    notified = set(Notification.objects.filter(message=posted).values_list("contact", flat=True))
    assert notified == {agent.pk}, "followers but the author are notified"
    assert OutgoingMail.objects.count() == before + 1
    assert Ticket.objects.count() == 1, "a reply creates no record"


def test_reply_matched_by_references_only(mail_domain, inbound_listener):
    ticket, sent, _, _ = _ticket_with_thread()
    listener = inbound_listener()
    reply = build_mail(
        to="support@mailhub.test",
        message_id="<reply-2@customer.test>",
        References=f"<unrelated@elsewhere.test> {sent.message_id}",
    )
    send(listener.port, reply)
    posted = Message.objects.get(message_id="<reply-2@customer.test>")
    assert posted.object_id == ticket.pk
    assert Ticket.objects.count() == 1, "a reply to support@ is threaded, not a new ticket"


def test_reply_to_a_per_recipient_copy_is_matched_through_the_outbox(mail_domain, inbound_listener):
    ticket, sent, _, _ = _ticket_with_thread()
    copy = OutgoingMail.objects.create(
        message_id="<copy-token.1@mailhub.test>", from_addr="n@mailhub.test", chatter_message=sent
    )
    listener = inbound_listener()
    send(listener.port, build_mail(to="catchall@mailhub.test", In_Reply_To=copy.message_id))
    assert Message.objects.get(message_id="<m1@customer.test>").object_id == ticket.pk


def test_catchall_mail_that_is_not_a_reply_is_refused(mail_domain, inbound_listener):
    listener = inbound_listener()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, build_mail(to="catchall@mailhub.test"))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.1.1 <catchall@mailhub.test>")
    assert not Message.objects.exists()
    assert InboundMail.objects.get().decision == Decision.REFUSED


def test_contact_security_refuses_unknown_senders_with_the_reason(mail_domain, inbound_listener):
    Alias.objects.filter(local_part="support").update(contact_security=ContactSecurity.CONTACTS)
    listener = inbound_listener()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, build_mail())
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error and b"known contacts" in refused.value.smtp_error
    assert not Ticket.objects.exists()
    contact_get_or_create(email="carla@customer.test")
    send(listener.port, build_mail(message_id="<m2@customer.test>"))
    assert Ticket.objects.count() == 1, "a known contact gets through"


def test_followers_only_alias_posts_on_its_record(mail_domain, inbound_listener):
    ticket = Ticket.objects.create(title="Shared inbox")
    Alias.objects.create(
        domain=mail_domain,
        local_part="printer",
        model=ContentType.objects.get_for_model(Ticket),
        record_id=ticket.pk,
        contact_security=ContactSecurity.FOLLOWERS,
    )
    listener = inbound_listener()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, build_mail(to="printer@mailhub.test"))
    assert refused.value.smtp_code == 550 and b"followers" in refused.value.smtp_error
    follower_add(record=ticket, contact=contact_get_or_create(email="carla@customer.test"))
    send(listener.port, build_mail(to="printer@mailhub.test", message_id="<m3@customer.test>"))
    assert Message.objects.get(message_id="<m3@customer.test>").object_id == ticket.pk
    assert Ticket.objects.count() == 1


def test_duplicate_message_id_is_accepted_but_not_posted_twice(mail_domain, inbound_listener):
    listener = inbound_listener()
    msg = build_mail()
    send(listener.port, msg)
    send(listener.port, msg)
    assert Ticket.objects.count() == 1
    assert Message.objects.filter(message_id="<m1@customer.test>").count() == 1
    decisions = list(InboundMail.objects.order_by("id").values_list("decision", flat=True))
    assert decisions == [Decision.ALIAS_NEW, Decision.DUPLICATE]


def test_mail_without_message_id_is_deduplicated_by_content(mail_domain, inbound_listener):
    listener = inbound_listener()
    msg = build_mail(message_id=None)
    send(listener.port, msg)
    send(listener.port, msg)
    assert Ticket.objects.count() == 1


def test_bounces_are_stored_and_handed_to_bounce_processing(mail_domain, inbound_listener):
    listener = inbound_listener()
    verp = bounce_address(ref=VerpRef("n", 999), domain="mailhub.test")
    send(listener.port, build_mail(to=verp, subject="Undelivered"), mail_from="<>")
    dsn = (
        b"From: MAILER-DAEMON@relay.test\r\nTo: catchall@mailhub.test\r\n"
        b"Subject: Delivery Status Notification\r\nMessage-ID: <dsn-1@relay.test>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.test\r\n"
        b"\r\nFinal-Recipient: rfc822; gone@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--b--\r\n"
    )
    send(listener.port, dsn, mail_from="", to=["catchall@mailhub.test"])
    rows = InboundMail.objects.order_by("id")
    assert [r.decision for r in rows] == [Decision.BOUNCE, Decision.BOUNCE]
    assert all(r.processed_at is not None and bytes(r.raw) for r in rows)
    assert not Message.objects.exists(), "a bounce is never posted as a message"
    assert not Ticket.objects.exists()


def test_oversize_mail_is_refused_with_552(mail_domain, inbound_listener, settings):
    settings.MAILHUB_SMTPD_MAX_SIZE = 20_000
    listener = inbound_listener()
    big = build_mail(body="\n".join(["x" * 70] * 400))
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send(listener.port, big)
    assert refused.value.smtp_code == 552
    # A client that does not announce SIZE is stopped at the end of DATA.
    with smtp_client(listener.port) as client:
        client.mail("carla@customer.test")
        client.rcpt("support@mailhub.test")
        code, text = client.data(big.as_bytes(policy=policy.SMTP))
    assert code == 552, text
    assert not InboundMail.objects.exists()


def test_auto_replies_notify_no_customer(mail_domain, inbound_listener):
    ticket, sent, agent, customer = _ticket_with_thread()
    other = contact_get_or_create(email="other@customer.test")
    follower_add(record=ticket, contact=other)
    listener = inbound_listener()
    auto = build_mail(
        sender="carla@customer.test",
        to="catchall@mailhub.test",
        subject="Out of office",
        message_id="<ooo@customer.test>",
        In_Reply_To=sent.message_id,
        Auto_Submitted="auto-replied",
    )
    send(listener.port, auto)
    posted = Message.objects.get(message_id="<ooo@customer.test>")
    notified = set(Notification.objects.filter(message=posted).values_list("contact", flat=True))
    assert notified == {agent.pk}, "staff see it, the other customer gets no automatic mail"
    assert InboundMail.objects.get().automatic


@pytest.mark.parametrize(
    "headers,mail_from",
    [({"Precedence": "bulk"}, "carla@customer.test"), ({}, "<>")],
    ids=["precedence-bulk", "null-return-path"],
)
def test_bulk_and_null_sender_mail_is_automatic(mail_domain, inbound_listener, headers, mail_from):
    ticket, sent, agent, customer = _ticket_with_thread()
    follower_add(record=ticket, contact=contact_get_or_create(email="other@customer.test"))
    listener = inbound_listener()
    send(
        listener.port,
        build_mail(to="catchall@mailhub.test", In_Reply_To=sent.message_id, **headers),
        mail_from=mail_from,
    )
    posted = Message.objects.get(message_id="<m1@customer.test>")
    notified = set(Notification.objects.filter(message=posted).values_list("contact", flat=True))
    assert notified == {agent.pk}


def test_a_sender_creating_too_many_records_is_refused(mail_domain, inbound_listener, settings):
    settings.MAILHUB_LOOP_THRESHOLD = 3
    listener = inbound_listener()
    for n in range(3):
        send(listener.port, build_mail(message_id=f"<loop-{n}@customer.test>"))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener.port, build_mail(message_id="<loop-3@customer.test>"))
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert Ticket.objects.count() == 3
    send(listener.port, build_mail(sender="dan@customer.test", message_id="<d@customer.test>"))
    assert Ticket.objects.count() == 4, "other senders are not affected"


def test_our_own_message_id_coming_back_is_not_posted_again(mail_domain, inbound_listener):
    ticket, sent, _, _ = _ticket_with_thread()
    listener = inbound_listener()
    echo = build_mail(to="catchall@mailhub.test", message_id=sent.message_id)
    send(listener.port, echo)
    assert Message.objects.filter(object_id=ticket.pk).count() == 1
    assert InboundMail.objects.get().decision == Decision.DUPLICATE


def test_connection_limit_per_address_answers_421(mail_domain, inbound_listener, settings):
    settings.MAILHUB_SMTPD_MAX_CONNECTIONS_PER_IP = 2
    listener = inbound_listener()
    first, second = smtp_client(listener.port), smtp_client(listener.port)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as third:
            assert third.recv(200).startswith(b"421 4.7.0")
        first.quit()
        wait_for(lambda: listener.limits.per_ip.get("127.0.0.1", 0) < 2, timeout=5)
        with smtp_client(listener.port) as again:
            assert again.noop()[0] == 250, "a slot frees when a session ends"
    finally:
        second.close()


def test_commands_per_session_are_limited(mail_domain, inbound_listener, settings):
    settings.MAILHUB_SMTPD_MAX_COMMANDS = 5
    listener = inbound_listener()
    with smtp_client(listener.port) as client:
        codes = [client.noop()[0] for _ in range(5)]
        assert codes == [250] * 5
        code, text = client.docmd("NOOP")
        assert code == 421


def test_database_down_answers_451(start_process, mail_domain):
    port = free_port()
    closed = free_port()
    listener = start_process(
        [sys.executable, "manage.py", "runsmtpd", "--listen", f"127.0.0.1:{port}"],
        name="smtpd-db-down",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/mailhub_nowhere",
    )
    wait_for(lambda: "listening" in listener.output(), timeout=30, message=listener.output())
    with smtp_client(port) as client:
        client.mail("carla@customer.test")
        code, text = client.rcpt("support@mailhub.test")
    assert (code, text.split()[0]) == (451, b"4.3.0"), "the sender keeps the mail and retries"
    assert listener.proc.poll() is None, "the listener stays up"


def test_mixed_recipients_are_routed_each(mail_domain, inbound_listener):
    ticket, sent, _, _ = _ticket_with_thread()
    listener = inbound_listener()
    reply = build_mail(
        to="catchall@mailhub.test", message_id="<mix@customer.test>", In_Reply_To=sent.message_id
    )
    refused = send(
        listener.port,
        reply,
        to=["catchall@mailhub.test", "nobody@mailhub.test", "support@mailhub.test"],
    )
    assert set(refused) == {"nobody@mailhub.test"}
    assert Message.objects.filter(message_id="<mix@customer.test>").count() == 1
    assert Ticket.objects.count() == 1
    assert Contact.objects.filter(email="carla@customer.test").count() == 1


def test_a_bounce_to_a_verp_address_turns_the_notification_red(mail_domain, inbound_listener):
    ticket, sent, agent, customer = _ticket_with_thread()
    followup = message_post(record=ticket, author=agent, body="<p>Any news?</p>")
    notification = Notification.objects.get(message=followup, contact=customer)
    listener = inbound_listener()
    verp = bounce_address(ref=VerpRef("n", notification.pk), domain="mailhub.test")
    dsn = (
        b"From: MAILER-DAEMON@relay.test\r\nTo: " + verp.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-2@relay.test>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.test\r\n"
        b"\r\nFinal-Recipient: rfc822; carla@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n--b--\r\n"
    )
    send(listener.port, dsn, mail_from="<>", to=[verp])
    notification.refresh_from_db()
    assert notification.status == "bounce"
    customer.refresh_from_db()
    assert customer.bounce_count == 1
    send(listener.port, build_mail(message_id="<alive@customer.test>"))
    customer.refresh_from_db()
    assert customer.bounce_count == 0, "genuine mail from the address resets its bounce counter"


def test_total_connection_limit_answers_421(mail_domain, inbound_listener, settings):
    settings.MAILHUB_SMTPD_MAX_CONNECTIONS = 1
    listener = inbound_listener()
    with smtp_client(listener.port) as first:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as second:
            assert second.recv(200).startswith(b"421 4.7.0")
        assert first.noop()[0] == 250


@pytest.mark.postgres
def test_the_listener_recovers_after_the_database_drops_its_connections(
    mail_domain, inbound_listener
):
    from django.db import connection

    from tests.conftest import on_postgres

    if not on_postgres():
        pytest.skip("needs PostgreSQL: it terminates the listener's server connections")
    listener = inbound_listener()
    send(listener.port, build_mail(message_id="<before@customer.test>"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    msg = build_mail(message_id="<after@customer.test>", subject="After the restart")
    for _attempt in range(3):
        try:
            send(listener.port, msg)
            break
        except smtplib.SMTPDataError as exc:
            # A 4xx is allowed once: the client keeps the mail and retries.
            assert exc.smtp_code == 451
    wait_for(
        lambda: Ticket.objects.filter(title="After the restart").exists(),
        timeout=90,
        message="the mail accepted after the restart was not posted",
    )
    assert Message.objects.filter(message_id="<after@customer.test>").count() == 1


def test_concurrent_sessions_are_stored_together_without_double_posts(
    mail_domain, inbound_listener
):
    import threading

    from tests.support.inbound import wait_processed

    listener = inbound_listener()
    messages = [
        build_mail(sender=f"s{n}@customer.test", subject=f"Burst {n}", message_id=f"<b{n}@c.test>")
        for n in range(10)
    ]
    twice = build_mail(sender="twice@customer.test", subject="Twice", message_id="<tw@c.test>")
    replies = []

    def deliver(msg):
        with smtp_client(listener.port) as client:
            client.mail(msg["From"])
            client.rcpt("support@mailhub.test")
            replies.append(client.data(msg.as_bytes(policy=policy.SMTP))[0])

    threads = [threading.Thread(target=deliver, args=(m,)) for m in [*messages, twice, twice]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_processed()
    assert replies == [250] * 12
    assert Ticket.objects.filter(title__startswith="Burst").count() == 10
    assert Ticket.objects.filter(title="Twice").count() == 1, "the same message is posted once"
    assert Message.objects.filter(message_id="<tw@c.test>").count() == 1
