"""Feedback-loop reports (RFC 5965): exactly the complaining contact is suppressed.

A campaign is sent to a list, the outbox's outcome is played back as delivered, then a
provider's report about one copy comes back: to the VERP address, or to abuse@/fbl@ with the
copy's headers (its Return-Path) inside, as feedback loops send them.
"""

import smtplib

import pytest

from campaigns.models import Campaign, CampaignRecipient, SkipReason
from campaigns.services import campaign_queue_process, campaign_resume, campaign_send
from chatter.models import BounceEvent, BounceEventKind, Contact
from inbound.bounces import bounce_process
from inbound.models import Decision, InboundMail
from outbox.models import MailRecipient
from outbox.verp import VerpRef, bounce_address
from tests.support.bounce_samples import arf_report
from tests.support.campaigns import campaign_make, mailing_list_bulk, outbox_report
from tests.support.inbound import smtp_client, wait_processed


@pytest.fixture
def sent_campaign(db):
    members = mailing_list_bulk(name="News", count=4, prefix="n", domain="customer.test")
    campaign = campaign_send(campaign=campaign_make(subject="Autumn news", lists=[members]))
    campaign_queue_process()
    outbox_report(campaign=campaign, status="sent")
    traces = list(CampaignRecipient.objects.filter(campaign=campaign).order_by("id"))
    return campaign, members, traces


def _copy(trace):
    recipient = MailRecipient.objects.select_related("mail").get(pk=trace.outbox_recipient_id)
    verp = bounce_address(ref=VerpRef("r", recipient.pk), domain="mailhub.test")
    return recipient.mail, verp


@pytest.mark.django_db
def test_campaign_mail_carries_a_feedback_id(sent_campaign):
    campaign, members, traces = sent_campaign
    mail, _ = _copy(traces[0])
    assert mail.headers["Feedback-ID"] == f"c{campaign.pk}:l{members.pk}:mailhub.test"


@pytest.mark.django_db
def test_an_arf_report_at_the_verp_address_suppresses_exactly_the_complaining_contact(
    sent_campaign, bounce_log
):
    campaign, members, traces = sent_campaign
    complainer = traces[1]
    mail, verp = _copy(complainer)
    raw = arf_report(message_id=mail.message_id, recipient=complainer.email, sender=verp)

    outcome = bounce_process(inbound_mail=None, rcpt=verp, message=raw)

    assert outcome.startswith(f"complaint.applied: r{complainer.outbox_recipient_id}")
    complained = Contact.objects.filter(complained_at__isnull=False)
    assert list(complained.values_list("email", flat=True)) == [complainer.email]
    event = BounceEvent.objects.get(contact__email=complainer.email)
    assert event.kind == BounceEventKind.COMPLAINED
    assert "Yahoo!-Mail-Feedback/2.0" in event.reason
    assert list(
        CampaignRecipient.objects.filter(complained_at__isnull=False).values_list("pk", flat=True)
    ) == [complainer.pk]
    assert any("event=complaint.applied" in line for line in bounce_log)
    # Not a bounce: nobody's bounce counter moved.
    assert not Contact.objects.filter(bounce_count__gt=0).exists()


@pytest.mark.django_db
def test_a_second_report_about_the_same_copy_counts_once(sent_campaign):
    campaign, members, traces = sent_campaign
    mail, verp = _copy(traces[0])
    raw = arf_report(message_id=mail.message_id, recipient=traces[0].email, sender=verp)
    bounce_process(inbound_mail=None, rcpt=verp, message=raw)
    bounce_process(inbound_mail=None, rcpt="fbl@mailhub.test", message=raw)

    assert CampaignRecipient.objects.filter(complained_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_a_report_without_a_token_suppresses_no_one(sent_campaign, bounce_log):
    campaign, members, traces = sent_campaign
    mail, _ = _copy(traces[2])
    # Someone who knows an address and the Message-ID writes a report naming it.
    raw = arf_report(
        message_id=mail.message_id,
        recipient=traces[2].email,
        sender="bounce@mailhub.test",
        redacted=False,
    )

    outcome = bounce_process(inbound_mail=None, rcpt="abuse@mailhub.test", message=raw)

    assert outcome.startswith("complaint.unverified:")
    assert not Contact.objects.filter(complained_at__isnull=False).exists()
    assert any(
        "event=complaint.unverified" in line and traces[2].email in line for line in bounce_log
    )


@pytest.mark.django_db
def test_not_spam_reports_take_nothing(sent_campaign):
    campaign, members, traces = sent_campaign
    mail, verp = _copy(traces[0])
    raw = arf_report(
        message_id=mail.message_id, recipient=traces[0].email, sender=verp, feedback_type="not-spam"
    )
    assert bounce_process(inbound_mail=None, rcpt=verp, message=raw).startswith("bounce.ignored")
    assert not Contact.objects.filter(complained_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_complained_contact_is_skipped_by_the_next_campaign(sent_campaign):
    campaign, members, traces = sent_campaign
    mail, verp = _copy(traces[0])
    bounce_process(
        inbound_mail=None,
        rcpt=verp,
        message=arf_report(message_id=mail.message_id, recipient=traces[0].email, sender=verp),
    )
    Campaign.objects.filter(pk=campaign.pk).update(paused_reason="")

    second = campaign_send(campaign=campaign_make(subject="Winter news", lists=[members]))
    campaign_queue_process()  # the first campaign finished; the second starts

    skipped = CampaignRecipient.objects.get(campaign=second, contact__email=traces[0].email)
    assert (skipped.status, skipped.skip_reason) == ("skipped", SkipReason.COMPLAINED)
    assert CampaignRecipient.objects.filter(campaign=second, status="queued").count() == 3


@pytest.mark.django_db
def test_a_complaint_rate_over_the_line_pauses_the_queue_with_a_reason(settings):
    settings.MAILHUB_CAMPAIGN_BATCH_SIZE = 10
    members = mailing_list_bulk(name="Big", count=30, prefix="b", domain="customer.test")
    campaign = campaign_send(campaign=campaign_make(subject="Big news", lists=[members]))
    campaign_queue_process(time_budget=0)  # one batch of 10
    outbox_report(campaign=campaign, status="sent")
    [first, *_] = CampaignRecipient.objects.filter(campaign=campaign).order_by("id")
    mail, verp = _copy(first)

    bounce_process(
        inbound_mail=None,
        rcpt=verp,
        message=arf_report(message_id=mail.message_id, recipient=first.email, sender=verp),
    )

    campaign.refresh_from_db()
    assert "1 of 10 delivered mails were reported as spam (10.0%)" in campaign.paused_reason
    assert "0.3 %" in campaign.paused_reason
    before = CampaignRecipient.objects.filter(campaign=campaign).count()
    campaign_queue_process()
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == before

    assert campaign_resume(campaign=campaign)
    campaign_queue_process(time_budget=0)
    assert CampaignRecipient.objects.filter(campaign=campaign).count() > before


@pytest.mark.django_db(transaction=True)
def test_reports_to_abuse_and_fbl_through_the_listener(mail_domain, inbound_listener):
    members = mailing_list_bulk(name="News", count=3, prefix="l", domain="customer.test")
    campaign = campaign_send(campaign=campaign_make(subject="News", lists=[members]))
    campaign_queue_process()
    outbox_report(campaign=campaign, status="sent")
    traces = list(CampaignRecipient.objects.filter(campaign=campaign).order_by("id"))
    listener = inbound_listener()
    for trace, rcpt in zip(traces[:2], ("abuse@mailhub.test", "fbl@mailhub.test"), strict=True):
        mail, verp = _copy(trace)
        raw = arf_report(
            message_id=mail.message_id,
            recipient=trace.email,
            sender=verp,
            feedback_id=mail.headers["Feedback-ID"],
        )
        with smtp_client(listener.port) as client:
            assert client.sendmail("fbl-sender@provider.test", [rcpt], raw) == {}
    wait_processed()

    assert set(
        Contact.objects.filter(complained_at__isnull=False).values_list("email", flat=True)
    ) == {
        traces[0].email,
        traces[1].email,
    }
    for row in InboundMail.objects.all():
        assert row.decision == Decision.BOUNCE
        assert "complaint.applied" in row.reason

    # Anything else to abuse@ is refused: it only takes reports.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        with smtp_client(listener.port) as client:
            client.sendmail(
                "carla@customer.test",
                ["abuse@mailhub.test"],
                b"From: carla@customer.test\r\nSubject: hi\r\n\r\nhello\r\n",
            )
    assert refused.value.smtp_code == 550


@pytest.mark.django_db
def test_the_pages_show_the_complaint(sent_campaign, client, staff_user):
    campaign, members, traces = sent_campaign
    Campaign.objects.filter(pk=campaign.pk).update(state="sending")
    mail, verp = _copy(traces[0])
    bounce_process(
        inbound_mail=None,
        rcpt=verp,
        message=arf_report(message_id=mail.message_id, recipient=traces[0].email, sender=verp),
    )
    client.force_login(staff_user)

    contact = Contact.objects.get(email=traces[0].email)
    page = client.get(f"/contacts/{contact.pk}/").content.decode()
    assert 'id="contact-complained"' in page
    assert "Complained (marked as spam)" in page
    assert "Feedback report (abuse) from Yahoo!-Mail-Feedback/2.0" in page

    page = client.get(campaign.get_absolute_url()).content.decode()
    assert 'id="paused-reason"' in page
    assert "1 of 4 delivered mails were reported as spam (25.0%)" in page
    assert '<td id="stat-complained">1</td>' in page

    page = client.get("/ops/").content.decode()
    assert "Complaint rate" in page and "0.3% line" in page
    assert "(1 of " in page.split('id="complaint-rate"')[1]
