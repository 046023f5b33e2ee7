"""The operations dashboard (plots, tasks) and the per-domain health page."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from chatter.models import BounceEvent, BounceEventKind, Contact
from diagnostics import selectors
from inbound.models import AliasDomain
from outbox.models import DailyQuota, MailState, OutgoingMail

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def activity(settings):
    """Mail of the last days: quota counters, failures, bounces, a queue, a beat schedule."""
    settings.MAILHUB_DAILY_QUOTA = 200
    today = timezone.now().date()
    for offset, used in ((0, 37), (1, 120), (2, 80), (45, 999)):
        DailyQuota.objects.create(day=today - dt.timedelta(days=offset), used=used)
    for index, state in enumerate(
        [MailState.EXCEPTION] * 3 + [MailState.OUTGOING] * 5 + [MailState.SENT] * 2
    ):
        OutgoingMail.objects.create(
            message_id=f"<m{index}@mailhub.test>", from_addr="n@mailhub.test", state=state
        )
    # Two hard bounces today count; a soft one (mailbox full) and an old one do not.
    gone = Contact.objects.create(name="Gone", email="gone@x.test")
    now = timezone.now()
    for kind, when in (
        (BounceEventKind.HARD, now),
        (BounceEventKind.HARD, now),
        (BounceEventKind.SOFT, now),
        (BounceEventKind.HARD, now - dt.timedelta(days=45)),
    ):
        BounceEvent.objects.create(contact=gone, kind=kind, at=when, status="5.1.1")
    # The schedules the migrations create (re-created here: a transactional test may have
    # flushed them), as an admin left them: one edited, the other disabled.
    every15 = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.update_or_create(
        name="Mail: Email Queue Manager",
        defaults={
            "task": "outbox.queue_run",
            "interval": every15,
            "last_run_at": timezone.now() - dt.timedelta(minutes=5),
        },
    )
    PeriodicTask.objects.update_or_create(
        name="Mail: Auto-vacuum of sent and cancelled mail",
        defaults={"task": "outbox.mails_vacuum", "interval": every15, "enabled": False},
    )
    AliasDomain.objects.create(domain="mailhub.test")
    return today


def test_dashboard_plots_and_tasks(staff_client, activity, django_assert_max_num_queries):
    # Session + user, the top bar's counters (base.html) and 6 of the dashboard's own (pinned
    # exactly below), whatever the amount of mail.
    with django_assert_max_num_queries(14):
        response = staff_client.get("/ops/")
    page = response.content.decode()
    assert response.status_code == 200

    # Mail per day: 30 day groups; today shows its quota counter, bounces and failures.
    assert page.count('class="day"') == 30
    today = activity.isoformat()
    assert f"{today}: 37 sent, 3 failed, 2 bounced" in page
    assert "sent (237)" in page  # the 45-days-old counter is outside the plot
    # Quota used vs limit, bounce rate (2 bounced / 237 sent), queue depth per state.
    assert "37 of 200 mails today (18%)" in page
    assert "Bounce rate 0.8% (2 of 237 sent, 30 days)" in page
    assert "<title>Delivery Failed: 3</title>" in page
    assert "<title>Outgoing: 5</title>" in page
    assert "Queue depth by state (10 mails)" in page

    # Scheduled tasks with their interval, next run and an edit link.
    task = PeriodicTask.objects.get(name="Mail: Email Queue Manager")
    assert "every 15 minutes" in page
    assert f"/admin/django_celery_beat/periodictask/{task.pk}/change/" in page
    next_run = (task.last_run_at + dt.timedelta(minutes=15)).strftime("%Y-%m-%d %H:%M")
    assert next_run in page
    assert re.search(r"Mail: Auto-vacuum.*?disabled", page, re.S)
    assert "/ops/domains/" in page


def test_dashboard_query_count_does_not_grow_with_data(
    staff_client, activity, django_assert_num_queries
):
    with CaptureQueriesContext(connection) as before:
        staff_client.get("/ops/")
    contact = Contact.objects.create(name="More", email="more@x.test")
    for index in range(20):
        OutgoingMail.objects.create(
            message_id=f"<more{index}@mailhub.test>", from_addr="n@x", state=MailState.EXCEPTION
        )
        BounceEvent.objects.create(contact=contact, kind=BounceEventKind.HARD, at=timezone.now())
    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    for index in range(5):
        PeriodicTask.objects.create(name=f"extra {index}", task="x", interval=interval)
    with django_assert_num_queries(len(before)):
        staff_client.get("/ops/")


def test_dashboard_reads_cost_six_queries(activity, django_assert_num_queries):
    with django_assert_num_queries(6):
        per_day = selectors.mail_per_day(days=30)  # 3
        selectors.queue_depth()  # 1
        selectors.scheduled_tasks()  # 1
        selectors.alias_domains()  # 1
    assert len(per_day) == 30


def test_empty_dashboard_says_what_to_do(staff_client):
    PeriodicTask.objects.all().delete()
    page = staff_client.get("/ops/").content.decode()
    assert "0 of 200 mails today (0%)" in page
    assert "run <code>manage.py migrate</code>" in page
    assert "No alias domain yet" in page


def test_domain_page_shows_each_check(staff_client, dns_server, settings):
    settings.MAILHUB_DNS_NAMESERVERS = [dns_server.nameserver]
    settings.MAILHUB_INBOUND_HOSTNAME = "mx.shop.test"
    dns_server.add("shop.test", "TXT", "v=spf1 include:relay.test ~all")
    dns_server.add("_dmarc.shop.test", "TXT", "v=DMARC1; p=none")
    dns_server.add("shop.test", "MX", "10 mx.shop.test.")
    domain = AliasDomain.objects.create(domain="shop.test")
    page = staff_client.get(
        f"/ops/domains/{domain.pk}/", {"relay": "smtp.relay.test", "selector": "s1"}
    ).content.decode()
    found = re.findall(r'class="verdict-(\w+)" data-check="(\w+)"', page)
    assert {name: verdict for verdict, name in found} == {
        "SPF": "ok",
        "DKIM": "fail",
        "DMARC": "warning",
        "MX": "ok",
    }
    assert "No DKIM record at s1._domainkey.shop.test" in page
    assert "v=spf1 include:relay.test ~all" in page


def test_domain_page_timeout_is_a_verdict(staff_client, silent_dns, settings):
    settings.MAILHUB_DNS_NAMESERVERS = [silent_dns]
    settings.MAILHUB_DNS_TIMEOUT = 0.3
    domain = AliasDomain.objects.create(domain="shop.test")
    response = staff_client.get(f"/ops/domains/{domain.pk}/")
    assert response.status_code == 200
    assert response.content.decode().count("timed out after 0.3s") == 4
