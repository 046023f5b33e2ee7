"""One mail that cannot be built fails alone, visibly; nothing stays ``sending`` for ever.

Against a real relay on loopback (aiosmtpd): the rest of the batch, and a campaign queued after
the broken mail, still leave; the broken one is in Delivery Failed with a reason a user reads,
and its notification shows the red envelope with that reason.
"""

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignState
from chatter.models import Attachment, FailureType, Notification, NotificationStatus
from chatter.services import contact_for_user
from outbox.models import MailRecipient, MailState, OutgoingMail, RecipientStatus
from outbox.services import (
    MailDraft,
    mails_cancel,
    mails_claim,
    mails_enqueue,
    mails_retry,
    mails_send,
    queue_run,
)
from tests.support.campaigns import campaign_make, mailing_list_bulk
from tests.support.outbox import post_to

pytestmark = pytest.mark.django_db

BUILT = "The mail could not be built: "


def _received_subjects(relay) -> list[str]:
    return sorted(str(m.message["Subject"]) for m in relay.handler.received)


def _drafts(*subjects: str, **overrides) -> list[MailDraft]:
    return [
        MailDraft(to=f"rcpt{i}@customer.test", subject=s, body_html="<p>x</p>", **overrides)
        for i, s in enumerate(subjects)
    ]


def test_unbuildable_mails_fail_alone_and_the_queue_run_sends_the_rest(relay, outbox_settings):
    good_before = mails_enqueue(drafts=_drafts("Before"))
    eai_from = mails_enqueue(drafts=_drafts("EAI sender", from_addr="zoë@mailhub.test"))[0]
    bad_id = mails_enqueue(drafts=_drafts("Stranger's id"))[0]
    # A Message-ID stored by an older version from a stranger's header.
    OutgoingMail.objects.filter(pk=bad_id.pk).update(message_id="<x-ü@attacker.test>")
    eai_rcpt = mails_enqueue(
        drafts=[MailDraft(to="jürgen@customer.test", subject="EAI rcpt", body_html="<p>x</p>")]
    )[0]
    good_after = mails_enqueue(drafts=_drafts("After", "After too"))

    report = queue_run(time_budget=30)

    assert _received_subjects(relay) == ["After", "After too", "Before"]
    assert report.failed == 3
    for mail in (eai_from, bad_id, eai_rcpt):
        mail.refresh_from_db()
        assert mail.state == MailState.EXCEPTION
        assert mail.failure_reason.startswith(BUILT)
        assert mail.lease_expires_at is None and mail.claimed_by == ""
        assert MailRecipient.objects.get(mail=mail).status == RecipientStatus.FAILED
    assert "SMTPUTF8" in eai_from.failure_reason and "zoë@mailhub.test" in eai_from.failure_reason
    assert eai_from.failure_type == FailureType.FROM_INVALID
    assert "Message-ID" in bad_id.failure_reason
    assert "jürgen@customer.test" in eai_rcpt.failure_reason
    for mail in [*good_before, *good_after]:
        assert OutgoingMail.objects.get(pk=mail.pk).state == MailState.SENT
    # A second run finds nothing to do: the broken mails are not claimed again.
    assert queue_run(time_budget=30).claimed == 0


def test_a_broken_notification_shows_the_red_envelope_with_the_reason(
    relay, outbox_settings, client, staff_user
):
    message = post_to("anna@customer.test", "ben@customer.test")
    message.author = contact_for_user(user=staff_user)
    message.save(update_fields=["author"])
    mail = OutgoingMail.objects.get(chatter_message=message)
    OutgoingMail.objects.filter(pk=mail.pk).update(message_id="<x-ü@attacker.test>")
    other = post_to("carla@customer.test", subject="Other ticket")

    # The urgent path: the task sends exactly the mails of this post.
    mails_send(mail_ids=[mail.pk, OutgoingMail.objects.get(chatter_message=other).pk])

    assert [m.rcpt_tos for m in relay.handler.received] == [["carla@customer.test"]]
    notes = Notification.objects.filter(message=message)
    assert {n.status for n in notes} == {NotificationStatus.EXCEPTION}
    assert all(n.failure_reason.startswith(BUILT) for n in notes)
    client.force_login(staff_user)
    page = client.get(message.record.get_absolute_url()).content.decode()
    assert f'id="envelope-{message.pk}"' in page and "envelope-failed" in page
    dialog = client.get(reverse("failures:dialog", args=[message.pk])).content.decode()
    assert "could not be built" in dialog and "Message-ID" in dialog


def test_a_mail_whose_attachment_is_gone_fails_alone(relay, outbox_settings):
    message = post_to("anna@customer.test", subject="With file")
    attachment = Attachment.objects.create(message=message, filename="a.pdf")
    attachment.file.save("a.pdf", ContentFile(b"%PDF-1.4"), save=True)
    attachment.file.storage.delete(attachment.file.name)  # lost from storage
    other = post_to("ben@customer.test", subject="Plain")

    mails_send()

    assert _received_subjects(relay) == ["Plain"]
    failed = OutgoingMail.objects.get(chatter_message=message)
    assert failed.state == MailState.EXCEPTION
    assert failed.failure_reason.startswith(BUILT + "FileNotFoundError")
    assert Notification.objects.get(message=other).status == NotificationStatus.SENT


def test_a_campaign_queued_behind_one_with_a_non_ascii_from_still_leaves(relay, outbox_settings):
    members = mailing_list_bulk(name="News", count=3)
    broken = campaign_make(subject="Broken sender", lists=[members])
    # Saved before the form checked it (or written by hand): it reaches the outbox.
    Campaign.objects.filter(pk=broken.pk).update(from_addr="Zoë <zoë@mailhub.test>")
    after = campaign_make(subject="Winter sale", lists=[members])
    for campaign in (broken, after):
        campaign_services.campaign_send(campaign=campaign)

    campaign_services.campaign_queue_process()
    mails_send()
    campaign_services.campaign_queue_process()
    mails_send()

    assert _received_subjects(relay) == ["Winter sale"] * 3
    states = dict(Campaign.objects.values_list("subject", "state"))
    assert states == {"Broken sender": CampaignState.SENT, "Winter sale": CampaignState.SENT}
    failed = OutgoingMail.objects.filter(subject="Broken sender")
    assert failed.count() == 3
    assert all(m.state == MailState.EXCEPTION for m in failed)
    assert all(m.failure_reason.startswith(BUILT + "From: ") for m in failed)


@pytest.mark.parametrize("lease", [dt.timedelta(minutes=-1), None], ids=["expired", "missing"])
def test_mail_left_sending_by_a_dead_worker_is_sent_by_the_next_run(relay, outbox_settings, lease):
    (mail,) = mails_enqueue(drafts=_drafts("Orphan"))
    OutgoingMail.objects.filter(pk=mail.pk).update(
        state=MailState.SENDING,
        claimed_by="dead-host:1:abc",
        lease_expires_at=timezone.now() + lease if lease else None,
    )
    queue_run(time_budget=30)
    assert _received_subjects(relay) == ["Orphan"]
    assert OutgoingMail.objects.get(pk=mail.pk).state == MailState.SENT


def test_staff_can_retry_a_stuck_mail_but_not_one_a_live_worker_holds(relay, outbox_settings):
    stuck, live = mails_enqueue(drafts=_drafts("Stuck", "Live"))
    now = timezone.now()
    OutgoingMail.objects.filter(pk=stuck.pk).update(
        state=MailState.SENDING, claimed_by="dead", lease_expires_at=now - dt.timedelta(seconds=1)
    )
    OutgoingMail.objects.filter(pk=live.pk).update(
        state=MailState.SENDING, claimed_by="alive", lease_expires_at=now + dt.timedelta(hours=1)
    )
    assert mails_retry(mail_ids=[stuck.pk, live.pk]) == 1
    stuck.refresh_from_db()
    assert (stuck.state, stuck.claimed_by, stuck.lease_expires_at) == (MailState.OUTGOING, "", None)
    assert OutgoingMail.objects.get(pk=live.pk).state == MailState.SENDING
    mails_send(mail_ids=[stuck.pk])
    assert _received_subjects(relay) == ["Stuck"]


def test_staff_can_cancel_a_mail_in_sending_and_its_worker_cannot_undo_it(outbox_settings):
    message = post_to("anna@customer.test")
    mail = OutgoingMail.objects.get(chatter_message=message)
    OutgoingMail.objects.filter(pk=mail.pk).update(
        state=MailState.SENDING,
        claimed_by="alive",
        lease_expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    assert mails_cancel(mail_ids=[mail.pk]) == 1
    mail.refresh_from_db()
    assert mail.state == MailState.CANCEL and mail.claimed_by == ""
    assert Notification.objects.get(message=message).status == NotificationStatus.CANCELED
    # The worker's guarded write (claimed_by="alive") now matches nothing.
    assert (
        OutgoingMail.objects.filter(pk=mail.pk, claimed_by="alive", state=MailState.SENDING).update(
            state=MailState.SENT
        )
        == 0
    )


def _abandon(mail, *, attempts: int) -> None:
    OutgoingMail.objects.filter(pk=mail.pk).update(
        state=MailState.SENDING,
        claimed_by="dead-host:1:abc",
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
        attempts=attempts,
    )


def test_a_mail_whose_worker_keeps_dying_is_claimed_alone_and_counted(outbox_settings):
    suspect, innocent = mails_enqueue(drafts=_drafts("Suspect", "Innocent"))
    _abandon(suspect, attempts=2)
    waiting = mails_enqueue(drafts=_drafts("Waiting", "Waiting too"))

    assert mails_claim(limit=10, holder="me") == [suspect.pk]
    suspect.refresh_from_db()
    assert suspect.attempts == 3  # the dead worker's try counts
    _abandon(innocent, attempts=0)  # died once with it: still batched with the rest
    claimed = mails_claim(limit=10, holder="me2")
    assert sorted(claimed) == [innocent.pk, *(m.pk for m in waiting)]
    assert OutgoingMail.objects.get(pk=innocent.pk).attempts == 1


def test_a_mail_that_killed_its_worker_every_time_fails_with_the_reason(
    relay, outbox_settings, settings
):
    settings.MAILHUB_RETRY_MAX_ATTEMPTS = 4
    message = post_to("anna@customer.test", subject="Killer")
    killer = OutgoingMail.objects.get(chatter_message=message)
    _abandon(killer, attempts=4)
    others = mails_enqueue(drafts=_drafts("Fine"))

    queue_run(time_budget=30)

    assert _received_subjects(relay) == ["Fine"]
    killer.refresh_from_db()
    assert killer.state == MailState.EXCEPTION
    assert "stopped 4 times" in killer.failure_reason
    note = Notification.objects.get(message=message)
    assert note.status == NotificationStatus.EXCEPTION and "stopped 4 times" in note.failure_reason
    assert OutgoingMail.objects.get(pk=others[0].pk).state == MailState.SENT
    # Staff can still send it again once the cause is fixed.
    assert mails_retry(mail_ids=[killer.pk]) == 1
