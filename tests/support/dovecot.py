"""A real Dovecot (IMAP + POP3) on free loopback ports, with a throwaway configuration.

Started by the tests, never as a system service: its own base directory, a passwd-file of test
users, one Maildir per user, and TLS with a certificate the fixture makes (its own trust anchor:
``SSL_CERT_FILE`` points at it while a test runs, so the code under test verifies it as it would
a real provider's). Skipped with the command to run when Dovecot is not installed.
"""

import datetime as dt
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else ""
)
INSTALL = "apt-get install -y dovecot-imapd dovecot-pop3d"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _certificate(cert: Path, key: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)


@dataclass
class Dovecot:
    base: Path
    imaps_port: int
    imap_port: int
    pop3s_port: int
    cert: Path
    uid: int
    gid: int

    host = "localhost"

    users: list[tuple[str, str]]

    def user_add(self) -> tuple[str, str]:
        """A fresh mailbox (login, password): each test takes its own."""
        return self.users.pop()

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self, login: str, password: str) -> IMAPClient:
        client = IMAPClient(
            self.host, port=self.imaps_port, ssl=True, ssl_context=self._context(), timeout=10
        )
        client.login(login, password)
        return client

    def append(self, login: str, password: str, raw: bytes, folder: str = "INBOX") -> None:
        with self.client(login, password) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    def folder_create(self, login: str, password: str, folder: str) -> None:
        with self.client(login, password) as client:
            client.create_folder(folder)

    def messages(self, login: str, password: str, folder: str = "INBOX") -> list[dict]:
        """Every message of ``folder``: uid, flags and the raw bytes."""
        with self.client(login, password) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return []
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])
            return [
                {"uid": uid, "flags": set(data[uid][b"FLAGS"]), "raw": data[uid][b"BODY[]"]}
                for uid in sorted(data)
            ]


def _config(base: Path, ports: dict[str, int], uid: int, gid: int, as_root: bool) -> str:
    users = (
        ""
        if as_root
        else (
            f"default_internal_user = {pwd.getpwuid(uid).pw_name}\n"
            f"default_login_user = {pwd.getpwuid(uid).pw_name}\n"
        )
    )
    return f"""
base_dir = {base}/run
state_dir = {base}/state
instance_name = mailhub-test-{base.name}
log_path = {base}/dovecot.log
{users}protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {uid}
mail_location = maildir:{base}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {ports["pop3s"]}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""


@pytest.fixture(scope="module")
def dovecot_server():
    if not DOVECOT:
        pytest.skip(f"Dovecot is not installed (to run these tests: {INSTALL})")
    as_root = os.getuid() == 0
    # Mail processes never run as root: Dovecot refuses uid 0, so root hands them to "dovecot".
    account = pwd.getpwnam("dovecot") if as_root else pwd.getpwuid(os.getuid())
    uid, gid = account.pw_uid, account.pw_gid
    base = Path(tempfile.mkdtemp(prefix="mailhub-dovecot-"))
    base.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (base / sub).mkdir()
    # Written once before start: Dovecot re-reads a changed passwd-file only when its mtime
    # moves on, which a fast test can beat.
    users = [
        (f"u{n}-{secrets.token_hex(3)}@mail.test", secrets.token_urlsafe(12)) for n in range(40)
    ]
    (base / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users))
    _certificate(base / "cert.pem", base / "key.pem")
    if as_root:
        os.chown(base / "mail", uid, gid)
    ports = {"imap": _free_port(), "imaps": _free_port(), "pop3s": _free_port()}
    (base / "dovecot.conf").write_text(_config(base, ports, uid, gid, as_root))
    # The master forks into the background: its output goes to a file, not to pipes that
    # would stay open as long as it runs.
    with (base / "start.log").open("w") as log:
        started = subprocess.run(
            [DOVECOT, "-c", str(base / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=20,
        )
    if started.returncode != 0:
        words = (base / "start.log").read_text().strip()
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"dovecot did not start: {words}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    server = Dovecot(
        base=base,
        imaps_port=ports["imaps"],
        imap_port=ports["imap"],
        pop3s_port=ports["pop3s"],
        cert=base / "cert.pem",
        uid=uid,
        gid=gid,
        users=users,
    )
    try:
        yield server
    finally:
        pid_file = base / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server, monkeypatch):
    """The module's Dovecot, its certificate trusted for this test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot_server.cert))
    return dovecot_server
