"""Rough edges of the first walk, in a real Chromium: a 5 MB text is refused with the limit and
kept; the composer's "or by address" and a note's mention say what will happen."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from chatter.models import Message
from records.models import Ticket
from records.services import record_create
from tests.support.campaigns import mailing_list_bulk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIVE_MB = 5 * 1024 * 1024


def _paste(field, size: int) -> None:
    """Paste ``size`` bytes of text (typing 5 MB through fill() takes most of a minute)."""
    field.evaluate(
        "(el, n) => { el.focus(); el.value = 'Lorem ipsum dolor sit amet. '.repeat(n / 28);"
        " el.dispatchEvent(new Event('input', {bubbles: true})); }",
        size,
    )


def _origin(page) -> str:
    return "/".join(page.url.split("/")[:3])


def test_a_5_mb_post_is_refused_with_the_limit_and_kept(login_page, staff_user):
    ticket = record_create(model=Ticket, title="Long story", created_by=staff_user)
    page = login_page(staff_user, "staff-password")
    page.goto(_origin(page) + ticket.get_absolute_url())
    body = page.get_by_role("textbox", name="Message")
    _paste(body, FIVE_MB)
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert").filter(has_text="the limit is 2 MB of text")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("This text is 5 MB")
    assert page.url.endswith(ticket.get_absolute_url())
    assert body.evaluate("el => el.value.length") >= FIVE_MB - 28
    assert not Message.objects.exists()

    # Shortened, it posts.
    body.fill("The short version.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("article").filter(has_text="The short version.")).to_be_visible()


def test_a_5_mb_campaign_body_is_refused_with_the_limit_and_kept(login_page, staff_user):
    mailing_list_bulk(name="News", count=1)
    page = login_page(staff_user, "staff-password")
    page.goto(_origin(page) + "/campaigns/new/")
    page.get_by_label("Subject").fill("Big one")
    page.get_by_label("News").check()
    body = page.get_by_label("Body (HTML)")
    _paste(body, FIVE_MB)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("alert").filter(has_text="the limit is 2 MB")).to_be_visible()
    assert body.evaluate("el => el.value.length") >= FIVE_MB - 28
    assert not Campaign.objects.exists()


def test_delivery_popover_follows_its_envelope_inside_the_window(login_page, staff_user):
    from chatter.models import NotificationStatus
    from chatter.services import contact_for_user
    from tests.support.chatter import ContactFactory
    from tests.support.envelope import message_with_statuses

    ticket = record_create(model=Ticket, title="Many messages", created_by=staff_user)
    people = [ContactFactory(name=f"Person {i}", email=f"p{i}@customer.test") for i in range(6)]
    author = contact_for_user(user=staff_user)
    for index in range(6):
        message_with_statuses(
            record=ticket,
            author=author,
            statuses={p: NotificationStatus.SENT for p in people},
            body=f"<p>Update number {index}</p>",
        )
    page = login_page(staff_user, "staff-password", viewport=(1280, 700))
    page.goto(_origin(page) + ticket.get_absolute_url())
    message = page.get_by_role("article").filter(has_text="Update number 1")
    envelope = message.get_by_role("button", name="Delivery status")
    # Bring the envelope near the bottom of the window, where a popover below would be cut.
    envelope.evaluate("b => window.scrollBy(0, b.getBoundingClientRect().top - 600)")
    assert 560 < envelope.bounding_box()["y"] < 640
    envelope.focus()
    page.keyboard.press("Enter")
    popover = page.get_by_role("dialog", name="Delivery status").filter(has_text="Person 5")
    expect(popover).to_be_visible()

    def check() -> None:
        pop, env = popover.bounding_box(), envelope.bounding_box()
        assert pop["y"] >= 0 and pop["y"] + pop["height"] <= 700 + 0.5, pop
        assert pop["x"] >= 0 and pop["x"] + pop["width"] <= 1280 + 0.5, pop
        touching = (
            abs(pop["y"] - (env["y"] + env["height"])) < 12
            or abs(pop["y"] + pop["height"] - env["y"]) < 12
        )
        assert touching, f"popover {pop} is not at its envelope {env}"

    def settled() -> None:
        # The popover moves on the next animation frame after a scroll; a loaded machine may
        # take a few frames, so the check is retried for up to 3 s before it counts.
        for _ in range(30):
            try:
                check()
                return
            except AssertionError:
                page.wait_for_timeout(100)
        check()

    settled()
    page.evaluate("window.scrollBy(0, -60)")
    settled()


def test_composer_offers_to_create_a_contact_and_warns_about_note_mentions(login_page, staff_user):
    from chatter.models import Contact
    from tests.support.chatter import ContactFactory

    ticket = record_create(model=Ticket, title="Who to tell", created_by=staff_user)
    ContactFactory(name="Carla Customer", email="carla@customer.test")
    page = login_page(staff_user, "staff-password")
    page.goto(_origin(page) + ticket.get_absolute_url())

    page.get_by_role("textbox", name="Message").fill("Please have a look.")
    page.get_by_label("or by address").fill("nora@partner.test")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("No contact has the address nora@partner.test")).to_be_visible()
    page.get_by_label("Create a contact for each new address and notify them").check()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("article").filter(has_text="Please have a look.")).to_be_visible()
    assert Contact.objects.filter(email="nora@partner.test").exists()

    page.get_by_label("Log note").check()
    expect(page.get_by_text("A log note reaches internal users only")).to_be_visible()
    page.get_by_role("textbox", name="Message").fill("Carla called again.")
    page.get_by_label("or by address").fill("carla@customer.test")
    page.get_by_role("button", name="Log", exact=True).click()
    expect(page.get_by_text("Carla Customer would not be notified")).to_be_visible()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("Carla called again.")


def test_contact_pickers_are_aria_comboboxes(login_page, staff_user):
    from chatter.models import Follower
    from tests.support.chatter import ContactFactory

    ticket = record_create(model=Ticket, title="Pickers", created_by=staff_user)
    ContactFactory(name="Carla Customer", email="carla@customer.test")
    ContactFactory(name="Carlos Client", email="carlos@customer.test")
    page = login_page(staff_user, "staff-password")
    page.goto(_origin(page) + ticket.get_absolute_url())

    # Mention: type, arrow to the second suggestion, Enter picks it (no post).
    mention = page.get_by_role("combobox", name="Mention")
    mention.fill("carl")
    expect(mention).to_have_attribute("aria-expanded", "true")
    listbox = page.get_by_role("listbox", name="Mention suggestions")
    expect(listbox.get_by_role("option")).to_have_count(2)
    mention.press("ArrowDown")
    mention.press("ArrowDown")
    second = listbox.get_by_role("option", name="Carlos Client")
    expect(second).to_have_attribute("aria-selected", "true")
    assert mention.get_attribute("aria-activedescendant") == second.get_attribute("id")
    mention.press("Enter")
    expect(mention).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("button", name="Remove Carlos Client")).to_be_visible()
    expect(
        page.get_by_role("status").filter(has_text="Carlos Client will be notified.")
    ).to_have_count(1)

    # Find a contact: the same pattern; Escape closes the list.
    page.get_by_text("1 follower").click()
    find = page.get_by_role("combobox", name="Find a contact")
    find.fill("carla")
    option = page.get_by_role("listbox", name="Find a contact suggestions").get_by_role("option")
    expect(option).to_have_count(1)
    find.press("Escape")
    expect(find).to_have_attribute("aria-expanded", "false")
    find.press("ArrowDown")
    find.press("Enter")
    expect(find).to_have_value("Carla Customer <carla@customer.test>")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Carla Customer now follows this record.")).to_be_visible()
    assert Follower.objects.filter(contact__email="carla@customer.test").exists()


def test_campaign_cancel_asks_first_and_the_queue_note_follows_the_state(login_page, staff_user):
    from campaigns import services
    from tests.support.campaigns import campaign_make, outbox_report

    lst = mailing_list_bulk(name="News", count=2)
    keep = campaign_make(subject="Keep me", lists=[lst])
    page = login_page(staff_user, "staff-password")
    page.goto(_origin(page) + keep.get_absolute_url())

    # Cancel asks; saying no changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(300)
    keep.refresh_from_db()
    assert keep.state == "draft"

    # Send: "In the queue…", then the campaign is sent while the page is open.
    page.get_by_role("button", name="Send").click()
    note = page.get_by_text("In the queue: it goes out once the campaigns before it are sent.")
    expect(note).to_be_visible()
    services.campaign_queue_process()
    outbox_report(campaign=keep)
    services.campaign_queue_process()
    expect(page.get_by_text("Sent.", exact=True)).to_be_visible(timeout=5_000)
    expect(note).to_have_count(0)

    other = campaign_make(subject="Drop me", lists=[lst])
    page.goto(_origin(page) + other.get_absolute_url())
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Cancelled", exact=True).first).to_be_visible()
    other.refresh_from_db()
    assert other.state == "cancelled"
