"""Short HMAC signatures for addresses we hand out (VERP-style reply addresses).

One key per purpose, derived from ``SECRET_KEY``: a signature made for one kind of address is
worthless for another. The keyed state is computed once per (purpose, secret) and copied, as
``outbox.verp`` does, because a post signs one address per recipient.
"""

import hashlib
import hmac

from django.conf import settings

_keyed: dict[str, tuple[str, "hmac.HMAC"]] = {}


def signature(*, purpose: str, text: str, length: int = 20) -> str:
    """The first ``length`` hex digits of HMAC-SHA256(``purpose``-key, ``text``), lower-case."""
    cached = _keyed.get(purpose)
    if cached is None or cached[0] != settings.SECRET_KEY:
        key = f"mailhub-{purpose}:{settings.SECRET_KEY}".encode()
        cached = (settings.SECRET_KEY, hmac.new(key, digestmod=hashlib.sha256))
        _keyed[purpose] = cached
    signer = cached[1].copy()
    signer.update(text.encode())
    return signer.hexdigest()[:length]


def signature_valid(*, purpose: str, text: str, candidate: str, length: int = 20) -> bool:
    """Compare in constant time, so the signature cannot be guessed digit by digit."""
    return hmac.compare_digest(candidate, signature(purpose=purpose, text=text, length=length))
