"""Incoming mail servers against a real Dovecot: fetched mail takes the listener's path.

Dovecot runs on free loopback ports (tests/support/dovecot.py); mail is appended over IMAP as a
provider would have delivered it, MailHub fetches it with its real clients (imapclient, poplib),
and the mailbox is read back to see what was acknowledged.
"""

import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from django_celery_beat.models import PeriodicTask

from chatter.models import Message, Notification
from chatter.rendering import notification_reply_to
from chatter.services import contact_get_or_create, follower_add, message_post
from fetch import idle, mailboxes, services
from fetch.models import AfterFetch, FetchBounce, FetchedMessage, IncomingServer, Protocol
from inbound.models import Decision, InboundMail
from outbox.models import OutgoingMail
from outbox.services import mails_send
from records.models import Quote, Ticket
from tests.conftest import ChildProcess, process_env, wait_for
from tests.support.inbound import build_mail

pytestmark = pytest.mark.django_db

PORTS = {
    Protocol.IMAP_SSL: "imaps_port",
    Protocol.IMAP_STARTTLS: "imap_port",
    Protocol.POP3_SSL: "pop3s_port",
}


def _server(dovecot, login, password, **fields) -> IncomingServer:
    protocol = fields.pop("protocol", Protocol.IMAP_SSL)
    server = IncomingServer(
        name=fields.pop("name", f"box {login}"),
        protocol=protocol,
        host=dovecot.host,
        port=getattr(dovecot, PORTS[protocol]),
        login=login,
        active=True,
        **fields,
    )
    server.password = password
    server.save()
    services.incoming_server_schedule(server=server)
    return server


def _raw(**kwargs) -> bytes:
    return bytes(build_mail(**kwargs))


def _mailbox(dovecot, mail_domain):
    login, password = dovecot.user_add()
    return login, password


def _thread():
    customer = contact_get_or_create(email="carla@customer.test", name="Carla")
    ticket = Ticket.objects.create(title="Printer")
    follower_add(record=ticket, contact=customer)
    sent = message_post(record=ticket, author=None, body="<p>Fixed?</p>", subject="Printer")
    notification = Notification.objects.get(message=sent, contact=customer)
    reply_to = notification_reply_to(message_id=sent.pk, notification_id=notification.pk)
    return ticket, sent, reply_to


def test_fetched_mail_is_routed_posted_and_bounced_like_listener_mail(
    dovecot, mail_domain, relay, settings
):
    login, password = dovecot.user_add()
    ticket, sent, reply_to = _thread()
    dovecot.append(
        login,
        password,
        _raw(
            to=reply_to,
            subject="Re: Printer",
            body="Yes, it prints again.",
            message_id="<reply-1@customer.test>",
            In_Reply_To=sent.message_id,
        ),
    )
    dovecot.append(
        login,
        password,
        _raw(to="sales@mailhub.test", subject="Need 40 chairs", message_id="<new-1@buyer.test>"),
    )
    dovecot.append(
        login,
        password,
        _raw(
            sender="Sam <sam@elsewhere.test>",
            to="nobody@mailhub.test",
            subject="Hello?",
            message_id="<lost-1@elsewhere.test>",
            Return_Path="<sam@elsewhere.test>",
        ),
    )
    server = _server(dovecot, login, password)

    report = services.incoming_server_fetch(server_id=server.pk)

    assert report.error == ""
    assert report.fetched == 3
    reply = Message.objects.get(message_id="<reply-1@customer.test>")
    assert (reply.object_id, reply.content_type.model) == (ticket.pk, "ticket")
    assert "prints again" in reply.body
    quote = Quote.objects.get(title="Need 40 chairs")
    assert Message.objects.filter(message_id="<new-1@buyer.test>", object_id=quote.pk).exists()
    assert InboundMail.objects.get(message_id="<new-1@buyer.test>").decision == Decision.ALIAS_NEW
    assert InboundMail.objects.get(message_id="<new-1@buyer.test>").peer.startswith("fetch:")
    # The unknown recipient: what the listener would answer, as a DSN to the sender.
    bounce = FetchBounce.objects.get(message_id="<lost-1@elsewhere.test>")
    assert bounce.sent and bounce.sender == "sam@elsewhere.test"
    dsn = OutgoingMail.objects.get(from_addr=f"MAILER-DAEMON@{settings.MAILHUB_MAIL_DOMAIN}")
    mails_send(mail_ids=[dsn.pk])
    received = [m for m in relay.handler.received if m.rcpt_tos == ["sam@elsewhere.test"]]
    assert len(received) == 1
    assert received[0].mail_from in ("", "<>")  # never bounced back (RFC 5321 §4.5.5)
    msg = message_from_bytes(received[0].data, policy=default_policy)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = received[0].data.decode()
    assert "Final-Recipient: rfc822; nobody@mailhub.test" in status
    assert "Status: 5.1.1" in status and "Action: failed" in status
    assert "Message-ID: <lost-1@elsewhere.test>" in status
    # Every message is acknowledged (mark seen), the row tells what happened.
    assert all(b"\\Seen" in m["flags"] for m in dovecot.messages(login, password))
    server.refresh_from_db()
    assert server.messages_fetched == 3 and server.last_error == ""
    assert server.last_fetch_at is not None and server.lease_until is None
    # A second run finds nothing new and posts nothing twice.
    again = services.incoming_server_fetch(server_id=server.pk)
    assert again.fetched == 0 and Message.objects.filter(message_id__contains="-1@").count() == 2


def test_no_bounce_to_null_sender_automatic_mail_or_list_and_one_per_sender(dovecot, mail_domain):
    login, password = dovecot.user_add()
    cases = [
        {"Return_Path": "<>", "sender": "daemon@far.test"},
        {"Auto_Submitted": "auto-replied", "sender": "vacation@far.test"},
        {"List_Id": "<news.far.test>", "sender": "list@far.test"},
        {"sender": "rob@far.test"},
        {"sender": "rob@far.test"},
    ]
    for n, headers in enumerate(cases):
        dovecot.append(
            login,
            password,
            _raw(to="ghost@mailhub.test", message_id=f"<b{n}@far.test>", **headers),
        )
    server = _server(dovecot, login, password)

    services.incoming_server_fetch(server_id=server.pk)

    dsns = OutgoingMail.objects.filter(from_addr__istartswith="mailer-daemon@")
    assert [m.recipients.get().address for m in dsns] == ["rob@far.test"]
    reasons = dict(FetchedMessage.objects.values_list("message_id", "outcome"))
    assert "null sender" in reasons["<b0@far.test>"]
    assert "automatic" in reasons["<b1@far.test>"]
    assert "mailing list" in reasons["<b2@far.test>"]
    assert "had one this hour" in reasons["<b4@far.test>"]
    assert len(dovecot.messages(login, password)) == 5  # all acknowledged (seen), none lost
    assert FetchedMessage.objects.filter(server=server, acknowledged_at__isnull=False).count() == 5


def test_move_after_fetch_over_starttls(dovecot, mail_domain):
    login, password = dovecot.user_add()
    dovecot.folder_create(login, password, "Done")
    dovecot.append(login, password, _raw(message_id="<move-1@customer.test>"))
    server = _server(
        dovecot,
        login,
        password,
        protocol=Protocol.IMAP_STARTTLS,
        after_fetch=AfterFetch.MOVE,
        move_to="Done",
    )

    report = services.incoming_server_fetch(server_id=server.pk)

    assert (report.error, report.fetched) == ("", 1)
    assert dovecot.messages(login, password, "INBOX") == []
    moved = dovecot.messages(login, password, "Done")
    assert len(moved) == 1 and b"<move-1@customer.test>" in moved[0]["raw"]
    assert Ticket.objects.filter(title="Printer jams again").count() == 1


@pytest.mark.parametrize("protocol", [Protocol.IMAP_SSL, Protocol.POP3_SSL])
def test_delete_after_fetch(dovecot, mail_domain, protocol):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<del-1@customer.test>"))
    dovecot.append(login, password, _raw(message_id="<del-2@customer.test>", subject="Second"))
    server = _server(dovecot, login, password, protocol=protocol, after_fetch=AfterFetch.DELETE)

    report = services.incoming_server_fetch(server_id=server.pk)

    assert (report.error, report.fetched) == ("", 2)
    assert dovecot.messages(login, password) == []
    assert (
        Message.objects.filter(
            message_id__in=["<del-1@customer.test>", "<del-2@customer.test>"]
        ).count()
        == 2
    )


def test_pop3_keep_fetches_each_message_once(dovecot, mail_domain):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<keep-1@customer.test>"))
    server = _server(dovecot, login, password, protocol=Protocol.POP3_SSL)

    first = services.incoming_server_fetch(server_id=server.pk)
    dovecot.append(login, password, _raw(message_id="<keep-2@customer.test>", subject="Two"))
    second = services.incoming_server_fetch(server_id=server.pk)

    assert (first.fetched, second.fetched) == (1, 1)
    assert len(dovecot.messages(login, password)) == 2  # POP3 "seen": left on the server
    assert Ticket.objects.count() == 2


def test_crash_between_store_and_acknowledge_posts_once_and_loses_nothing(
    dovecot, mail_domain, monkeypatch
):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<crash-1@customer.test>"))
    dovecot.append(login, password, _raw(message_id="<crash-2@customer.test>", subject="Two"))
    server = _server(dovecot, login, password)
    real_acknowledge = mailboxes.ImapMailbox.acknowledge

    def die(self, uid):
        raise SystemExit("worker killed")  # not an Exception: nothing in the fetch catches it

    monkeypatch.setattr(mailboxes.ImapMailbox, "acknowledge", die)
    with pytest.raises(SystemExit):
        services.incoming_server_fetch(server_id=server.pk)
    # Stored (and posted) before the crash, but the server was told nothing.
    assert Message.objects.filter(message_id="<crash-1@customer.test>").count() == 1
    assert not any(b"\\Seen" in m["flags"] for m in dovecot.messages(login, password))
    # A killed worker leaves its lease behind; it runs out.
    IncomingServer.objects.filter(pk=server.pk).update(lease_until=None)

    monkeypatch.setattr(mailboxes.ImapMailbox, "acknowledge", real_acknowledge)
    report = services.incoming_server_fetch(server_id=server.pk)

    assert report.error == ""
    assert (report.fetched, report.acknowledged) == (1, 2)  # crash-2 fetched, crash-1 only told
    assert Message.objects.filter(message_id="<crash-1@customer.test>").count() == 1
    assert InboundMail.objects.filter(message_id="<crash-1@customer.test>").count() == 1
    assert Message.objects.filter(message_id="<crash-2@customer.test>").count() == 1
    assert all(b"\\Seen" in m["flags"] for m in dovecot.messages(login, password))


def test_uidvalidity_change_rescans_without_posting_twice(dovecot, mail_domain):
    login, password = dovecot.user_add()
    raw = _raw(message_id="<uv-1@customer.test>")
    dovecot.append(login, password, raw, folder="Support")
    server = _server(dovecot, login, password, folder="Support")
    assert services.incoming_server_fetch(server_id=server.pk).fetched == 1
    before = FetchedMessage.objects.get(server=server).uidvalidity
    # The folder is rebuilt (a migration, a restore): new UIDVALIDITY, the same mail unseen.
    with dovecot.client(login, password) as client:
        client.delete_folder("Support")
        client.create_folder("Support")
    dovecot.append(login, password, raw, folder="Support")
    dovecot.append(login, password, _raw(message_id="<uv-2@customer.test>"), folder="Support")

    report = services.incoming_server_fetch(server_id=server.pk)

    assert report.error == ""
    after = set(FetchedMessage.objects.filter(server=server).values_list("uidvalidity", flat=True))
    assert before in after and len(after) == 2
    assert Message.objects.filter(message_id="<uv-1@customer.test>").count() == 1
    assert Message.objects.filter(message_id="<uv-2@customer.test>").count() == 1
    assert all(b"\\Seen" in m["flags"] for m in dovecot.messages(login, password, "Support"))


def _stuck_port():
    """A server that accepts connections and never says a word (a timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, accepted


def _error_after_fetch(server: IncomingServer) -> str:
    report = services.incoming_server_fetch(server_id=server.pk)
    server.refresh_from_db()
    assert report.error == server.last_error
    assert "Traceback" not in server.last_error
    assert server.lease_until is None  # the next scheduled run is not blocked
    assert PeriodicTask.objects.get(
        task=services.FETCH_TASK, kwargs__contains=str(server.pk)
    ).enabled
    return server.last_error


def test_bad_servers_get_the_servers_own_words(dovecot, mail_domain, monkeypatch):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<kept-1@customer.test>"))

    missing = _server(dovecot, login, password, name="missing folder", folder="Archive2019")
    words = _error_after_fetch(missing)
    assert "Archive2019" in words and "doesn't exist" in words

    no_target = _server(
        dovecot,
        login,
        password,
        name="missing move target",
        after_fetch=AfterFetch.MOVE,
        move_to="Nowhere",
    )
    assert "'Nowhere'" in _error_after_fetch(no_target)

    listener, accepted = _stuck_port()
    monkeypatch.setattr(mailboxes, "TIMEOUT_SECONDS", 0.5)
    stuck = _server(dovecot, login, password, name="stuck")
    IncomingServer.objects.filter(pk=stuck.pk).update(port=listener.getsockname()[1])
    try:
        assert "did not answer within" in _error_after_fetch(stuck)
    finally:
        listener.close()
        for conn in accepted:
            conn.close()

    monkeypatch.delenv("SSL_CERT_FILE")  # the test certificate is no longer trusted
    untrusted = _server(dovecot, login, password, name="untrusted")
    words = _error_after_fetch(untrusted)
    assert words.startswith("TLS failure") and "certificate" in words

    # Nothing was taken from the mailbox by any of them.
    assert InboundMail.objects.count() == 0
    assert [b"\\Seen" in m["flags"] for m in dovecot.messages(login, password)] == [False]

    # Last: Dovecot slows down every later login from an address that failed one.
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))
    monkeypatch.setattr(mailboxes, "TIMEOUT_SECONDS", 30)
    wrong = _server(dovecot, login, "not-the-password", name="wrong password")
    assert "AUTHENTICATIONFAILED" in _error_after_fetch(wrong)
    assert "login refused" in wrong.last_error

    pop_wrong = _server(dovecot, login, "nope", name="pop wrong", protocol=Protocol.POP3_SSL)
    assert "Authentication failed" in _error_after_fetch(pop_wrong)
    assert InboundMail.objects.count() == 0


@pytest.mark.parametrize("protocol", [Protocol.IMAP_SSL, Protocol.POP3_SSL])
def test_oversize_mail_is_bounced_552_from_its_headers_alone(
    dovecot, mail_domain, settings, protocol
):
    login, password = dovecot.user_add()
    settings.MAILHUB_SMTPD_MAX_SIZE = 20_000
    dovecot.append(
        login,
        password,
        _raw(
            sender="Pat <pat@far.test>",
            message_id="<big-1@far.test>",
            body="x" * 40 + "\n" + ("y" * 70 + "\n") * 400,
        ),
    )
    dovecot.append(login, password, _raw(message_id="<small-1@far.test>", sender="pat@far.test"))
    server = _server(dovecot, login, password, protocol=protocol, after_fetch=AfterFetch.DELETE)

    report = services.incoming_server_fetch(server_id=server.pk)

    assert (report.error, report.fetched) == ("", 2)
    assert not InboundMail.objects.filter(message_id="<big-1@far.test>").exists()
    assert Message.objects.filter(message_id="<small-1@far.test>").exists()
    dsn = OutgoingMail.objects.get(from_addr__istartswith="mailer-daemon@")
    assert dsn.recipients.get().address == "pat@far.test"
    assert b"Status: 5.3.4" in bytes(dsn.mime) and b"552 5.3.4" in bytes(dsn.mime)
    assert b"Final-Recipient: rfc822; support@mailhub.test" in bytes(dsn.mime)
    assert dovecot.messages(login, password) == []


def test_a_message_that_cannot_be_stored_stays_and_does_not_block_the_others(
    dovecot, mail_domain, monkeypatch
):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<poison-1@far.test>"))
    dovecot.append(login, password, _raw(message_id="<fine-1@far.test>", subject="Fine"))
    server = _server(dovecot, login, password)
    real = services.inbound_receive_many

    def receive(*, deliveries):
        if b"<poison-1@far.test>" in deliveries[0].raw:
            raise RuntimeError("database said no")
        return real(deliveries=deliveries)

    monkeypatch.setattr(services, "inbound_receive_many", receive)
    report = services.incoming_server_fetch(server_id=server.pk)

    assert report.fetched == 1
    assert report.error.startswith("message 1 kept on the server: RuntimeError: database said no")
    assert Message.objects.filter(message_id="<fine-1@far.test>").exists()
    flags = [b"\\Seen" in m["flags"] for m in dovecot.messages(login, password)]
    assert flags == [False, True]  # the poison one waits for the next run, nothing lost

    monkeypatch.setattr(services, "inbound_receive_many", real)
    again = services.incoming_server_fetch(server_id=server.pk)
    assert (again.error, again.fetched) == ("", 1)
    assert Message.objects.filter(message_id="<poison-1@far.test>").count() == 1


@pytest.mark.django_db(transaction=True)
def test_idle_fetches_new_mail_within_seconds_and_reconnects(dovecot, mail_domain, monkeypatch):
    login, password = dovecot.user_add()
    dovecot.append(login, password, _raw(message_id="<idle-0@customer.test>"))
    server = _server(dovecot, login, password)
    monkeypatch.setattr(idle, "BACKOFF_SECONDS", (0.2,))
    stop = threading.Event()
    watcher = threading.Thread(
        target=idle.idle_watch,
        kwargs={"server_id": server.pk, "stop": stop, "check_seconds": 0.2},
        daemon=True,
    )
    watcher.start()
    try:
        # What was there before the watcher started is caught up at once.
        wait_for(lambda: Message.objects.filter(message_id="<idle-0@customer.test>").exists(), 10)
        time.sleep(0.5)  # in IDLE now
        appended = time.monotonic()
        dovecot.append(login, password, _raw(message_id="<idle-1@customer.test>", subject="New"))
        wait_for(lambda: Message.objects.filter(message_id="<idle-1@customer.test>").exists(), 5)
        assert time.monotonic() - appended < 5
        # The server drops every connection (a restart): the watcher reconnects and goes on.
        subprocess.run(
            ["doveadm", "-c", str(dovecot.base / "dovecot.conf"), "kick", login],
            check=True,
            capture_output=True,
        )
        time.sleep(0.5)
        dovecot.append(login, password, _raw(message_id="<idle-2@customer.test>", subject="Later"))
        wait_for(lambda: Message.objects.filter(message_id="<idle-2@customer.test>").exists(), 30)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert Message.objects.filter(message_id__startswith="<idle-").count() == 3


@pytest.mark.django_db(transaction=True)
def test_runfetchidle_process_fetches_and_stops_on_sigint(dovecot, mail_domain, tmp_path, settings):
    login, password = dovecot.user_add()
    server = _server(dovecot, login, password)
    env = process_env(DJANGO_SECRET_KEY=settings.SECRET_KEY, SSL_CERT_FILE=str(dovecot.cert))
    child = ChildProcess(
        [sys.executable, "manage.py", "runfetchidle"], env=env, log=tmp_path / "idle.log"
    )
    try:
        wait_for(lambda: b"Watching" in (tmp_path / "idle.log").read_bytes(), 20)
        time.sleep(1.5)  # connected and in IDLE
        dovecot.append(login, password, _raw(message_id="<proc-1@customer.test>"))
        wait_for(lambda: Message.objects.filter(message_id="<proc-1@customer.test>").exists(), 5)
        child.kill(signal.SIGINT)
        assert child.proc.wait(timeout=10) == 0
    finally:
        child.stop()
    server.refresh_from_db()
    assert server.messages_fetched == 1 and server.last_error == ""
