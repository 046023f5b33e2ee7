"""Production settings: HTTPS on by default when DJANGO_DEBUG=0, ``check --deploy`` clean with
docker-compose's environment, and a Content-Security-Policy on every page.

Settings are read once per process, so each configuration is checked in a fresh ``manage.py``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import Client

from campaigns.models import Campaign

ROOT = Path(__file__).resolve().parents[2]


def _environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A bare production environment: nothing of this test run's settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MAILHUB_"))}
    env.update(
        DJANGO_SECRET_KEY="Zk3v9Qp2Lx7Wm4Rt8Yb6Nc1Hs5Dg0Fj-aE2uI9oP4lK7mN3bV6cX8zQ1wS5dR0t",
        MAILHUB_VAR_DIR=str(tmp_path / "var"),
        MAILHUB_LOG_DIR=str(tmp_path / "var" / "log"),
        DJANGO_SETTINGS_MODULE="mailhub.settings",
    )
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    env.update(overrides)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


NAMES = [
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]
PRINT = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({n: getattr(s, n) for n in %r}))"
)


def _settings(env: dict[str, str]) -> dict:
    done = _manage(env, "shell", "-c", PRINT % NAMES)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_https_settings_are_on_by_default_in_production_and_off_in_debug(tmp_path):
    production = _settings(_environment(tmp_path, DJANGO_DEBUG="0"))
    assert production == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
    }
    debug = _settings(_environment(tmp_path, DJANGO_DEBUG="1"))
    assert debug["DEBUG"] is True and not any(debug[n] for n in NAMES[1:])
    # Each one settable from the environment.
    overridden = _settings(
        _environment(
            tmp_path,
            DJANGO_DEBUG="0",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_SECURE_HSTS_SECONDS="60",
        )
    )
    assert overridden["SECURE_SSL_REDIRECT"] is False and overridden["SECURE_HSTS_SECONDS"] == 60


def test_check_deploy_is_clean_with_the_compose_environment(tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["web"]["environment"].items()}
    # What compose substitutes from the operator's shell (``${DJANGO_SECRET_KEY:?...}``).
    assert env.pop("DJANGO_SECRET_KEY").startswith("${DJANGO_SECRET_KEY")
    env.update(
        MAILHUB_VAR_DIR=str(tmp_path / "var"),  # compose's /var/lib/mailhub is the container's
        MAILHUB_LOG_DIR=str(tmp_path / "var" / "log"),
    )
    done = _manage(_environment(tmp_path, **env), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    # The same check does see a weak configuration: it is not silent whatever the input.
    weak = _manage(
        _environment(tmp_path, **{**env, "DJANGO_SECURE_SSL_REDIRECT": "0"}),
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert weak.returncode != 0 and "security.W008" in weak.stderr + weak.stdout


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/healthz"])
def test_every_page_carries_a_policy_without_inline_script(path):
    response = Client().get(path)
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_production_redirects_http_but_not_the_health_probe(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/login/").status_code == 301
    assert client.get("/login/")["Location"] == "https://testserver/login/"
    assert client.get("/healthz").status_code in (200, 503)
    secure = client.get("/login/", secure=True)
    assert secure.status_code == 200


@pytest.mark.django_db
def test_mail_previews_may_show_remote_images_but_never_run_script(staff_user):
    campaign = Campaign.objects.create(subject="Spring", body_html="<p>hi</p>")
    client = Client()
    client.force_login(staff_user)
    policy = client.get(campaign.get_absolute_url())["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'" and "https:" in directives["img-src"]
    assert directives["style-src-attr"] == "'unsafe-inline'"
    # Everywhere else remote images stay refused by the policy.
    home = client.get("/")["Content-Security-Policy"]
    assert "img-src 'self' data:;" in home + ";" and "https:" not in home
