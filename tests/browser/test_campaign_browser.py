"""A campaign sent from the browser: real Chromium, the live app, a real worker and relay.

The user creates a campaign for a list, clicks Send, and watches the progress bar fill up by
itself (the page polls) until 100% and the campaign reads Sent.
"""

import pytest

from campaigns.models import Campaign
from tests.support.campaigns import mailing_list_bulk

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTACTS = 300
# The worker has to start (a few seconds on a busy machine) before the first mail leaves.
DELIVERY_TIMEOUT_MS = 120_000


def test_send_a_campaign_and_watch_the_progress_bar_reach_100(
    relay, celery_worker_process, login_page, live_server, staff_user, test_results_dir
):
    mailing_list_bulk(name="Customers", count=CONTACTS, prefix="buyer")
    celery_worker_process(MAILHUB_DAILY_QUOTA="0", MAILHUB_CAMPAIGN_BATCH_SIZE="50")
    page = login_page(staff_user, "staff-password")

    page.click("nav >> text=Campaigns")
    page.click("text=New campaign")
    page.fill("#id_subject", "Autumn news")
    page.check("label:has-text('Customers') >> input")
    page.fill("#id_body_html", "<p>Hello, our autumn range is in.</p>")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("#campaign-state:has-text('Draft')")
    assert page.get_attribute(".progress", "aria-valuenow") == "0"

    page.click("#send-button")
    page.wait_for_selector(
        "#campaign-state:has-text('In Queue'), #campaign-state:has-text('Sending')"
    )
    # Every value the bar shows from now on is recorded: it must only ever move forward.
    page.evaluate(
        """() => {
        window.seen = [];
        const bar = document.querySelector('.progress');
        new MutationObserver(() => window.seen.push(Number(bar.getAttribute('aria-valuenow'))))
            .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
    }"""
    )
    # It fills up by itself (no reload) and ends at 100% and Sent.
    page.wait_for_function(
        # A function, not an expression: Playwright evals expressions, which the CSP forbids.
        "() => document.querySelector('.progress').getAttribute('aria-valuenow') === '100'",
        timeout=DELIVERY_TIMEOUT_MS,
    )
    page.wait_for_selector("#campaign-state:has-text('Sent')", timeout=30_000)
    assert page.inner_text("#progress-percent") == "100%"
    assert page.inner_text("#stat-sent") == str(CONTACTS)
    assert page.inner_text("#progress-processed") == str(CONTACTS)
    seen = page.evaluate("window.seen")
    assert seen == sorted(seen), seen
    # Drawn full width once its animation ends, and Cancel is gone from a sent campaign.
    page.wait_for_function(
        """() => {
        const bar = document.querySelector('.progress-bar').getBoundingClientRect();
        const box = document.querySelector('.progress').getBoundingClientRect();
        return Math.abs(bar.width - box.width) < 1;
    }"""
    )
    assert page.locator("#cancel-button").count() == 0
    page.screenshot(path=str(test_results_dir / "campaign-progress-100.png"), full_page=True)

    assert len(relay.handler.received) == CONTACTS
    assert Campaign.objects.get().state == "sent"
    # The list page shows it out of the queue.
    page.click("nav >> text=Campaigns")
    assert "The queue is empty." in page.inner_text("#queue")


def test_import_a_csv_and_read_the_queue_page(
    login_page, live_server, staff_user, test_results_dir, tmp_path
):
    from campaigns import services
    from tests.support.campaigns import campaign_make

    page = login_page(staff_user, "staff-password")
    page.goto(f"{live_server.url}/campaigns/lists/")
    page.fill("#id_name", "Trade fair leads")
    page.click("button:has-text('Create list')")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("email,name\nada@leads.test,Ada\nnot an address,Bad\nbo@leads.test,Bo\n")
    page.set_input_files("#member-import input[type=file]", str(csv_file))
    page.click("#member-import button")
    report = page.locator("#import-report")
    assert "2 added" in report.inner_text()
    assert "3" in report.locator("td").first.inner_text()  # the line of the bad row
    assert "Not a valid email address." in report.inner_text()
    assert page.locator("table.members tbody tr").count() == 2
    page.screenshot(path=str(test_results_dir / "campaign-list-import.png"), full_page=True)

    from campaigns.models import MailingList

    leads = MailingList.objects.get(name="Trade fair leads")
    head = campaign_make(subject="Invitation", lists=[leads])
    behind = campaign_make(subject="Reminder", lists=[leads])
    services.campaign_send(campaign=head)
    services.campaign_send(campaign=behind)
    services.campaign_queue_process()  # the head starts; its mail waits in the outbox
    page.goto(f"{live_server.url}/campaigns/")
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 2
    assert "Invitation" in rows.nth(0).inner_text() and "Sending" in rows.nth(0).inner_text()
    assert "Waiting for “Invitation” to finish" in rows.nth(1).inner_text()
    page.screenshot(path=str(test_results_dir / "campaign-queue.png"), full_page=True)
