"""The placeholder-address system check and the staff banner: fire, then clear once fixed."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from diagnostics.placeholders import is_placeholder_address
from mailhub.checks import placeholder_addresses

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "address,placeholder",
    [
        ("admin@example.com", True),
        ("root@localhost", True),
        ("", True),
        ("admin", True),
        ("Admin <admin@EXAMPLE.org>", True),
        ("ops@shop.localhost", True),
        ("anna@shop.com", False),
        ("notifications@mailhub.test", False),
    ],
)
def test_placeholder_addresses(address, placeholder):
    assert is_placeholder_address(address) is placeholder


@pytest.mark.parametrize(
    "address,placeholder",
    [
        ("admin@mailhub.test", True),  # the demo's domain, on a real install
        ("ops@customer.test", True),
        ("admin@intranet", True),  # no dot: a local host name
        ("admin@shop.com", False),
    ],
)
def test_placeholders_outside_the_demo(settings, address, placeholder):
    settings.MAILHUB_MAIL_DOMAIN = "shop.com"
    assert is_placeholder_address(address) is placeholder


def test_the_demo_domain_is_real_in_the_demo(settings):
    settings.MAILHUB_MAIL_DOMAIN = "mailhub.test"
    assert is_placeholder_address("admin@mailhub.test") is False
    assert is_placeholder_address("admin@intranet") is True


def ids(warnings):
    return [w.id for w in warnings]


def test_check_fires_for_admin_placeholder_and_clears(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    django_user_model.objects.create_user("customer", "", "pw")  # not staff: never reported
    warnings = placeholder_addresses()
    assert ids(warnings) == ["mailhub.W001"]
    assert "'admin'" in warnings[0].msg and "admin@example.com" in warnings[0].msg
    assert "Admin → Users → admin → Email address" in warnings[0].hint

    admin.email = "admin@shop.com"
    admin.save(update_fields=["email"])
    assert placeholder_addresses() == []


def test_check_fires_for_default_sender(settings):
    settings.MAILHUB_DEFAULT_FROM = "noreply@localhost"
    warnings = placeholder_addresses()
    assert ids(warnings) == ["mailhub.W002"]
    assert "MAILHUB_DEFAULT_FROM" in warnings[0].hint
    settings.MAILHUB_DEFAULT_FROM = "notifications@shop.com"
    assert placeholder_addresses() == []


def test_manage_py_check_shows_the_warning(django_user_model, capsys):
    django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    # Warnings alone do not fail `check`; --fail-level WARNING makes CI able to insist.
    call_command("check")
    assert "mailhub.W001" in capsys.readouterr().err
    with pytest.raises(SystemCheckError):
        call_command("check", fail_level="WARNING")


def test_banner_for_staff_only(client, django_user_model, staff_user, plain_user):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)
    for url in ("/ops/", "/", "/contacts/", "/admin/outbox/outgoingmail/"):
        page = client.get(url).content.decode()
        assert page.count('id="placeholder-banner"') == 1, url
        assert "Your email address" in page and "admin@example.com" in page
        assert 'href="/chatter/profile/"' in page

    client.force_login(staff_user)  # another staff user is told who to ask
    page = client.get("/").content.decode()
    assert "internal user <b>admin</b>" in page and "Ask an administrator" in page

    client.force_login(plain_user)  # not staff: no banner, and no query for it
    assert client.get("/").status_code == 200
    assert "placeholder-banner" not in client.get("/").content.decode()

    admin.email = "admin@shop.com"
    admin.save(update_fields=["email"])
    client.force_login(admin)
    assert "placeholder-banner" not in client.get("/ops/").content.decode()
