"""docker-compose.yml, the Dockerfile and the README stay true to the code.

Docker cannot run here, so this checks what can be checked: every service's command exists
(management commands, the Celery app, the WSGI app) and the variables match what settings read.
"""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_VAR = re.compile(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"")
APP_SERVICES = {"web", "worker", "beat", "smtpd", "migrate"}


def settings_variables() -> set[str]:
    return set(SETTINGS_VAR.findall((ROOT / "mailhub" / "settings.py").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_process(compose):
    assert {"postgres", "redis", "mailpit", "web", "worker", "beat", "smtpd"} <= set(
        compose["services"]
    )
    for name in ("postgres", "redis", "web", "smtpd"):
        assert "healthcheck" in compose["services"][name], name


def test_every_service_command_exists(compose):
    commands = get_commands()
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        if command[:2] == ["python", "manage.py"]:
            assert command[2] in commands, f"{name}: no management command {command[2]!r}"
        elif command[0] == "celery":
            assert command[1:3] == ["-A", "mailhub"]
            from mailhub.celery import app

            assert app.main == "mailhub"
            assert command[3] in {"worker", "beat"}
            if command[3] == "beat":
                scheduler = command[command.index("--scheduler") + 1]
                module, _, cls = scheduler.partition(":")
                assert getattr(__import__(module, fromlist=[cls]), cls)
        elif command[0] == "gunicorn":
            module, _, attr = command[1].partition(":")
            assert callable(getattr(__import__(module, fromlist=[attr]), attr))
        else:
            pytest.fail(f"{name}: unexpected command {command}")


def test_compose_variables_match_settings(compose):
    dockerfile_env = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", (ROOT / "Dockerfile").read_text()))
    for name in APP_SERVICES:
        env = set(compose["services"][name]["environment"])
        unknown = env - settings_variables()
        assert not unknown, f"{name} sets variables the settings never read: {sorted(unknown)}"
        missing = settings_variables() - env - dockerfile_env
        assert not missing, f"{name} lacks variables the settings read: {sorted(missing)}"


# Every way the code reads the environment: django-environ, os.environ, os.getenv, and the
# ``${NAME:-default}`` of the run script.
ENV_READ = re.compile(
    r"""(?:\benv\.\w+|os\.environ\.get|os\.getenv|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
    r"""|\$\{([A-Z][A-Z0-9_]+)[:}-]"""
)
NOT_PRODUCT_CODE = {".venv", "tests", "bench", "var", ".git"}


def variables_read_anywhere() -> dict[str, set[str]]:
    """Every environment variable the product's code reads, with the files that read it."""
    found: dict[str, set[str]] = {}
    files = [p for p in ROOT.rglob("*.py") if not NOT_PRODUCT_CODE & set(p.relative_to(ROOT).parts)]
    for path in [*files, ROOT / "run"]:
        for match in ENV_READ.finditer(path.read_text()):
            name = next(g for g in match.groups() if g)
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_reads_outside_settings():
    found = variables_read_anywhere()
    assert "mailhub/supervise.py" in found["MAILHUB_WEB_LISTEN"]
    assert "run" in found["MAILHUB_CHROMIUM"]
    assert settings_variables() <= set(found)


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = {
        f"{name} ({', '.join(sorted(files))})"
        for name, files in variables_read_anywhere().items()
        if f"`{name}`" not in readme
    }
    assert not missing, f"README's configuration table lacks {sorted(missing)}"
