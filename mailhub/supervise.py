"""Run MailHub's processes together for the quick start, their output prefixed by name.

``python -m mailhub.supervise`` starts web, worker, beat, smtpd, the IDLE
watchers of incoming mail servers and the dev relay, waits until
the web and SMTP ports answer, prints the URLs, and stops everything on Ctrl-C (or when one
process dies, saying which).
"""

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

PY = sys.executable
WEB = os.environ.get("MAILHUB_WEB_LISTEN", "127.0.0.1:8000")
SMTPD = os.environ.get("MAILHUB_SMTPD_LISTEN", "127.0.0.1:2525")
RELAY = os.environ.get("MAILHUB_DEVRELAY_LISTEN", "127.0.0.1:1025")


@dataclass
class Proc:
    name: str
    args: list[str]
    popen: subprocess.Popen | None = None


def processes() -> list[Proc]:
    celery = [PY, "-m", "celery", "-A", "mailhub"]
    return [
        Proc("web", [PY, "manage.py", "runserver", WEB, "--noreload"]),
        Proc(
            "worker",
            [
                *celery,
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
        ),
        Proc(
            "beat",
            [
                *celery,
                "beat",
                "--loglevel",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
        ),
        Proc("smtpd", [PY, "manage.py", "runsmtpd", "--listen", SMTPD]),
        # IMAP IDLE watchers of the incoming mail servers; idle while there is none.
        Proc("fetchidle", [PY, "manage.py", "runfetchidle"]),
        Proc("devrelay", [PY, "manage.py", "devrelay", "--listen", RELAY]),
    ]


def port_open(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    procs = processes()
    width = max(len(p.name) for p in procs)
    sel = selectors.DefaultSelector()
    for proc in procs:
        proc.popen = subprocess.Popen(
            proc.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        sel.register(proc.popen.stdout, selectors.EVENT_READ, proc)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    announced = False
    started = time.monotonic()
    exit_code = 0
    while not stopping:
        for key, _ in sel.select(timeout=0.5):
            proc = key.data
            line = key.fileobj.readline()
            if line:
                text = line.decode("utf-8", "replace").rstrip()
                print(f"{proc.name:<{width}} | {text}", flush=True)
            else:
                sel.unregister(key.fileobj)
        for proc in procs:
            code = proc.popen.poll()
            if code is not None and not stopping:
                print(
                    f"{proc.name} exited with code {code}; stopping MailHub. "
                    f"Its output above says why.",
                    flush=True,
                )
                stopping = True
                exit_code = 1
        if not announced and port_open(WEB) and port_open(SMTPD):
            announced = True
            print(
                f"\nMailHub is running (started in {time.monotonic() - started:.1f}s):\n"
                f"  web        http://{WEB}/  (admin: http://{WEB}/admin/)\n"
                f"  inbound    smtp://{SMTPD}  (manage.py runsmtpd)\n"
                f"  dev relay  smtp://{RELAY}  (received mail: http://{WEB}/devrelay/)\n"
                f"  health     http://{WEB}/healthz\n"
                "Press Ctrl-C to stop everything.\n",
                flush=True,
            )
    print("Stopping MailHub...", flush=True)
    for proc in procs:
        if proc.popen.poll() is None:
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for proc in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            proc.popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
    print("All MailHub processes stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
