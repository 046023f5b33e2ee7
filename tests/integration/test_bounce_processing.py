"""Bounce processing on the database: VERP and DSN → the right notification turns ``bounce``.

The listener (inbound) calls ``bounce_process`` for every mail it routes as a bounce; these tests
call it the same way with real-format bounces, after a real ``message_post`` to followers.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from chatter.models import (
    BounceEvent,
    BounceEventKind,
    FailureType,
    Notification,
    NotificationStatus,
)
from chatter.services import follower_add, message_post
from chatter.suppression import (
    contact_blacklist_remove,
    contact_bounce_record,
)
from inbound.bounces import bounce_process, contact_bounce_reset
from outbox.models import MailRecipient, OutgoingMail, RecipientStatus
from outbox.signals import recipients_updated
from outbox.verp import VerpRef, bounce_address
from tests.support import bounces

pytestmark = pytest.mark.django_db


@pytest.fixture
def updated_signals():
    received: list[list[int]] = []

    def receiver(sender, recipient_ids, **kwargs):
        received.append(list(recipient_ids))

    recipients_updated.connect(receiver)
    yield received
    recipients_updated.disconnect(receiver)


@pytest.fixture
def posted(ticket_factory, contact_factory, staff_user):
    """A staff message on a ticket followed by Bob and Alice, both notified by email and sent."""
    from chatter.services import contact_for_user

    ticket = ticket_factory()
    bob = contact_factory(name="Bob", email="bob@customer.test")
    alice = contact_factory(name="Alice", email="alice@customer.test")
    follower_add(record=ticket, contact=bob)
    follower_add(record=ticket, contact=alice)
    # The urgent send is dispatched on commit; this test plays the relay's answer itself.
    message = message_post(
        record=ticket, author=contact_for_user(user=staff_user), body="<p>Status update</p>"
    )
    # As the outbox records a relay's 250 for each recipient.
    Notification.objects.filter(message=message).update(status=NotificationStatus.SENT)
    MailRecipient.objects.filter(notification__message=message).update(
        status=RecipientStatus.SENT, code=250
    )
    by_email = {n.contact.email: n for n in message.notifications.select_related("contact")}
    return message, by_email["bob@customer.test"], by_email["alice@customer.test"]


def verp_for(notification) -> str:
    return bounce_address(ref=VerpRef("n", notification.pk), domain="mailhub.test")


def mail_id_of(notification) -> str:
    return MailRecipient.objects.get(notification=notification).mail.message_id


def test_verp_bounce_marks_exactly_that_notification_with_the_diagnostic(
    posted, updated_signals, bounce_log, django_capture_on_commit_callbacks
):
    message, bob, alice = posted
    raw = bounces.postfix_dsn(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(bob)
    )

    with django_capture_on_commit_callbacks(execute=True):
        outcome = bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    alice.refresh_from_db()
    assert outcome.startswith("bounce.applied:")
    assert bob.status == NotificationStatus.BOUNCE
    assert bob.failure_type == FailureType.BOUNCE
    assert "Status: 5.1.1 (permanent failure: bad destination mailbox address)" in (
        bob.failure_reason
    )
    assert "User unknown in local recipient table" in bob.failure_reason
    assert "Reported by: mx.customer.test" in bob.failure_reason
    assert alice.status == NotificationStatus.SENT
    recipient = MailRecipient.objects.get(notification=bob)
    assert recipient.status == RecipientStatus.BOUNCED
    assert recipient.code == 550
    assert updated_signals == [[recipient.pk]]
    bob.contact.refresh_from_db()
    assert bob.contact.bounce_count == 1
    assert bob.contact.last_bounce_at is not None
    assert bob.contact.is_bouncing
    assert any("event=bounce.applied" in line and "status=5.1.1" in line for line in bounce_log)


def test_verp_wins_over_what_the_bounce_says(posted):
    """The DSN names a forwarded address and another mail's Message-ID; VERP still maps exactly."""
    message, bob, alice = posted
    raw = bounces.exim_bounce(
        message_id=mail_id_of(alice), recipient="robert@forwarded.test", sender=verp_for(bob)
    )

    bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    alice.refresh_from_db()
    assert bob.status == NotificationStatus.BOUNCE
    assert "Recipient address rejected: User unknown" in bob.failure_reason
    assert alice.status == NotificationStatus.SENT


@pytest.mark.parametrize(
    ("sample", "words"),
    [
        ("postfix", "User unknown in local recipient table"),
        ("exim", "SMTP error from remote mail server after RCPT TO"),
        ("exchange-online", "RESOLVER.ADR.RecipientNotFound"),
        ("exchange-legacy", "The recipient name is not recognized"),
        ("qmail", "Sorry, no mailbox here by that name."),
    ],
)
def test_plain_bounce_address_matches_by_original_message_id_and_recipient(posted, sample, words):
    message, bob, alice = posted
    build = bounces.SAMPLES[sample]
    # The returned headers carry Alice's own Return-Path: the proof only her copy had.
    raw = build(
        message_id=mail_id_of(alice), recipient="alice@customer.test", sender=verp_for(alice)
    )

    outcome = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    alice.refresh_from_db()
    bob.refresh_from_db()
    assert outcome.startswith("bounce.applied:"), outcome
    assert alice.status == NotificationStatus.BOUNCE
    assert words in alice.failure_reason
    assert bob.status == NotificationStatus.SENT


def test_bounce_of_auto_deleted_mail_is_found_through_the_chatter_message(posted):
    message, bob, alice = posted
    # The post's mail carries the chatter message's Message-ID.
    assert mail_id_of(bob) == message.message_id
    # Sent urgent mail is auto-deleted: only the chatter message keeps the Message-ID.
    OutgoingMail.objects.filter(chatter_message=message).delete()

    for notification in (bob, alice):
        raw = bounces.postfix_dsn(
            message_id=message.message_id,
            recipient=notification.contact.email,
            sender=verp_for(notification),
        )
        outcome = bounce_process(inbound_mail=None, rcpt="catchall@mailhub.test", message=raw)
        assert outcome.startswith("bounce.applied:"), outcome

    for notification in (bob, alice):
        notification.refresh_from_db()
        assert notification.status == NotificationStatus.BOUNCE
        assert notification.mail_id is None


def test_bounce_of_a_resent_notification_is_found_through_its_in_reply_to(posted):
    """Send & close resends with a fresh Message-ID that replies to the message."""
    from outbox.services import notifications_resend

    message, bob, alice = posted
    Notification.objects.filter(pk=bob.pk).update(status=NotificationStatus.EXCEPTION)
    [resent] = notifications_resend(notifications=[bob])
    Notification.objects.filter(pk=bob.pk).update(status=NotificationStatus.SENT)
    new_id = resent.message_id
    OutgoingMail.objects.filter(pk=resent.pk).delete()  # auto-deleted once sent
    raw = bounces.postfix_dsn(
        message_id=new_id, recipient="bob@customer.test", sender=verp_for(bob)
    ).replace(
        f"Message-ID: {new_id}\r\n".encode(),
        f"Message-ID: {new_id}\r\nIn-Reply-To: {message.message_id}\r\n".encode(),
    )

    outcome = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    bob.refresh_from_db()
    alice.refresh_from_db()
    assert outcome.startswith("bounce.applied:"), outcome
    assert bob.status == NotificationStatus.BOUNCE
    assert alice.status == NotificationStatus.SENT


def test_delayed_warning_changes_nothing(posted, bounce_log):
    message, bob, alice = posted
    raw = bounces.postfix_delayed(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(bob)
    )

    for rcpt in (verp_for(bob), "bounce@mailhub.test"):
        outcome = bounce_process(inbound_mail=None, rcpt=rcpt, message=raw)
        assert outcome.startswith("bounce.delayed:")

    bob.refresh_from_db()
    bob.contact.refresh_from_db()
    assert bob.status == NotificationStatus.SENT
    assert bob.contact.bounce_count == 0
    assert any("event=bounce.delayed" in line for line in bounce_log)


def test_unknown_token_is_logged_not_an_error(posted, bounce_log):
    ghost = bounce_address(ref=VerpRef("n", 987654), domain="mailhub.test")
    raw = bounces.postfix_dsn(message_id="<nobody@elsewhere.test>", recipient="x@customer.test")

    outcome = bounce_process(inbound_mail=None, rcpt=ghost, message=raw)
    plain = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    assert outcome.startswith("bounce.unmatched:")
    assert plain.startswith("bounce.unmatched:")
    assert not Notification.objects.filter(status=NotificationStatus.BOUNCE).exists()
    unmatched = [line for line in bounce_log if "event=bounce.unmatched" in line]
    assert len(unmatched) == 2
    assert "n987654" in unmatched[0]
    assert "<nobody@elsewhere.test>" in unmatched[1]


def test_forged_verp_signature_is_not_trusted(posted):
    message, bob, alice = posted
    forged = verp_for(bob).replace(f"n{bob.pk}.", f"n{alice.pk}.")
    raw = bounces.postfix_dsn(message_id="<made-up@attacker.test>", recipient="alice@customer.test")

    outcome = bounce_process(inbound_mail=None, rcpt=forged, message=raw)

    alice.refresh_from_db()
    alice.contact.refresh_from_db()
    # Read like a bounce to bounce@: it names Alice but proves nothing.
    assert outcome.startswith("bounce.unverified:")
    assert alice.status == NotificationStatus.SENT
    assert alice.contact.bounce_count == 0


def test_the_same_bounce_twice_counts_once(posted, bounce_log):
    message, bob, alice = posted
    raw = bounces.postfix_dsn(message_id=mail_id_of(bob), recipient="bob@customer.test")

    bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)
    again = bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.contact.refresh_from_db()
    assert again.startswith("bounce.duplicate:")
    assert bob.contact.bounce_count == 1
    assert BounceEvent.objects.filter(contact=bob.contact).count() == 1


def test_soft_bounce_turns_the_envelope_red_but_does_not_count(posted):
    message, bob, alice = posted
    raw = (
        bounces.postfix_dsn(message_id=mail_id_of(bob), recipient="bob@customer.test")
        .replace(b"Status: 5.1.1", b"Status: 5.2.2")
        .replace(b"550 5.1.1 <bob@customer.test>: Recipient address\r\n", b"552 5.2.2 Mailbox\r\n")
    )

    bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    bob.contact.refresh_from_db()
    assert bob.status == NotificationStatus.BOUNCE
    assert "mailbox full" in bob.failure_reason
    assert bob.contact.bounce_count == 0
    assert BounceEvent.objects.get(contact=bob.contact).kind == BounceEventKind.SOFT


def test_vacation_reply_to_the_return_path_is_not_a_bounce(posted):
    message, bob, alice = posted
    raw = bounces.vacation_reply(recipient="bob@customer.test", sender=verp_for(bob))

    outcome = bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    assert outcome.startswith("bounce.ignored:")
    assert bob.status == NotificationStatus.SENT


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe not a mail at all \x00",
        b"From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered Mail\r\n\r\nSomething went wrong.",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x",
    ],
    ids=["empty", "binary", "daemon-words-only", "truncated-report"],
)
def test_unreadable_bounces_are_logged_not_errors(posted, bounce_log, raw):
    message, bob, alice = posted
    for rcpt in ("bounce@mailhub.test", verp_for(bob)):
        outcome = bounce_process(inbound_mail=None, rcpt=rcpt, message=raw)
        assert outcome.split(":")[0] in (
            "bounce.ignored",
            "bounce.unmatched",
            "bounce.applied",
        ), outcome
    alice.refresh_from_db()
    assert alice.status == NotificationStatus.SENT


def test_bounces_never_send_mail(posted):
    message, bob, alice = posted
    before = OutgoingMail.objects.count()
    for build in bounces.SAMPLES.values():
        raw = build(message_id=mail_id_of(bob), recipient="bob@customer.test")
        bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)
    assert OutgoingMail.objects.count() == before


def test_genuine_mail_resets_the_counter(posted):
    message, bob, alice = posted
    raw = bounces.postfix_dsn(message_id=mail_id_of(bob), recipient="bob@customer.test")
    bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    contact_bounce_reset(email="  Bob@Customer.TEST ")

    bob.contact.refresh_from_db()
    assert bob.contact.bounce_count == 0
    assert not bob.contact.is_bouncing


# --- counter and blacklist thresholds -----------------------------------------------------------


def bounce_days(contact, days: list[float], now: dt.datetime):
    for day in days:
        contact = contact_bounce_record(
            contact=contact, hard=True, status="5.1.1", at=now - dt.timedelta(days=day)
        )
    return contact


def test_fifth_hard_bounce_over_more_than_a_week_blacklists(contact_factory):
    now = timezone.now()
    contact = bounce_days(contact_factory(), [20, 15, 10, 5], now)
    assert contact.bounce_count == 4
    assert not contact.blacklisted

    contact = bounce_days(contact, [0], now)

    assert contact.bounce_count == 5
    assert contact.blacklisted
    assert contact.blacklisted_at == now
    assert "5 hard bounces" in contact.blacklist_reason
    assert BounceEvent.objects.filter(contact=contact, kind=BounceEventKind.BLACKLISTED).exists()


def test_five_bounces_in_a_few_days_do_not_blacklist(contact_factory):
    contact = bounce_days(contact_factory(), [6, 4, 3, 1, 0], timezone.now())
    assert contact.bounce_count == 5
    assert not contact.blacklisted


def test_bounces_older_than_the_window_do_not_count(contact_factory):
    now = timezone.now()
    contact = bounce_days(contact_factory(), [130, 100, 60, 30], now)
    contact = bounce_days(contact, [0], now)
    # 91 days = 13 weeks: the 100- and 130-day-old bounces are out of the window.
    assert contact.bounce_count == 5
    assert not contact.blacklisted


def test_thresholds_are_settings(contact_factory, settings):
    settings.MAILHUB_BLACKLIST_BOUNCES = 2
    settings.MAILHUB_BLACKLIST_MIN_SPREAD_DAYS = 1
    contact = bounce_days(contact_factory(), [3, 0], timezone.now())
    assert contact.blacklisted


def test_a_reset_counter_holds_off_the_blacklist(contact_factory):
    now = timezone.now()
    contact = bounce_days(contact_factory(), [40, 30, 20, 10], now)
    contact_bounce_reset(email=contact.email)
    contact.refresh_from_db()
    contact = bounce_days(contact, [0], now)
    assert contact.bounce_count == 1
    assert not contact.blacklisted


def test_fifth_bounce_through_the_listener_path_blacklists(posted):
    message, bob, alice = posted
    bounce_days(bob.contact, [40, 30, 20, 10], timezone.now())
    raw = bounces.postfix_dsn(message_id=mail_id_of(bob), recipient="bob@customer.test")

    bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.contact.refresh_from_db()
    assert bob.contact.bounce_count == 5
    assert bob.contact.blacklisted


def test_blacklisted_contact_gets_no_email_and_the_reason_shows(posted, staff_user):
    message, bob, alice = posted
    bounce_days(bob.contact, [40, 30, 20, 10, 0], timezone.now())
    before = MailRecipient.objects.filter(address="bob@customer.test").count()

    from chatter.services import contact_for_user

    second = message_post(
        record=message.record, author=contact_for_user(user=staff_user), body="<p>Again</p>"
    )

    to_bob = second.notifications.get(contact=bob.contact)
    to_alice = second.notifications.get(contact=alice.contact)
    assert to_bob.status == NotificationStatus.CANCELED
    assert to_bob.failure_type == FailureType.BLACKLISTED
    assert to_bob.failure_reason == "Blacklisted Address"
    assert to_bob.mail_id is None
    assert MailRecipient.objects.filter(address="bob@customer.test").count() == before
    assert to_alice.status == NotificationStatus.READY
    assert to_alice.mail_id is not None


def test_removing_from_the_blacklist_needs_a_reason_and_starts_over(contact_factory, staff_user):
    now = timezone.now()
    contact = bounce_days(contact_factory(), [40, 30, 20, 10, 0], now)
    assert contact.blacklisted

    with pytest.raises(ValidationError, match="Say why"):
        contact_blacklist_remove(contact=contact, reason="  ", by=staff_user)
    assert contact_blacklist_remove(
        contact=contact, reason="Customer fixed the mailbox", by=staff_user
    )

    contact.refresh_from_db()
    assert not contact.blacklisted
    assert contact.bounce_count == 0
    lifted = BounceEvent.objects.get(contact=contact, kind=BounceEventKind.UNBLACKLISTED)
    assert lifted.reason == "Customer fixed the mailbox"
    assert lifted.by == staff_user
    # Old bounces no longer count: one more bounce does not put the address straight back.
    contact = contact_bounce_record(contact=contact, hard=True, status="5.1.1")
    assert not contact.blacklisted
    # Removing again is a no-op, not an error.
    assert not contact_blacklist_remove(contact=contact, reason="again", by=staff_user)


# --- campaigns: bounce rate per campaign through its counters -----------------------------------


def test_campaign_bounce_counts_on_the_campaign_and_blacklisted_members_are_skipped(
    django_capture_on_commit_callbacks,
):
    from campaigns.models import CampaignRecipient
    from campaigns.selectors import campaign_stats
    from campaigns.services import campaign_queue_process, campaign_send
    from chatter.suppression import contact_blacklist_add
    from tests.support.campaigns import campaign_make, mailing_list_bulk, outbox_report

    members = mailing_list_bulk(name="Customers", count=4, prefix="c", domain="customer.test")
    gone = members.members.order_by("id").first().contact
    contact_blacklist_add(contact_id=gone.pk, reason="bounced too often")
    campaign = campaign_send(campaign=campaign_make(subject="Autumn news", lists=[members]))
    campaign_queue_process()
    outbox_report(campaign=campaign, status="sent")
    trace = CampaignRecipient.objects.filter(campaign=campaign, status="sent").first()
    verp = bounce_address(ref=VerpRef("r", trace.outbox_recipient_id), domain="mailhub.test")
    mail = MailRecipient.objects.get(pk=trace.outbox_recipient_id).mail
    raw = bounces.postfix_dsn(message_id=mail.message_id, recipient=trace.email, sender=verp)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = bounce_process(inbound_mail=None, rcpt=verp, message=raw)

    assert outcome.startswith(f"bounce.applied: r{trace.outbox_recipient_id}")
    stats = campaign_stats(campaign=campaign)
    assert (stats.sent, stats.bounced) == (2, 1)
    assert stats.as_json()["ratios"]["bounced"] == pytest.approx(100 / 3, abs=0.1)
    assert stats.skipped["Blacklisted Address"] == 1
    trace.contact.refresh_from_db()
    assert trace.contact.bounce_count == 1


def test_an_unknown_format_from_a_mailer_daemon_at_the_verp_address_still_maps(posted):
    """VERP says who it was for even when nobody can read the bounce; it does not count."""
    message, bob, alice = posted
    raw = (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.odd.test>\r\n"
        b"Subject: Returned mail: see transcript for details\r\n\r\n"
        b"Your message could not be delivered. Goodbye.\r\n"
    )

    outcome = bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    bob.contact.refresh_from_db()
    assert outcome.startswith("bounce.applied:")
    assert bob.status == NotificationStatus.BOUNCE
    assert "Status: 5.0.0 (permanent failure)" in bob.failure_reason
    assert "Your message could not be delivered. Goodbye." in bob.failure_reason
    assert bob.contact.bounce_count == 0
