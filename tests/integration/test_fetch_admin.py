"""Admin → Incoming mail servers: add one, Test & Confirm against a real Dovecot, its schedule."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from fetch import services, tasks
from fetch.models import IncomingServer
from mailhub.encryption import SecretUnreadable
from tests.support.inbound import build_mail

pytestmark = pytest.mark.django_db

ADD = "/admin/fetch/incomingserver/add/"
CHANGELIST = "/admin/fetch/incomingserver/"


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@agency.test", "pw-root-123")
    client.force_login(user)
    return client


def _form(dovecot, login: str, password: str, **overrides) -> dict:
    data = {
        "name": "Support mailbox",
        "protocol": "imap_ssl",
        "host": dovecot.host,
        "port": dovecot.imaps_port,
        "login": login,
        "new_password": password,
        "folder": "INBOX",
        "after_fetch": "seen",
        "move_to": "",
        "interval_minutes": 3,
        "active": "on",
    }
    data.update(overrides)
    return data


def _task(server: IncomingServer) -> PeriodicTask:
    return PeriodicTask.objects.get(
        task=services.FETCH_TASK, kwargs=f'{{"server_id": {server.pk}}}'
    )


def test_add_test_and_confirm_and_schedule(admin_client, dovecot, settings):
    login, password = dovecot.user_add()
    dovecot.append(login, password, b"From: a@b.test\r\nSubject: x\r\n\r\nhi\r\n")

    response = admin_client.post(ADD, _form(dovecot, login, password))

    assert response.status_code == 302, response.content.decode()[:2000]
    server = IncomingServer.objects.get(name="Support mailbox")
    assert password not in server.password_encrypted and server.password == password
    task = _task(server)
    assert task.enabled and (task.interval.every, task.interval.period) == (3, "minutes")

    page = admin_client.post(
        CHANGELIST,
        {"action": "test_and_confirm", "_selected_action": [server.pk]},
        follow=True,
    ).content.decode()
    assert "Support mailbox: confirmed: Logged in; folder &#x27;INBOX&#x27;: 1 message(s)" in page
    server.refresh_from_db()
    assert server.confirmed_at is not None

    # Deactivated: the schedule stays but is off; the password is kept when left empty.
    response = admin_client.post(
        f"{CHANGELIST}{server.pk}/change/",
        {**_form(dovecot, login, "", interval_minutes=10), "active": ""},
    )
    assert response.status_code == 302
    server.refresh_from_db()
    assert server.password == password
    task = _task(server)
    assert not task.enabled and task.interval.every == 10

    admin_client.post(f"{CHANGELIST}{server.pk}/delete/", {"post": "yes"})
    assert not PeriodicTask.objects.filter(task=services.FETCH_TASK).exists()


def test_test_and_confirm_reports_the_servers_refusal(admin_client, dovecot):
    login, _ = dovecot.user_add()
    admin_client.post(ADD, _form(dovecot, login, "wrong-password", name="Bad"))
    server = IncomingServer.objects.get(name="Bad")

    page = admin_client.post(
        CHANGELIST, {"action": "test_and_confirm", "_selected_action": [server.pk]}, follow=True
    ).content.decode()

    assert "Bad: failed: login refused by" in page and "AUTHENTICATIONFAILED" in page
    server.refresh_from_db()
    assert server.confirmed_at is None and "AUTHENTICATIONFAILED" in server.last_error


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"interval_minutes": 0}, "interval_minutes", "greater than or equal to 1"),
        ({"after_fetch": "move"}, "move_to", "Name the folder"),
        ({"protocol": "pop3_ssl", "after_fetch": "move", "move_to": "Done"}, "after_fetch", "POP3"),
        ({"new_password": ""}, "new_password", "A password is needed"),
    ],
)
def test_bad_settings_are_refused_with_a_message(admin_client, dovecot, overrides, field, words):
    login, password = dovecot.user_add()
    response = admin_client.post(ADD, _form(dovecot, login, password, **overrides))
    assert response.status_code == 200
    assert words in str(response.context["adminform"].form.errors[field])
    assert not IncomingServer.objects.exists()


def test_a_password_from_another_secret_key_is_reported_not_raised(settings):
    server = IncomingServer(name="x", host="h", login="l")
    server.password = "secret"
    settings.SECRET_KEY = "another-key-" + "x" * 40
    with pytest.raises(SecretUnreadable, match="type it again"):
        server.password  # noqa: B018


def test_fetchmail_command_and_the_scheduled_task(dovecot, mail_domain):
    login, password = dovecot.user_add()
    dovecot.append(login, password, bytes(build_mail(message_id="<cmd-1@customer.test>")))
    server = IncomingServer(
        name="Cmd", host=dovecot.host, port=dovecot.imaps_port, login=login, active=True
    )
    server.password = password
    server.save()

    out = StringIO()
    call_command("fetchmail", stdout=out)
    assert "Cmd: 1 fetched, 1 acknowledged" in out.getvalue()
    dovecot.append(
        login, password, bytes(build_mail(message_id="<cmd-2@customer.test>", subject="Two"))
    )
    assert tasks.incoming_server_fetch.apply(kwargs={"server_id": server.pk}).get() == (
        "fetched 1, acknowledged 1"
    )

    IncomingServer.objects.filter(pk=server.pk).update(folder="Gone")
    with pytest.raises(CommandError, match="Fetching failed for Cmd"):
        call_command("fetchmail", "--server", "Cmd", stdout=StringIO())
    with pytest.raises(CommandError, match="No incoming server named 'Nope'"):
        call_command("fetchmail", "--server", "Nope")
