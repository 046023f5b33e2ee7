"""Relay passwords are stored encrypted, read back only by the relay, never shown in a form."""

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from mailhub.devrelay import DevRelayHandler
from outbox.models import MailServer
from outbox.relay import connection_test, server_config
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Relay-p4ss;word"


def _stored(server_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM outbox_mailserver WHERE id = %s", [server_id])
        return cursor.fetchone()[0]


@pytest.fixture
def auth_relay():
    """An SMTP relay on loopback that accepts AUTH only with PASSWORD."""
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)

    controller = Controller(
        DevRelayHandler(reject="@reject.test", defer="@defer.test"),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
        ready_timeout=10,
    )
    controller.start()
    controller.logins = logins
    yield controller
    controller.stop()


def test_the_password_is_encrypted_in_the_database_and_the_relay_logs_in_with_it(auth_relay):
    server = MailServer.objects.create(
        name="Auth", host="127.0.0.1", port=auth_relay.port, username="mailhub", password=PASSWORD
    )
    stored = _stored(server.pk)
    assert PASSWORD not in stored and stored.startswith("gAAAAA")  # a Fernet token
    assert MailServer.objects.get(pk=server.pk).password == PASSWORD
    steps = connection_test(
        server_config(MailServer.objects.get(pk=server.pk)), sender="a@mailhub.test"
    )
    assert ("mailhub", PASSWORD) in auth_relay.logins
    assert [code for _, code, _ in steps][-1] == 250


def test_the_key_comes_from_the_secret_key_and_survives_its_rotation(settings):
    server = MailServer.objects.create(name="R", host="h", password=PASSWORD)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-after-rotation"
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY_FALLBACKS"):
        MailServer.objects.get(pk=server.pk)
    settings.SECRET_KEY_FALLBACKS = [old]
    assert MailServer.objects.get(pk=server.pk).password == PASSWORD
    # A dedicated key takes over from the secret key when it is set.
    settings.MAILHUB_ENCRYPTION_KEY = "dedicated-encryption-key"
    other = MailServer.objects.create(name="D", host="h", password=PASSWORD)
    settings.MAILHUB_ENCRYPTION_KEY = ""
    with pytest.raises(ImproperlyConfigured):
        MailServer.objects.get(pk=other.pk)


def test_the_admin_form_never_shows_the_password_and_empty_keeps_it(django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@mailhub.test", "pw")
    server = MailServer.objects.create(name="Auth", host="h", username="u", password=PASSWORD)
    client = Client()
    client.force_login(admin)
    url = f"/admin/outbox/mailserver/{server.pk}/change/"
    page = client.get(url).content.decode()
    assert 'type="password"' in page and 'name="password"' in page
    assert PASSWORD not in page and _stored(server.pk) not in page

    fields = {
        "name": "Auth renamed",
        "host": "h",
        "port": "25",
        "security": "none",
        "username": "u",
        "from_filter": "",
        "priority": "10",
        "active": "on",
    }
    assert client.post(url, {**fields, "password": ""}).status_code == 302
    server.refresh_from_db()
    assert (server.name, server.password) == ("Auth renamed", PASSWORD)

    assert client.post(url, {**fields, "password": "changed"}).status_code == 302
    assert MailServer.objects.get(pk=server.pk).password == "changed"

    assert client.post(url, {**fields, "clear_password": "on"}).status_code == 302
    assert MailServer.objects.get(pk=server.pk).password == ""
    assert _stored(server.pk) == ""


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_passwords_stored_in_clear():
    executor = MigrationExecutor(connection)
    before = [("outbox", "0005_queue_indexes")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldServer = old_apps.get_model("outbox", "MailServer")
    clear = OldServer.objects.create(name="Old", host="h", password=PASSWORD)
    empty = OldServer.objects.create(name="None", host="h", password="")
    assert _stored(clear.pk) == PASSWORD

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert _stored(clear.pk).startswith("gAAAAA") and PASSWORD not in _stored(clear.pk)
    assert MailServer.objects.get(pk=clear.pk).password == PASSWORD
    assert _stored(empty.pk) == ""
