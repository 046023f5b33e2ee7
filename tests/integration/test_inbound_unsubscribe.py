"""The List-Unsubscribe mailto, end to end: a real SMTP client → the listener → campaigns.

The mailto is read from the campaign mail the outbox was given, as a mail client would.
"""

import re
import smtplib
from urllib.parse import unquote

import pytest

from campaigns import content, services
from campaigns.models import CampaignRecipient, ListMember
from inbound.models import Decision, InboundMail
from outbox.models import OutgoingMail
from tests.support.campaigns import campaign_make, mailing_list_bulk, outbox_report
from tests.support.inbound import build_mail, send, smtp_client, wait_processed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def campaign_sent(mail_domain):
    """A campaign sent to m0..m2@list.test; returns (campaign, {email: mailto URI})."""
    lst = mailing_list_bulk(name="News", count=3)
    campaign = campaign_make(subject="Autumn news", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    mailtos = {}
    for mail in OutgoingMail.objects.filter(subject="Autumn news"):
        header = mail.headers["List-Unsubscribe"]
        mailtos[mail.recipients.get().address] = re.search(r"<(mailto:[^>]+)>", header).group(1)
    outbox_report(campaign=campaign)
    return campaign, mailtos


def mailto_parts(uri: str) -> tuple[str, str]:
    address, _, query = uri.removeprefix("mailto:").partition("?subject=")
    return address, unquote(query)


def opted_out(email: str) -> bool:
    return ListMember.objects.filter(contact__email=email, unsubscribed_at__isnull=False).exists()


def unsubscribe_mail(*, sender: str, to: str, subject: str, message_id: str, **headers):
    return build_mail(
        sender=sender, to=to, subject=subject, body="", message_id=message_id, **headers
    )


def test_the_mailto_unsubscribes_and_the_next_campaign_skips_the_contact(
    settings, inbound_listener, campaign_sent
):
    settings.MAILHUB_MAIL_DOMAIN = "mailhub.test"
    campaign, mailtos = campaign_sent
    address, subject = mailto_parts(mailtos["m1@list.test"])
    assert address == "unsubscribe@mailhub.test"
    port = inbound_listener().port
    outbox_before = OutgoingMail.objects.count()

    refused = send(
        port,
        unsubscribe_mail(
            sender="m1@list.test", to=address, subject=subject, message_id="<u1@list.test>"
        ),
        mail_from="m1@list.test",
    )

    assert refused == {}
    assert opted_out("m1@list.test")
    assert not opted_out("m0@list.test") and not opted_out("m2@list.test")
    member = ListMember.objects.get(contact__email="m1@list.test")
    assert (member.unsubscribed_via, member.unsubscribed_campaign_id) == ("mail", campaign.pk)
    row = InboundMail.objects.get(message_id="<u1@list.test>")
    assert row.decision == Decision.UNSUBSCRIBE and row.processed_at is not None
    assert OutgoingMail.objects.count() == outbox_before, "an unsubscribe never sends mail"

    nxt = campaign_make(subject="Winter news", lists=list(campaign.mailing_lists.all()))
    services.campaign_send(campaign=nxt)
    services.campaign_queue_process()
    rows = dict(CampaignRecipient.objects.filter(campaign=nxt).values_list("email", "status"))
    assert rows == {"m0@list.test": "queued", "m1@list.test": "skipped", "m2@list.test": "queued"}
    assert not OutgoingMail.objects.filter(
        subject="Winter news", recipients__address="m1@list.test"
    ).exists()


def test_a_second_unsubscribe_mail_is_still_accepted_and_changes_nothing(
    settings, inbound_listener, campaign_sent
):
    _, mailtos = campaign_sent
    address, subject = mailto_parts(mailtos["m0@list.test"])
    port = inbound_listener().port
    send(
        port,
        unsubscribe_mail(sender="m0@list.test", to=address, subject=subject, message_id="<a@x>"),
    )
    first = ListMember.objects.get(contact__email="m0@list.test").unsubscribed_at

    with smtp_client(port) as client:
        client.mail("m0@list.test")
        client.rcpt(address)
        code, reply = client.data(
            unsubscribe_mail(
                sender="m0@list.test", to=address, subject=subject, message_id="<b@x>"
            ).as_bytes()
        )
    assert code == 250, reply
    wait_processed()
    member = ListMember.objects.get(contact__email="m0@list.test")
    assert member.unsubscribed_at == first, "the first unsubscribe is the one recorded"
    assert InboundMail.objects.filter(decision=Decision.UNSUBSCRIBE).count() == 2


def test_a_forged_token_is_refused_with_what_to_do_and_changes_nothing(
    inbound_listener, campaign_sent
):
    campaign, mailtos = campaign_sent
    address, subject = mailto_parts(mailtos["m2@list.test"])
    m0 = ListMember.objects.get(contact__email="m0@list.test").contact_id
    # Someone swaps in another contact's id: without our key the signature cannot match.
    real = content.unsubscribe_token(campaign_id=campaign.pk, contact_id=m0)
    mine = subject.split()[-1]
    forged = real.split(":")[0] + ":" + mine.split(":", 1)[1]
    assert forged != real and forged != mine
    port = inbound_listener().port

    for bad_subject in (f"unsubscribe {forged}", "unsubscribe", "please remove me"):
        with smtp_client(port) as client:
            client.mail("m2@list.test")
            client.rcpt(address)
            code, reply = client.data(
                unsubscribe_mail(
                    sender="m2@list.test", to=address, subject=bad_subject, message_id=None
                ).as_bytes()
            )
        assert code == 550, (bad_subject, reply)
        assert reply.startswith(b"5.7.1") and b"use the unsubscribe link" in reply

    assert not ListMember.objects.filter(unsubscribed_at__isnull=False).exists()
    assert not InboundMail.objects.exclude(decision=Decision.REFUSED).exists()


def test_an_automatic_unsubscribe_mail_sends_nothing(inbound_listener, campaign_sent):
    _, mailtos = campaign_sent
    address, subject = mailto_parts(mailtos["m2@list.test"])
    port = inbound_listener().port
    before = OutgoingMail.objects.count()
    send(
        port,
        unsubscribe_mail(
            sender="m2@list.test",
            to=address,
            subject=subject,
            message_id="<auto@list.test>",
            Auto_Submitted="auto-replied",
        ),
    )
    assert opted_out("m2@list.test")
    assert OutgoingMail.objects.count() == before
    row = InboundMail.objects.get(message_id="<auto@list.test>")
    assert row.automatic and row.chatter_message_id is None


def test_unsubscribe_at_a_foreign_domain_is_refused_as_relaying(inbound_listener, campaign_sent):
    _, mailtos = campaign_sent
    _, subject = mailto_parts(mailtos["m0@list.test"])
    port = inbound_listener().port
    with smtp_client(port) as client:
        client.mail("m0@list.test")
        code, reply = client.rcpt("unsubscribe@elsewhere.test")
        assert code == 550 and reply.startswith(b"5.7.1"), reply
        client.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(
                "m0@list.test",
                ["unsubscribe@elsewhere.test"],
                unsubscribe_mail(
                    sender="m0@list.test",
                    to="unsubscribe@elsewhere.test",
                    subject=subject,
                    message_id="<f@x>",
                ).as_bytes(),
            )
    assert not opted_out("m0@list.test")
