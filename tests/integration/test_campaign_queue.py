"""The campaign queue: creation order, one at a time, cancel unblocks, schedules, skips, batches.

These drive the services directly; the outbox's answer comes through ``recipients_updated`` as it
does in production (``outbox_report``). End-to-end runs with a worker are in tests/e2e.
"""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignRecipient, ListMember
from chatter.models import Contact
from outbox.models import MailRecipient, OutgoingMail
from tests.support.campaigns import campaign_make, mailing_list_bulk, outbox_report

pytestmark = pytest.mark.django_db


def states() -> dict[str, str]:
    return dict(Campaign.objects.values_list("subject", "state"))


def mailed(campaign: Campaign) -> int:
    return CampaignRecipient.objects.filter(campaign=campaign).exclude(status="skipped").count()


def test_three_campaigns_go_in_creation_order_one_at_a_time():
    lst = mailing_list_bulk(name="News", count=5)
    first, second, third = (campaign_make(subject=s, lists=[lst]) for s in ("C1", "C2", "C3"))
    # Send is clicked in reverse order: creation order still decides (the seed's example).
    for campaign in (third, second, first):
        services.campaign_send(campaign=campaign)

    services.campaign_queue_process()
    assert states() == {"C1": "sending", "C2": "in_queue", "C3": "in_queue"}
    assert [mailed(c) for c in (first, second, third)] == [5, 0, 0]
    # Running the queue again while C1's mail is still in the outbox starts nothing else.
    services.campaign_queue_process()
    assert states() == {"C1": "sending", "C2": "in_queue", "C3": "in_queue"}

    outbox_report(campaign=first)
    assert states()["C1"] == "sent"
    services.campaign_queue_process()
    assert states() == {"C1": "sent", "C2": "sending", "C3": "in_queue"}
    assert [mailed(c) for c in (first, second, third)] == [5, 5, 0]

    outbox_report(campaign=second)
    services.campaign_queue_process()
    outbox_report(campaign=third)
    assert states() == {"C1": "sent", "C2": "sent", "C3": "sent"}
    started = list(Campaign.objects.order_by("started_at").values_list("subject", flat=True))
    assert started == ["C1", "C2", "C3"]
    # Every contact got each campaign once, carrying the same subject as its campaign.
    subjects = list(OutgoingMail.objects.order_by("pk").values_list("subject", flat=True))
    assert subjects == ["C1"] * 5 + ["C2"] * 5 + ["C3"] * 5


def test_a_failed_mail_still_finishes_the_campaign_and_counts_as_failed():
    lst = mailing_list_bulk(name="News", count=3)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    outbox_report(campaign=campaign, status="deferred")
    assert Campaign.objects.get().state == "sending"  # deferred mail has not left yet
    outbox_report(campaign=campaign, status="failed")
    stats = selectors.campaign_stats(campaign=Campaign.objects.get())
    assert stats.state == "sent" and stats.failed == 3 and stats.sent == 0
    assert stats.percent == 100 and stats.ratio(stats.failed) == 100.0


def test_cancelling_the_head_cancels_its_waiting_mail_and_lets_the_next_start():
    lst = mailing_list_bulk(name="News", count=4)
    head, nxt = campaign_make(subject="C1", lists=[lst]), campaign_make(subject="C2", lists=[lst])
    services.campaign_send(campaign=head)
    services.campaign_send(campaign=nxt)
    services.campaign_queue_process()
    assert states() == {"C1": "sending", "C2": "in_queue"}

    cancelled = services.campaign_cancel(campaign=head)
    assert cancelled == 4
    assert set(OutgoingMail.objects.filter(subject="C1").values_list("state", flat=True)) == {
        "cancel"
    }
    assert selectors.campaign_stats(campaign=Campaign.objects.get(subject="C1")).canceled == 4
    services.campaign_queue_process()
    assert states() == {"C1": "cancelled", "C2": "sending"}
    assert OutgoingMail.objects.filter(subject="C2", state="outgoing").count() == 4


def test_cancel_refuses_a_sent_campaign_with_a_reason():
    lst = mailing_list_bulk(name="News", count=1)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    outbox_report(campaign=campaign)
    with pytest.raises(services.CampaignActionError, match="nothing to cancel"):
        services.campaign_cancel(campaign=Campaign.objects.get())


def test_a_scheduled_campaign_waits_for_its_time_and_does_not_block_due_ones():
    lst = mailing_list_bulk(name="News", count=2)
    later = campaign_make(subject="Later", lists=[lst])
    now_one = campaign_make(subject="Now", lists=[lst])
    at = timezone.now() + dt.timedelta(hours=1)
    services.campaign_schedule(campaign=later, at=at)
    services.campaign_send(campaign=now_one)

    services.campaign_queue_process()
    assert states() == {"Later": "in_queue", "Now": "sending"}
    entries = {e.campaign.subject: e.status for e in selectors.campaign_queue(now=timezone.now())}
    assert entries["Now"] == "Sending: waiting for the outbox to deliver its last 2 mails"
    assert entries["Later"].startswith("Scheduled: due ")

    outbox_report(campaign=now_one, status="deferred")
    entries = {e.campaign.subject: e.status for e in selectors.campaign_queue(now=timezone.now())}
    assert entries["Now"].endswith("last 2 mails (2 deferred by the relay, retrying)")
    outbox_report(campaign=now_one)
    services.campaign_queue_process()
    assert states()["Later"] == "in_queue" and mailed(later) == 0
    # At its time it is the head of the queue.
    assert selectors.campaign_queue_head(now=at + dt.timedelta(seconds=1)).pk == later.pk


def test_schedule_refuses_a_past_time():
    lst = mailing_list_bulk(name="News", count=1)
    campaign = campaign_make(subject="C1", lists=[lst])
    with pytest.raises(services.CampaignActionError, match="future"):
        services.campaign_schedule(campaign=campaign, at=timezone.now() - dt.timedelta(minutes=1))
    assert Campaign.objects.get().state == "draft"


def test_skips_are_counted_by_reason_and_not_mailed():
    a = mailing_list_bulk(name="A", count=4, prefix="a")
    b = mailing_list_bulk(name="B", count=0)
    contacts = list(Contact.objects.order_by("pk"))
    # a0 blacklisted, a1 opted out of A, a2 also on list B (duplicate), a3 fine; plus an
    # address that is not one (created by an old import that did not check).
    Contact.objects.filter(pk=contacts[0].pk).update(blacklisted=True)
    ListMember.objects.filter(contact=contacts[1]).update(unsubscribed_at=timezone.now())
    ListMember.objects.create(mailing_list=b, contact=contacts[2])
    bad = Contact.objects.create(name="Bad", email="not-an-address")
    ListMember.objects.create(mailing_list=b, contact=bad)

    campaign = campaign_make(subject="C1", lists=[a, b])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()

    recipients = [r.address for r in MailRecipient.objects.all()]
    assert sorted(recipients) == ["a2@list.test", "a3@list.test"]
    stats = selectors.campaign_stats(campaign=Campaign.objects.get())
    assert stats.skipped == {
        "Blacklisted Address": 1,
        "Opted Out": 1,
        "Invalid Email": 1,
        "Complained": 0,
        "Duplicate Email": 1,
    }
    outbox_report(campaign=campaign)
    stats = selectors.campaign_stats(campaign=Campaign.objects.get())
    assert (stats.state, stats.sent, stats.processed, stats.expected) == ("sent", 2, 6, 6)
    problems = {
        (r.email, r.get_skip_reason_display())
        for r in selectors.campaign_problems(campaign=campaign)
    }
    assert problems == {
        ("a0@list.test", "Blacklisted Address"),
        ("a1@list.test", "Opted Out"),
        ("not-an-address", "Invalid Email"),
    }
    assert stats.percent == 100


def test_a_large_list_is_queued_in_bounded_batches_and_a_rerun_continues(settings):
    lst = mailing_list_bulk(name="Big", count=250)
    campaign = campaign_make(subject="Big one", lists=[lst])
    services.campaign_send(campaign=campaign)
    # A zero time budget: one batch per run, then the run hands over to the next one.
    runs = [services.campaign_queue_process(batch_size=100, time_budget=0)]
    while runs[-1].more:
        runs.append(services.campaign_queue_process(batch_size=100, time_budget=0))
    assert [r.mails for r in runs] == [100, 100, 50]
    assert MailRecipient.objects.count() == 250
    assert MailRecipient.objects.values("address").distinct().count() == 250
    c = Campaign.objects.get()
    assert c.members_done and c.state == "sending"


def test_batch_queries_do_not_grow_with_the_batch(django_assert_max_num_queries):
    lst = mailing_list_bulk(name="Big", count=400)
    campaign = campaign_make(subject="C", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process(batch_size=1, time_budget=0)  # starts it, 1 mail
    campaign.refresh_from_db()
    with django_assert_max_num_queries(15):
        queued = services.campaign_batch_send(campaign_id=campaign.pk, limit=300)
    assert queued == 300 and OutgoingMail.objects.count() == 301


def test_a_rerun_over_handled_members_mails_nobody_twice():
    lst = mailing_list_bulk(name="News", count=3)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    # A run that starts from an old cursor (as a run racing another would) finds the
    # (campaign, contact) rows of the first one and queues nothing.
    Campaign.objects.filter(pk=campaign.pk).update(cursor=0, members_done=False)
    assert services.campaign_batch_send(campaign_id=campaign.pk, limit=10) == 0
    assert OutgoingMail.objects.count() == 3


def test_the_database_refuses_a_second_row_for_the_same_contact():
    from django.db import IntegrityError, transaction

    lst = mailing_list_bulk(name="News", count=1)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    row = CampaignRecipient.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignRecipient.objects.create(
            campaign=campaign, contact=row.contact, email=row.email, status="queued"
        )


def test_progress_counts_bounces_reported_after_sending():
    lst = mailing_list_bulk(name="News", count=2)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    ids = outbox_report(campaign=campaign)
    from outbox.signals import recipients_updated

    MailRecipient.objects.filter(pk=ids[0]).update(status="bounced")
    recipients_updated.send(sender=MailRecipient, recipient_ids=[ids[0]])
    stats = selectors.campaign_stats(campaign=Campaign.objects.get())
    assert (stats.sent, stats.bounced, stats.ratio(stats.bounced)) == (1, 1, 50.0)


def test_send_requires_a_list():
    campaign = Campaign.objects.create(subject="No list", body_html="<p>x</p>")
    with pytest.raises(services.CampaignActionError, match="mailing list"):
        services.campaign_send(campaign=campaign)


def test_outcome_sync_queries_do_not_grow_with_the_batch(django_assert_max_num_queries):
    lst = mailing_list_bulk(name="News", count=300)
    campaign = campaign_make(subject="C1", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    ids = list(CampaignRecipient.objects.values_list("outbox_recipient_id", flat=True))
    MailRecipient.objects.filter(pk__in=ids).update(status="sent")
    with django_assert_max_num_queries(8):
        finished = services.campaign_recipients_sync(recipient_ids=ids)
    assert finished == [campaign.pk]
    assert CampaignRecipient.objects.filter(status="sent").count() == 300


def test_the_process_queue_task_runs_daily_from_beat():
    from django_celery_beat.models import PeriodicTask

    from mailhub.celery import app

    task = PeriodicTask.objects.get(name="Mail Marketing: Process queue")
    assert task.enabled and task.task == "campaigns.process_queue"
    assert (task.interval.every, task.interval.period) == (1, "days")
    app.loader.import_default_modules()
    assert "campaigns.process_queue" in app.tasks


def test_base_url_without_https_is_flagged_in_production(settings):
    from campaigns.checks import unsubscribe_link_is_https

    settings.DEBUG = False
    settings.MAILHUB_BASE_URL = "http://mail.example.com"
    (warning,) = unsubscribe_link_is_https(None)
    assert warning.id == "campaigns.W001" and "https://" in warning.hint
    settings.MAILHUB_BASE_URL = "https://mail.example.com"
    assert unsubscribe_link_is_https(None) == []
