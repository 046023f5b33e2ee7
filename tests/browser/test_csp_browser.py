"""The Content-Security-Policy in a real Chromium: the pages work under it and break no rule.

Every script and style is a static file, so the policy (``script-src 'self'``, ``style-src
'self'``, nothing inline) holds: Chromium reports any violation as a
``securitypolicyviolation`` event and a console error, and both are collected here.
"""

import pytest
from django.contrib.auth import get_user_model

from campaigns.models import Campaign, MailingList
from chatter.models import NotificationStatus
from chatter.services import contact_for_user, follower_add
from tests.support.chatter import ContactFactory, TicketFactory
from tests.support.envelope import message_with_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def _watch(page) -> list[str]:
    console: list[str] = []
    page.on(
        "console",
        lambda msg: console.append(msg.text) if msg.type in ("error", "warning") else None,
    )
    page.add_init_script(WATCH)
    return console


def _violations(page, console: list[str]) -> list[str]:
    found = page.evaluate("window.__cspViolations || []")
    words = ("Content Security Policy", "Content-Security-Policy", "Refused to")
    return found + [line for line in console if any(w in line for w in words)]


def test_pages_work_under_the_policy_with_no_violation(login_page, live_server):
    get_user_model().objects.create_superuser("root", "root@mailhub.test", "root-password")
    root = get_user_model().objects.get(username="root")
    ticket = TicketFactory(title="Printer jams")
    nobody = ContactFactory(name="Nobody Home", email="nobody@reject.test")
    follower_add(record=ticket, contact=nobody)
    message_with_statuses(
        record=ticket,
        author=contact_for_user(user=root),
        statuses={nobody: NotificationStatus.EXCEPTION},
    )
    campaign = Campaign.objects.create(subject="Spring", body_html="<p>hi</p>")
    campaign.mailing_lists.add(MailingList.objects.create(name="Newsletter"))

    page = login_page("root", "root-password")
    console = _watch(page)
    base = live_server.url

    # The chatter (chatter.js): the red envelope opens the Sending Failures modal.
    page.goto(f"{base}{ticket.get_absolute_url()}")
    page.get_by_role("button", name="Delivery failure").click()
    page.locator("dialog#failures-dialog").wait_for(state="visible")
    assert page.locator("dialog#failures-dialog .failure-name").inner_text() == "Nobody Home"
    # Styles from static files apply (the envelope is red from mailhub.css / chatter.css).
    page.keyboard.press("Escape")

    # The campaign page: the progress bar's width comes from progress_bar.js, not a style="".
    page.goto(f"{base}{campaign.get_absolute_url()}")
    bar = page.locator(".progress-bar")
    assert bar.evaluate("b => b.style.width") == bar.get_attribute("data-percent") + "%"

    # The contacts pages' stylesheet is a file now (it was an inline <style>).
    page.goto(f"{base}/contacts/")
    sheets = page.evaluate("[...document.styleSheets].map(s => s.href || 'inline')")
    assert any(s.endswith("chatter/contacts.css") for s in sheets) and "inline" not in sheets

    for path in ("/failures/", "/ops/", "/campaigns/", "/admin/", "/admin/chatter/contact/add/"):
        response = page.goto(f"{base}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
    # The admin's own scripts run (its change form's JavaScript sets up the form).
    assert page.evaluate("typeof window.django") == "object"

    assert _violations(page, console) == []


def test_an_inline_script_is_blocked_and_reported(login_page, live_server, staff_user):
    """The watch above sees violations: an injected inline script is refused and counted."""
    page = login_page(staff_user, "staff-password")
    console = _watch(page)
    page.goto(f"{live_server.url}/")
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = 1"; document.body.append(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in _violations(page, console))
