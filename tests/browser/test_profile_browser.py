"""The seed's first advice in a real Chromium: the placeholder banner leads to My Profile.

Walked as a new administrator would: every staff page warns while the admin's address is a
placeholder, the user name in the top bar opens My Profile, a bad address is refused with the
typing kept, a real one clears the banner, and the contact (Preferences' "Messages go to …")
follows. Saves docs/screenshots/placeholder-banner.png and my-profile.png.
"""

import pytest
from playwright.sync_api import expect

from chatter.models import Contact
from chatter.services import contact_for_user
from tests.support.chatter import screenshot_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = screenshot_dir()


def test_placeholder_banner_to_my_profile_and_gone(login_page, django_user_model, settings):
    settings.MAILHUB_MAIL_DOMAIN = "shop.com"  # a real install: the demo's .test is a placeholder
    settings.MAILHUB_DEFAULT_FROM = "notifications@shop.com"
    admin = django_user_model.objects.create_superuser(
        "admin", "admin@mailhub.test", "admin-password", first_name="Ada", last_name="Admin"
    )
    contact_for_user(user=admin)
    page = login_page(admin, "admin-password")

    banner = page.get_by_role("alert").filter(has_text="placeholder addresses")
    for name in ("Tickets", "Contacts", "Campaigns"):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("admin@mailhub.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Emails").click()
    expect(banner).to_be_visible()  # the admin too
    page.go_back()
    page.screenshot(path=str(SCREENSHOTS / "placeholder-banner.png"))

    # The banner's link and the user name in the top bar both open My Profile.
    banner.get_by_role("link", name="Set your real address in My Profile").click()
    expect(page.get_by_role("heading", name="My Profile")).to_be_visible()
    page.get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="admin", exact=True).click()
    expect(page.get_by_role("heading", name="My Profile")).to_be_visible()

    email = page.get_by_role("textbox", name="Email")
    expect(email).to_have_value("admin@mailhub.test")
    page.get_by_label("Last name").fill("Lovelace")
    email.fill("ada@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("ada@example.com is a placeholder address")).to_be_visible()
    expect(page.get_by_label("Last name")).to_have_value("Lovelace")  # nothing lost
    expect(banner).to_be_visible()

    page.get_by_role("textbox", name="Email").fill("ada@shop.com")
    page.get_by_label("Handle in MailHub").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your profile is saved.")).to_be_visible()
    expect(banner).to_have_count(0)
    expect(page.get_by_text("Messages go to ada@shop.com.")).to_be_visible()
    expect(page.get_by_label("Handle in MailHub")).to_be_checked()
    page.screenshot(path=str(SCREENSHOTS / "my-profile.png"))

    contact = Contact.objects.get(user=admin)
    assert (contact.email, contact.name) == ("ada@shop.com", "Ada Lovelace")
    assert contact.notification_preference == "inbox"

    page.get_by_role("link", name="Contacts").click()
    expect(banner).to_have_count(0)


def test_skip_link_and_favicon(login_page, django_user_model):
    admin = django_user_model.objects.create_superuser("boss", "boss@mailhub.test", "boss-pw")
    page = login_page(admin, "boss-pw")
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(page.url)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.wait_for_load_state("networkidle")
    assert missing == []
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + icon).ok
    # The admin's pages (staff go there from the top bar) declare it too.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.wait_for_load_state("networkidle")
    assert missing == [], missing
