"""Production error pages (DEBUG off) are MailHub pages, not Django's."""

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def _is_mailhub_page(html: str, title: str) -> None:
    assert f"<title>{title} · MailHub</title>" in html
    assert 'class="brand"' in html and "Back to MailHub" in html


def test_404_403_400_and_500_are_mailhub_pages(client, plain_user, settings):
    settings.DEBUG = False
    client.force_login(plain_user)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    _is_mailhub_page(response.content.decode(), "Page not found")

    response = client.get("/ops/")  # staff only
    assert response.status_code == 403
    _is_mailhub_page(response.content.decode(), "Not allowed")

    response = client.get("/", HTTP_HOST="not-allowed.example")
    assert response.status_code == 400
    _is_mailhub_page(response.content.decode(), "Bad request")

    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    _is_mailhub_page(response.content.decode(), "Something went wrong")
