"""Admin → Emails in a real Chromium, as staff use it after the seed's troubleshooting page:
the list fits 1280 px, Send Now says what happened to each mail, the detail has human labels
and its own Retry / Cancel Email buttons."""

import re

import pytest
from playwright.sync_api import expect

from outbox.services import MailDraft, mails_enqueue, mails_send
from tests.support.outbox import post_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_emails_list_send_now_and_detail(relay, outbox_settings, login_page, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@mailhub.test", "root-pw")
    post_to("nobody@reject.test", subject="Your invoice")
    mails_send()
    mails_enqueue(
        drafts=[MailDraft(to="dana@defer.test", subject="Dana's quote", body_html="<p>Hi</p>")]
    )
    page = login_page(admin, "root-pw", viewport=(1280, 900))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Emails").click()
    expect(page.get_by_role("heading", name=re.compile("email to change"))).to_be_visible()
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 1280, f"the Emails page is {wide} px wide at 1280 px"
    # The admin scrolls a wide table inside its box: the table itself must fit there.
    emails = page.get_by_role("table").filter(
        has=page.get_by_role("columnheader", name="Last error")
    )
    table, box = emails.evaluate(
        "t => [t.getBoundingClientRect().right, t.parentElement.getBoundingClientRect().right]"
    )
    assert table <= box + 1 and table <= 1280, f"the Emails table ends at {table} px ({box})"

    # The failure-type filter speaks words.
    expect(page.get_by_role("link", name="Refused by the mail server")).to_be_visible()

    # Send Now on the deferred mail: the server's 451, not "1 mail(s) sent now".
    page.get_by_role("row").filter(has_text="Dana's quote").get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Send Now")
    page.get_by_role("button", name="Run").click()
    expect(
        page.get_by_text(re.compile(r"“Dana's quote”: deferred again by the server: 451"))
    ).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Dana's quote")).to_contain_text("451")

    # The failed mail's detail: labels in words, action buttons.
    page.get_by_role("row").filter(has_text="nobody@reject.test").get_by_role("link").first.click()
    expect(page.get_by_text("nobody@reject.test: Failed (550", exact=False).first).to_be_visible()
    assert " object (" not in page.content()
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel Email").click()
    expect(page.get_by_text("1 mail(s) cancelled.")).to_be_visible()
