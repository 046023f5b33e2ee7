"""The operations dashboard in a real Chromium: the SVG plots render; saves the screenshot."""

import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from chatter.models import BounceEvent, BounceEventKind, Contact
from inbound.models import AliasDomain
from outbox.models import DailyQuota, MailState, OutgoingMail
from tests.support.chatter import screenshot_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = screenshot_dir() / "dashboard.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def ops_browser(monkeypatch):
    """A real Chromium (the system one). Playwright's sync API runs an event loop in this
    thread, so Django's ORM calls made by the test itself must be allowed next to it."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def ops_page(ops_browser, live_server, staff_user):
    """A page logged in as the staff user through the login form."""
    context = ops_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "staff-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    try:
        yield page
    finally:
        context.close()


def _month_of_mail() -> None:
    today = timezone.now().date()
    now = timezone.now()
    for offset in range(30):
        day = today - dt.timedelta(days=offset)
        DailyQuota.objects.create(day=day, used=60 + (offset * 37) % 110)
    gone = Contact.objects.create(name="Gone", email="gone@x.test")
    for index in range(24):
        state = [MailState.EXCEPTION, MailState.OUTGOING, MailState.SENT][index % 3]
        mail = OutgoingMail.objects.create(
            message_id=f"<demo{index}@mailhub.test>", from_addr="n@mailhub.test", state=state
        )
        OutgoingMail.objects.filter(pk=mail.pk).update(
            created_at=now - dt.timedelta(days=(index * 5) % 29)
        )
        if state == MailState.SENT:
            BounceEvent.objects.create(
                contact=gone, kind=BounceEventKind.HARD, at=now - dt.timedelta(days=index % 29)
            )
    AliasDomain.objects.create(domain="mailhub.test")
    every15 = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    daily = CrontabSchedule.objects.create(minute="30", hour="3")
    PeriodicTask.objects.update_or_create(
        name="Mail: Email Queue Manager",
        defaults={
            "task": "outbox.queue_run",
            "interval": every15,
            "last_run_at": now - dt.timedelta(minutes=4),
        },
    )
    PeriodicTask.objects.update_or_create(
        name="Mail: Auto-vacuum of sent and cancelled mail",
        defaults={"task": "outbox.mails_vacuum", "interval": None, "crontab": daily},
    )


def test_dashboard_plots_render_in_chromium(ops_page, live_server):
    _month_of_mail()
    ops_page.goto(f"{live_server.url}/ops/")
    ops_page.wait_for_selector("svg.chart-mail-per-day")

    for selector in (
        "svg.chart-mail-per-day",
        "svg.chart-quota",
        "svg.chart-queue",
        "svg.chart-bounce-rate",
    ):
        chart = ops_page.locator(selector)
        assert chart.is_visible(), selector
        # Parsed as SVG (not text), and laid out at a readable size.
        assert chart.evaluate("e => e.namespaceURI") == "http://www.w3.org/2000/svg"
        box = chart.bounding_box()
        assert box["width"] > 250 and box["height"] > 40, (selector, box)

    # 30 days of stacked bars, drawn with a real height.
    assert ops_page.locator("svg.chart-mail-per-day g.day").count() == 30
    heights = ops_page.locator("svg.chart-mail-per-day rect.bar-sent").evaluate_all(
        "rects => rects.map(r => r.getBBox().height)"
    )
    assert len(heights) == 30 and min(heights) > 0
    assert ops_page.locator("svg.chart-mail-per-day rect.bar-failed").count() > 0
    assert ops_page.locator("svg.chart-mail-per-day rect.bar-bounced").count() > 0
    fill = ops_page.locator("svg.chart-quota rect.meter-fill").evaluate("r => r.getBBox().width")
    assert fill > 0
    # The tasks table links each task to its admin edit page.
    edit = ops_page.locator("#scheduled-tasks a", has_text="Edit").first
    assert "/admin/django_celery_beat/periodictask/" in edit.get_attribute("href")
    assert ops_page.locator("#domains a", has_text="mailhub.test").is_visible()

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    ops_page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
