"""Signed per-recipient reply addresses: ``reply+<message>.<notification>.<signature>@<domain>``.

Each recipient's copy of a notification carries its own address as ``Reply-To``. The address
names the thread (the chatter message) and the recipient (the notification), so a reply routes
to the right record even when a relay rewrites our Message-ID and drops References (Amazon SES
replaces it; Gmail and Outlook mangle References), and the gateway knows whom the mail was sent
to. The HMAC signature (``mailhub.signing``, as for VERP addresses) makes the address
unguessable: knowing a record or notification number is not enough to write into a thread.

Pure: no database. ``inbound`` checks addresses at RCPT; ``chatter.rendering`` makes them.
"""

from dataclasses import dataclass

from mailhub.signing import signature, signature_valid

REPLY_LOCAL = "reply"
_PURPOSE = "reply-address"


@dataclass(frozen=True)
class ReplyRef:
    message_id: int  # chatter Message pk: the thread
    notification_id: int  # chatter Notification pk: the recipient


def reply_address(*, ref: ReplyRef, domain: str) -> str:
    token = f"{ref.message_id}.{ref.notification_id}"
    return f"{REPLY_LOCAL}+{token}.{signature(purpose=_PURPOSE, text=token)}@{domain}"


def is_reply_local(local: str) -> bool:
    """Whether a local part claims to be a reply address (signed or not)."""
    return local.lower().startswith(REPLY_LOCAL + "+")


def parse_reply_address(address: str) -> ReplyRef | None:
    """The reference in a reply address, or None when it is not one of ours (or forged)."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    if not is_reply_local(local):
        return None
    message, _, rest = local[len(REPLY_LOCAL) + 1 :].partition(".")
    notification, _, candidate = rest.partition(".")
    if not (message.isascii() and message.isdigit() and notification.isascii()):
        return None
    if not notification.isdigit() or len(message) > 18 or len(notification) > 18:
        return None
    if not signature_valid(purpose=_PURPOSE, text=f"{message}.{notification}", candidate=candidate):
        return None
    return ReplyRef(message_id=int(message), notification_id=int(notification))
