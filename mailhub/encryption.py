"""Secrets kept in the database (mail server passwords), encrypted with Fernet.

The key is derived from ``SECRET_KEY`` with HKDF (RFC 5869), so a database dump alone does not
reveal the passwords, and no second secret has to be configured. Rotating ``SECRET_KEY`` makes
stored secrets unreadable: they have to be typed in again (``secret_decrypt`` says so).
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(ValueError):
    """A stored secret was encrypted with another key (``SECRET_KEY`` changed) or is damaged."""


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mailhub stored secrets"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def secret_encrypt(*, text: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(text.encode()).decode("ascii")


def secret_decrypt(*, token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "the stored password cannot be decrypted (was SECRET_KEY changed?); type it again"
        ) from exc
