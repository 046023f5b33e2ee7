"""Who a bounce may mark: only the recipient whose own copy's secret it returns.

Each follower's copy of a notification is its own SMTP transaction with its own signed VERP
Return-Path; the Message-ID is the same in every copy. A co-follower (or a customer who chose
the Message-ID of a staff notification) knows the Message-ID and the other addresses, but not
the other copies' VERP addresses.
"""

import pytest

from chatter.models import BounceEvent, BounceEventKind, Notification, NotificationStatus
from chatter.services import contact_for_user, follower_add, message_post
from inbound.bounces import bounce_process
from outbox.models import MailRecipient, RecipientStatus
from outbox.verp import VerpRef, bounce_address
from tests.support import bounce_samples, bounces

pytestmark = pytest.mark.django_db


def _post(ticket, staff_user):
    message = message_post(
        record=ticket, author=contact_for_user(user=staff_user), body="<p>Status update</p>"
    )
    Notification.objects.filter(message=message).update(status=NotificationStatus.SENT)
    MailRecipient.objects.filter(notification__message=message).update(
        status=RecipientStatus.SENT, code=250
    )
    by_email = {n.contact.email: n for n in message.notifications.select_related("contact")}
    return by_email["bob@customer.test"], by_email["alice@customer.test"]


@pytest.fixture
def ticket(ticket_factory, contact_factory):
    ticket = ticket_factory()
    for name in ("Bob", "Alice"):
        contact = contact_factory(name=name, email=f"{name.lower()}@customer.test")
        follower_add(record=ticket, contact=contact)
    return ticket


@pytest.fixture
def posted(ticket, staff_user):
    return _post(ticket, staff_user)


def verp_for(notification) -> str:
    return bounce_address(ref=VerpRef("n", notification.pk), domain="mailhub.test")


def mail_id_of(notification) -> str:
    return MailRecipient.objects.get(notification=notification).mail.message_id


def test_a_co_followers_forged_dsn_changes_nothing_for_the_other_follower(posted, bounce_log):
    bob, alice = posted
    # Alice got her own copy: she knows the Message-ID and her own Return-Path, not Bob's.
    for sender in (verp_for(alice), "bounce@mailhub.test"):
        forged = bounces.postfix_dsn(
            message_id=mail_id_of(bob), recipient="bob@customer.test", sender=sender
        )
        for rcpt in ("bounce@mailhub.test", "catchall@mailhub.test", verp_for(alice)):
            outcome = bounce_process(inbound_mail=None, rcpt=rcpt, message=forged)
            if rcpt != verp_for(alice):
                assert outcome.startswith("bounce.unverified:"), outcome

    bob.refresh_from_db()
    bob.contact.refresh_from_db()
    assert bob.status == NotificationStatus.SENT
    assert bob.failure_reason == ""
    assert bob.contact.bounce_count == 0
    assert not bob.contact.blacklisted
    unverified = [line for line in bounce_log if "event=bounce.unverified" in line]
    assert len(unverified) == 4
    assert all("rcpt=bob@customer.test" in line for line in unverified)
    # Staff see it on Bob's contact page as reported, never counted.
    events = BounceEvent.objects.filter(contact=bob.contact)
    assert {e.kind for e in events} == {BounceEventKind.UNVERIFIED}
    assert events.first().get_kind_display() == "Reported, not verified"


def test_the_same_dsn_with_bobs_own_token_is_applied(posted):
    bob, alice = posted
    genuine = bounces.postfix_dsn(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(bob)
    )

    outcome = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=genuine)

    bob.refresh_from_db()
    alice.refresh_from_db()
    assert outcome.startswith(f"bounce.applied: n{bob.pk} bob@customer.test 5.1.1")
    assert bob.status == NotificationStatus.BOUNCE
    assert alice.status == NotificationStatus.SENT


def test_five_forged_reports_blacklist_no_one(ticket, staff_user, settings):
    # Rules that five genuine hard bounces in a row would meet at once.
    settings.MAILHUB_BLACKLIST_MIN_SPREAD_DAYS = 0
    settings.MAILHUB_BLACKLIST_BOUNCES = 5
    posts = [_post(ticket, staff_user) for _ in range(6)]
    for bob, alice in posts[:5]:
        for build in (bounces.postfix_dsn, bounces.exim_bounce):
            raw = build(
                message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(alice)
            )
            bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    bob_contact = posts[0][0].contact
    bob_contact.refresh_from_db()
    assert bob_contact.bounce_count == 0 and not bob_contact.blacklisted
    assert not Notification.objects.filter(status=NotificationStatus.BOUNCE).exists()

    # The same five reports with Bob's own tokens do blacklist him: the rule is live.
    for bob, _ in posts[:5]:
        raw = bounces.postfix_dsn(
            message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(bob)
        )
        bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)
    bob_contact.refresh_from_db()
    assert bob_contact.bounce_count == 5 and bob_contact.blacklisted


def test_a_forged_token_in_the_returned_headers_proves_nothing(posted):
    bob, alice = posted
    forged = verp_for(bob)[:-25] + "0" * 20 + "@mailhub.test"
    raw = bounces.postfix_dsn(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=forged
    )

    outcome = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    bob.refresh_from_db()
    assert outcome.startswith("bounce.unverified:")
    assert bob.status == NotificationStatus.SENT


def test_an_unmatched_recipient_of_our_message_id_says_so(posted, bounce_log):
    bob, alice = posted
    raw = bounces.postfix_dsn(
        message_id=mail_id_of(bob), recipient="carol@elsewhere.test", sender=verp_for(bob)
    )

    outcome = bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    assert outcome.startswith("bounce.unmatched:")
    [line] = [line for line in bounce_log if "event=bounce.unmatched" in line]
    assert f"the Message-ID {mail_id_of(bob)} is ours" in line
    assert "carol@elsewhere.test was not one of its recipients" in line
    assert "no mail of ours" not in line


def test_a_policy_block_shows_on_the_notification_but_never_counts(posted, bounce_log):
    bob, alice = posted
    raw = bounce_samples.gmail_spam_block(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(bob)
    )

    outcome = bounce_process(inbound_mail=None, rcpt=verp_for(bob), message=raw)

    bob.refresh_from_db()
    bob.contact.refresh_from_db()
    assert outcome.startswith("bounce.policy:")
    assert bob.status == NotificationStatus.BOUNCE
    assert "Refused by policy" in bob.failure_reason
    assert "550-5.7.1" in bob.failure_reason and "unsolicited mail" in bob.failure_reason
    assert bob.contact.bounce_count == 0
    assert BounceEvent.objects.get(contact=bob.contact).kind == BounceEventKind.POLICY
    assert any("event=bounce.policy" in line for line in bounce_log)


def test_unverified_reports_stay_out_of_the_blacklist_window(posted):
    from chatter.suppression import contact_hard_bounces_in_window

    bob, alice = posted
    raw = bounces.postfix_dsn(message_id=mail_id_of(bob), recipient="bob@customer.test")
    bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=raw)

    assert contact_hard_bounces_in_window(contact=bob.contact) == 0
    assert BounceEvent.objects.get(contact=bob.contact).kind == BounceEventKind.UNVERIFIED


def test_the_contact_page_shows_an_unverified_report_as_such(posted, client, staff_user):
    bob, alice = posted
    forged = bounces.postfix_dsn(
        message_id=mail_id_of(bob), recipient="bob@customer.test", sender=verp_for(alice)
    )
    bounce_process(inbound_mail=None, rcpt="bounce@mailhub.test", message=forged)
    client.force_login(staff_user)

    page = client.get(f"/contacts/{bob.contact.pk}/").content.decode()

    assert '<tr class="event-unverified">' in page
    assert "Reported, not verified" in page
    assert "carries no VERP token of that recipient" in page
    assert 'id="contact-bouncing"' not in page
