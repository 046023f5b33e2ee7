"""Login brute force: 10 failures for one account, or from one address, lock it for 15 minutes.

Through the real login pages (the site's and the admin's), with django-axes counting in the
database; the 11th try is refused with 429 and the page says when to retry.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

PAGES = {"site": "login", "admin": "admin:login"}


def _attempt(client: Client, page: str, username: str, password: str, ip: str = "192.0.2.7"):
    return client.post(
        reverse(PAGES[page]),
        {"username": username, "password": password, "next": "/"},
        REMOTE_ADDR=ip,
    )


@pytest.mark.parametrize("page", ["site", "admin"])
def test_ten_wrong_passwords_for_one_account_lock_it_with_429_and_a_retry_time(
    page, staff_user, settings
):
    client = Client()
    for _ in range(9):
        response = _attempt(client, page, "staff", "wrong", ip="192.0.2.7")
        assert response.status_code == 200  # the form again, with its error
    # The tenth failure reaches the limit: from now on the account is refused.
    tenth = _attempt(client, page, "staff", "wrong", ip="192.0.2.7")
    assert tenth.status_code == 429
    # Even the right password, and from another address: the lock is on the account.
    locked = _attempt(Client(), page, "staff", "staff-password", ip="198.51.100.9")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed login attempts" in text
    retry_at = timezone.now() + timedelta(minutes=15)
    assert f"Try again after {retry_at:%H:%M} UTC" in text or (
        f"{(retry_at - timedelta(minutes=1)):%H:%M} UTC" in text
    )
    assert "in 15 minutes" in text
    assert 14 * 60 <= int(locked["Retry-After"]) <= 15 * 60
    assert "_auth_user_id" not in locked.client.session


def test_ten_failures_from_one_address_lock_that_address_for_every_account(staff_user, plain_user):
    client = Client()
    for n in range(10):
        _attempt(client, "site", f"guess{n}", "wrong", ip="203.0.113.5")
    # Ten different accounts, one address: the address is locked, the right password too.
    assert _attempt(client, "site", "user", "user-password", ip="203.0.113.5").status_code == 429
    # The same account from another address logs in: nothing was locked but that address.
    other = _attempt(Client(), "site", "user", "user-password", ip="203.0.113.6")
    assert other.status_code == 302 and other["Location"] == "/"


def test_nine_failures_do_not_lock_and_the_count_forgets_after_the_cool_off(staff_user):
    client = Client()
    for _ in range(9):
        _attempt(client, "site", "staff", "wrong")
    assert _attempt(client, "site", "staff", "staff-password").status_code == 302

    for _ in range(10):
        _attempt(Client(), "site", "staff", "wrong", ip="192.0.2.8")
    assert _attempt(Client(), "site", "staff", "staff-password").status_code == 429
    # Sixteen minutes later (the failures dated back): the account logs in again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    response = _attempt(Client(), "site", "staff", "staff-password", ip="192.0.2.8")
    assert response.status_code == 302


def test_logging_in_to_an_own_account_does_not_reset_the_count_of_the_address(
    staff_user, plain_user
):
    """An attacker with an account of their own cannot wipe their address's failures."""
    client = Client()
    for n in range(9):
        _attempt(client, "site", "staff", f"guess{n}", ip="203.0.113.9")
    own = _attempt(Client(), "site", "user", "user-password", ip="203.0.113.9")
    assert own.status_code == 302
    assert _attempt(client, "site", "staff", "guess9", ip="203.0.113.9").status_code == 429
