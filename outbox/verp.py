"""VERP bounce addresses: ``bounce+<ref>.<signature>@<domain>``.

The reference names the exact recipient of an outgoing mail (a chatter notification ``n<id>``,
or an outbox recipient ``r<id>``) and survives the deletion of auto-deleted mail. The HMAC
signature makes the address unguessable, so a forged bounce cannot fail someone else's mail
(protocol.md §3.2).
"""

import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings

SIGNATURE_LENGTH = 20


@dataclass(frozen=True)
class VerpRef:
    kind: str  # "n" (notification) or "r" (MailRecipient)
    pk: int


_keyed: tuple[str, "hmac.HMAC | None"] = ("", None)


def _sign(ref: str) -> str:
    # The keyed state is computed once per secret and copied: a batch signs every recipient.
    global _keyed
    if _keyed[0] != settings.SECRET_KEY or _keyed[1] is None:
        key = f"mailhub-verp:{settings.SECRET_KEY}".encode()
        _keyed = (settings.SECRET_KEY, hmac.new(key, digestmod=hashlib.sha256))
    signer = _keyed[1].copy()
    signer.update(ref.encode())
    return signer.hexdigest()[:SIGNATURE_LENGTH]


def bounce_address(*, ref: VerpRef, bounce_local: str = "bounce", domain: str = "") -> str:
    domain = domain or settings.MAILHUB_MAIL_DOMAIN
    token = f"{ref.kind}{ref.pk}"
    return f"{bounce_local}+{token}.{_sign(token)}@{domain}"


def parse_bounce_address(address: str, *, bounce_local: str = "bounce") -> VerpRef | None:
    """The reference in a VERP address, or None when it is not one of ours (or forged)."""
    local = address.strip("<>").rpartition("@")[0].lower()
    prefix = f"{bounce_local.lower()}+"
    if not local.startswith(prefix):
        return None
    token, _, signature = local[len(prefix) :].partition(".")
    if len(token) < 2 or token[0] not in "nr" or not token[1:].isdigit():
        return None
    if not hmac.compare_digest(signature, _sign(token)):
        return None
    return VerpRef(kind=token[0], pk=int(token[1:]))


def recipient_bounce_address(*, notification_id: int | None, recipient_id: int) -> str:
    """The Return-Path a recipient's copy leaves with: its notification's, else its own row's."""
    ref = VerpRef("n", notification_id) if notification_id else VerpRef("r", recipient_id)
    return bounce_address(ref=ref)
