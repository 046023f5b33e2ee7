"""Secrets MailHub must read back (relay and mailbox passwords), encrypted at rest with Fernet.

The key is derived (HKDF-SHA256, RFC 5869) from ``MAILHUB_ENCRYPTION_KEY`` when it is set, else
from ``DJANGO_SECRET_KEY``; keys derived from ``DJANGO_SECRET_KEY_FALLBACKS`` still decrypt, so
rotating the secret key loses no password (the next save encrypts with the new key).
"""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_INFO = b"mailhub stored secrets v1"


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret was encrypted under a key that is no longer configured, or is damaged."""


def _fernet_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mailhub", info=_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def _fernet() -> MultiFernet:
    if settings.MAILHUB_ENCRYPTION_KEY:
        secrets = [settings.MAILHUB_ENCRYPTION_KEY]
    else:
        secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def secret_encrypt(*, plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def secret_decrypt(*, token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise SecretUnreadable(
            "A stored password cannot be decrypted: the key changed. Put the old "
            "DJANGO_SECRET_KEY in DJANGO_SECRET_KEY_FALLBACKS (or restore MAILHUB_ENCRYPTION_KEY), "
            "or type it again in the admin."
        ) from None


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code sees the plaintext. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return secret_decrypt(token=value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return secret_encrypt(plaintext=value)
