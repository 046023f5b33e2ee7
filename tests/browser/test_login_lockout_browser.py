"""Login brute force in a real Chromium: the 11th try on the login form shows when to retry."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("form", ["/login/", "/admin/login/"])
def test_the_login_form_locks_after_ten_failures_and_says_when(
    browser, live_server, staff_user, form
):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        statuses = []
        for _ in range(10):
            page.goto(f"{live_server.url}{form}")
            page.fill("#id_username", "staff")
            page.fill("#id_password", "wrong")
            with page.expect_navigation() as navigation:
                page.click("[type=submit]")
            statuses.append(navigation.value.status)
        assert statuses == [200] * 9 + [429]
        # The right password is refused too while the lock lasts, with the time to retry.
        page.goto(f"{live_server.url}{form}")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "staff-password")
        with page.expect_navigation() as navigation:
            page.click("[type=submit]")
        assert navigation.value.status == 429
        text = page.locator("main").inner_text()
        assert "Too many failed login attempts" in text and "in 15 minutes" in text
        assert "/login/" in page.url
    finally:
        context.close()
