"""STARTTLS for the listener (RFC 3207): the server context, and a self-signed pair for trying.

The certificate and key come from settings (``MAILHUB_SMTPD_TLS_CERT``/``_KEY``). The quick
start has none, so ``runsmtpd`` creates a self-signed pair under ``var/tls`` in DEBUG: sending
MTAs use STARTTLS opportunistically and do not check the certificate (RFC 3207 §4.1,
RFC 7435), so even a self-signed one keeps the mail off the wire in clear.
"""

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TLSConfigError(ValueError):
    """The configured certificate or key cannot be used; the message says which and why."""


def tls_server_context(*, cert: str, key: str) -> ssl.SSLContext:
    """A server context for STARTTLS from PEM files; ``TLSConfigError`` with a clear reason."""
    if not cert or not key:
        raise TLSConfigError(
            "MAILHUB_SMTPD_TLS_CERT and MAILHUB_SMTPD_TLS_KEY must be set together."
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"Cannot load the TLS certificate {cert!r} and key {key!r}: {exc}"
        ) from exc
    return context


def tls_self_signed_create(*, cert: Path, key: Path, hostname: str) -> None:
    """Write a self-signed certificate for ``hostname`` and its key (mode 0600) as PEM files."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        pass
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    key.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.mkdir(parents=True, exist_ok=True)
    pem_key = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem_key)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def tls_listener_context(*, cert: str, key: str, debug: bool, var_dir: Path, hostname: str):
    """The listener's STARTTLS context from its settings, or None when it offers no STARTTLS.

    Nothing configured: in DEBUG (the quick start) a self-signed pair under ``var_dir/tls``,
    created once; otherwise no STARTTLS.
    """
    if not cert and not key:
        if not debug:
            return None
        cert_path, key_path = var_dir / "tls" / "smtpd-cert.pem", var_dir / "tls" / "smtpd-key.pem"
        if not (cert_path.exists() and key_path.exists()):
            tls_self_signed_create(cert=cert_path, key=key_path, hostname=hostname)
        cert, key = str(cert_path), str(key_path)
    return tls_server_context(cert=cert, key=key)
