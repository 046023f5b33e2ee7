"""The quick start's development secret key is made per installation and kept in var/."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailhub.devsecret import dev_secret_key

ROOT = Path(__file__).resolve().parents[2]
PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def _debug_key(var_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(
        DJANGO_DEBUG="1", MAILHUB_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="mailhub.settings"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT_KEY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_debug_without_a_key_makes_one_per_installation_and_keeps_it(tmp_path):
    first = _debug_key(tmp_path / "one")
    assert len(first) >= 50
    assert _debug_key(tmp_path / "one") == first, "a restart keeps the installation's key"
    assert _debug_key(tmp_path / "two") != first, "another installation gets its own"
    stored = tmp_path / "one" / "dev-secret-key"
    assert stored.read_text().strip() == first
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # No key is written into the code any more.
    assert first not in (ROOT / "mailhub" / "settings.py").read_text()


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "dev-secret-key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: dev_secret_key(path=path), range(32)))
    assert len(keys) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-secret-key"]
