"""The site shell: login page, login required, health endpoint."""

import pytest

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"Log in to MailHub" in response.content


def test_pages_require_login(client):
    response = client.get("/records/ticket/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_healthz_reports_each_dependency_to_staff(client, settings, staff_user):
    settings.MAILHUB_SMTPD_LISTEN = "127.0.0.1:1"  # nothing listens on port 1
    client.force_login(staff_user)
    response = client.get("/healthz")
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["listener"]["ok"] is False
    assert response.status_code == 503


@pytest.mark.parametrize("who", ["anonymous", "customer", "staff without permission"])
def test_healthz_tells_the_public_only_up_or_down(
    client, settings, who, plain_user, bare_staff_user
):
    users = {"customer": plain_user, "staff without permission": bare_staff_user}
    if who in users:
        client.force_login(users[who])
    settings.MAILHUB_SMTPD_LISTEN = "127.0.0.1:1"
    down = client.get("/healthz")
    assert (down.status_code, down.json()) == (503, {"status": "down"})
    assert b"listener" not in down.content and b"127.0.0.1" not in down.content


def test_healthz_says_up_to_the_public_when_everything_answers(client, settings, inbound_listener):
    listener = inbound_listener()
    settings.MAILHUB_SMTPD_LISTEN = f"127.0.0.1:{listener.port}"
    up = client.get("/healthz")
    assert (up.status_code, up.json()) == (200, {"status": "up"})
