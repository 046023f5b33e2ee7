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


def test_healthz_reports_each_dependency(client, settings):
    settings.MAILHUB_SMTPD_LISTEN = "127.0.0.1:1"  # nothing listens on port 1
    response = client.get("/healthz")
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["listener"]["ok"] is False
    assert response.status_code == 503
