"""Campaigns end to end: a real Celery worker process, the real outbox sender, a real relay.

What is counted is what arrived at the relay.
"""

import datetime as dt
import time
import urllib.request
from collections import Counter

import pytest
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignRecipient
from campaigns.tasks import campaigns_process_queue
from outbox.models import OutgoingMail
from outbox.tasks import queue_run
from tests.conftest import wait_for
from tests.support.campaigns import campaign_make, mailing_list_bulk

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# No daily limit in these runs (the quota has its own tests in the outbox).
WORKER_ENV = {"MAILHUB_DAILY_QUOTA": "0"}


def subjects_at(relay) -> list[str]:
    return [str(m.message["Subject"]) for m in list(relay.handler.received)]


def test_three_campaigns_arrive_in_creation_order_one_at_a_time(relay, celery_worker_process):
    lists = [mailing_list_bulk(name=f"L{i}", count=15, prefix=f"l{i}-") for i in range(3)]
    campaigns = [campaign_make(subject=f"C{i + 1}", lists=[lists[i]]) for i in range(3)]
    worker = celery_worker_process(**WORKER_ENV)
    # Send clicked on the newest first: creation order still decides.
    for campaign in reversed(campaigns):
        services.campaign_send(campaign=campaign)

    wait_for(
        lambda: len(relay.handler.received) >= 45,
        timeout=90,
        message=f"not every mail arrived:\n{worker.output()[-3000:]}",
    )
    wait_for(
        lambda: set(Campaign.objects.values_list("state", flat=True)) == {"sent"},
        timeout=30,
        message="the campaigns did not all reach Sent",
    )
    arrived = subjects_at(relay)
    # One at a time: every mail of C1 before any of C2, and C2 before C3.
    assert arrived == ["C1"] * 15 + ["C2"] * 15 + ["C3"] * 15
    started = list(Campaign.objects.order_by("started_at").values_list("subject", flat=True))
    assert started == ["C1", "C2", "C3"]
    for previous, following in zip(campaigns, campaigns[1:], strict=False):
        previous.refresh_from_db()
        following.refresh_from_db()
        assert following.started_at >= previous.finished_at
    message = relay.handler.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Precedence"] == "list"
    assert message.get_body(("plain",)).get_content().startswith("Hello from us.")


def test_cancelling_a_stuck_head_lets_the_next_campaign_go(relay, celery_worker_process):
    stuck_list = mailing_list_bulk(name="Stuck", count=3, prefix="s", domain="defer.test")
    ok_list = mailing_list_bulk(name="Fine", count=3, prefix="f")
    stuck = campaign_make(subject="Stuck", lists=[stuck_list])
    behind = campaign_make(subject="Behind", lists=[ok_list])
    celery_worker_process(MAILHUB_RETRY_DELAYS="3600", **WORKER_ENV)
    services.campaign_send(campaign=stuck)
    services.campaign_send(campaign=behind)
    # The relay defers @defer.test (451): the head keeps waiting to be delivered.
    wait_for(
        lambda: CampaignRecipient.objects.filter(campaign=stuck, status="deferred").count() == 3,
        timeout=60,
        message="the head's mail was never tried",
    )
    time.sleep(1)
    assert Campaign.objects.get(pk=behind.pk).state == "in_queue"
    assert relay.handler.received == []

    services.campaign_cancel(campaign=stuck)
    wait_for(
        lambda: len(relay.handler.received) == 3,
        timeout=60,
        message="the campaign behind the cancelled head was not sent",
    )
    assert subjects_at(relay) == ["Behind"] * 3
    assert CampaignRecipient.objects.filter(campaign=stuck, status="canceled").count() == 3
    wait_for(lambda: Campaign.objects.get(pk=behind.pk).state == "sent", timeout=30)


def test_a_scheduled_campaign_is_sent_at_its_time(relay, celery_worker_process):
    lst = mailing_list_bulk(name="Later", count=2)
    campaign = campaign_make(subject="At three", lists=[lst])
    celery_worker_process(**WORKER_ENV)
    at = timezone.now() + dt.timedelta(seconds=4)
    services.campaign_schedule(campaign=campaign, at=at)
    time.sleep(2)
    assert Campaign.objects.get().state == "in_queue" and relay.handler.received == []
    wait_for(
        lambda: len(relay.handler.received) == 2, timeout=60, message="the early run never came"
    )
    assert min(m.received_at for m in relay.handler.received) >= at.timestamp() - 0.5
    wait_for(lambda: Campaign.objects.get().state == "sent", timeout=30)


def test_a_worker_killed_mid_campaign_resumes_without_duplicates(relay, celery_worker_process):
    total = 1200
    lst = mailing_list_bulk(name="Big", count=total, prefix="big")
    campaign = campaign_make(subject="Big", lists=[lst])
    env = {"MAILHUB_CAMPAIGN_BATCH_SIZE": "10", "MAILHUB_CLAIM_LEASE_SECONDS": "5", **WORKER_ENV}
    first = celery_worker_process(name="first", **env)
    services.campaign_send(campaign=campaign)

    def queued() -> int:
        return CampaignRecipient.objects.filter(campaign=campaign).count()

    wait_for(
        lambda: queued() >= 100,
        timeout=60,
        interval=0.01,
        message=f"the campaign never started:\n{first.output()[-3000:]}",
    )
    first.kill()
    first.proc.wait(timeout=10)
    at_kill = queued()
    assert 0 < at_kill < total, "killed too late to prove anything: use a bigger list"

    second = celery_worker_process(name="second", **env)
    # What beat does after a restart: "Process queue" daily, the queue manager every interval.
    campaigns_process_queue.delay()

    def all_arrived() -> bool:
        if len(relay.handler.received) >= total:
            return True
        queue_run.delay()
        return False

    wait_for(
        all_arrived,
        timeout=180,
        interval=2,
        message=f"the campaign did not resume:\n{second.output()[-3000:]}",
    )
    wait_for(lambda: Campaign.objects.get().state == "sent", timeout=60)
    time.sleep(1)  # a duplicate would arrive by now
    counts = Counter(rcpt for m in relay.handler.received for rcpt in m.rcpt_tos)
    assert len(counts) == total
    assert [a for a, n in counts.items() if n > 1] == []
    assert CampaignRecipient.objects.filter(campaign=campaign, status="sent").count() == total


def test_one_click_unsubscribe_from_the_received_header_stops_further_mail(
    relay, celery_worker_process, live_server
):
    lst = mailing_list_bulk(name="News", count=2, prefix="reader")
    celery_worker_process(MAILHUB_BASE_URL=live_server.url, **WORKER_ENV)
    services.campaign_send(campaign=campaign_make(subject="First", lists=[lst]))
    wait_for(lambda: len(relay.handler.received) == 2, timeout=60, message="first not sent")

    mail = next(m for m in relay.handler.received if m.rcpt_tos == ["reader0@list.test"])
    header = str(mail.message["List-Unsubscribe"])
    url = header.split(",")[0].strip().strip("<>")
    assert url.startswith(live_server.url) and "mailto:" in header
    # What an RFC 8058 mail client does: a bare POST, no cookie, no CSRF token, no login.
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert "reader0@list.test is unsubscribed" in response.read().decode()

    wait_for(lambda: Campaign.objects.get().state == "sent", timeout=30)
    relay.handler.received.clear()
    services.campaign_send(campaign=campaign_make(subject="Second", lists=[lst]))
    wait_for(lambda: len(relay.handler.received) >= 1, timeout=60, message="second not sent")
    wait_for(lambda: Campaign.objects.get(subject="Second").state == "sent", timeout=30)
    assert [m.rcpt_tos for m in relay.handler.received] == [["reader1@list.test"]]


def test_campaign_mail_counts_toward_the_daily_quota(relay, celery_worker_process):
    lst = mailing_list_bulk(name="News", count=8)
    celery_worker_process(MAILHUB_DAILY_QUOTA="5", MAILHUB_QUOTA_POLICY="fail")
    campaign = campaign_make(subject="Over quota", lists=[lst])
    services.campaign_send(campaign=campaign)
    wait_for(lambda: Campaign.objects.get().state == "sent", timeout=60, message="not finished")
    time.sleep(1)
    assert len(relay.handler.received) == 5
    stats = selectors.campaign_stats(campaign=Campaign.objects.get())
    assert (stats.sent, stats.failed, stats.percent) == (5, 3, 100)
    failed = OutgoingMail.objects.filter(state="exception")
    assert failed.count() == 3
    assert all("Daily limit reached" in m.failure_reason for m in failed)
