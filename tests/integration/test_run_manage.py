"""The README's `./run manage …` works in a fresh shell: the quick start's settings, no
DJANGO_SECRET_KEY to export first (it failed with ImproperlyConfigured)."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fresh_env(tmp_path) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "DATABASE_URL", "CELERY_BROKER_URL"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["MAILHUB_VAR_DIR"] = str(tmp_path / "var")  # never the quick start's own var/
    return env


def test_run_manage_uses_the_quick_start_settings(tmp_path):
    result = subprocess.run(
        [str(ROOT / "run"), "manage", "sendtestmail", "--help"],
        env=_fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--reply-to-record" in result.stdout
    assert "ImproperlyConfigured" not in result.stderr
