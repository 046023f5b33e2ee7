"""The routing decision of an inbound mail: pure functions, no database, no network.

``rcpt_decide`` answers the RCPT command from the alias configuration; ``route_recipient``
decides what happens to one recipient at the end of DATA from facts that ``inbound.services``
looked up; ``data_reply`` turns the per-recipient decisions into the single reply SMTP allows
after the final dot (RFC 5321 §4.1.1.4: no partial failure at DATA).

Order at DATA (spec §4): duplicate → bounce → unsubscribe → reply (contact security of the
record's aliases, then: is the sender someone the thread was sent to?) → alias (contact security,
loop limit) → catchall mail that matched nothing is refused. Mail that would be posted is held
for review instead when it cannot be trusted: a reply from an address the thread was never sent
to, or a From: claiming to be one of us (no sender authentication yet).
"""

from dataclasses import dataclass
from enum import StrEnum

from chatter.reply_address import ReplyRef, is_reply_local

from .models import ContactSecurity, Decision

REPLY_TEMPFAIL = "451 4.3.0 Temporary local problem, please try again later"


class RcptKind(StrEnum):
    ALIAS = "alias"
    CATCHALL = "catchall"
    BOUNCE = "bounce"  # the domain's bounce address or a signed VERP address
    UNSUBSCRIBE = "unsubscribe"  # the List-Unsubscribe mailto (``inbound.unsubscribe``)
    POSTMASTER = "postmaster"  # RFC 5321 §4.5.1: every domain takes mail for postmaster@
    REPLY = "reply"  # a signed per-recipient reply address (``chatter.reply_address``)
    FEEDBACK = "feedback"  # abuse@ / fbl@: feedback-loop reports (RFC 5965) and bounces


# Where mailbox providers' feedback loops report (RFC 2142 §2 abuse@; fbl@ by convention).
FEEDBACK_LOCALS = ("abuse", "fbl")


@dataclass(frozen=True)
class DomainConfig:
    domain: str
    catchall_local: str
    bounce_local: str


@dataclass(frozen=True)
class AliasConfig:
    pk: int
    local_part: str
    model_id: int  # content type of the records it creates or posts to
    record_id: int | None
    contact_security: str
    active: bool = True


@dataclass(frozen=True)
class RcptDecision:
    reply: str
    kind: RcptKind | None = None
    alias: AliasConfig | None = None
    reply_ref: ReplyRef | None = None

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")


def split_address(address: str) -> tuple[str, str]:
    """``Local@Domain`` → (``local``, ``domain``), lower-cased; ("", "") when not an address."""
    address = (address or "").strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "", ""
    return local.lower(), domain.lower().rstrip(".")


def rcpt_decide(
    *,
    address: str,
    domain: DomainConfig | None,
    alias: AliasConfig | None,
    verp_valid: bool = False,
    unsubscribe_local: str = "",
    reply_ref: ReplyRef | None = None,
) -> RcptDecision:
    """Accept an alias, catchall or bounce address of one of our domains; refuse the rest.

    ``domain`` is the alias domain of the address (None when it is not ours), ``alias`` the alias
    with that local part, ``verp_valid`` whether the address is a correctly signed VERP address,
    ``unsubscribe_local`` the local part of the mailto unsubscribe address ("" when unhandled),
    ``reply_ref`` what a correctly signed reply address names (None when unsigned or forged).
    """
    local, _ = split_address(address)
    if not local:
        return RcptDecision(f"553 5.1.3 <{address}>: bad address syntax")
    if domain is None:
        # Never an open relay: we only take mail for our own alias domains.
        return RcptDecision(f"550 5.7.1 <{address}>: relay access denied, not a domain of ours")
    if unsubscribe_local and local == unsubscribe_local.lower():
        # Before the aliases: every campaign mail advertises this address, so an alias of the
        # same name must not swallow the unsubscribe requests.
        return RcptDecision("250 2.1.5 OK", RcptKind.UNSUBSCRIBE)
    if is_reply_local(local):
        # Only with a valid signature: a forged or mistyped reply address is nobody's mailbox.
        if reply_ref is None:
            return RcptDecision(f"550 5.1.1 <{address}>: mailbox unavailable")
        return RcptDecision("250 2.1.5 OK", RcptKind.REPLY, reply_ref=reply_ref)
    if alias is not None and alias.active:
        return RcptDecision("250 2.1.5 OK", RcptKind.ALIAS, alias)
    if local == "postmaster":
        return RcptDecision("250 2.1.5 OK", RcptKind.POSTMASTER)
    if local == domain.catchall_local.lower():
        return RcptDecision("250 2.1.5 OK", RcptKind.CATCHALL)
    if local == domain.bounce_local.lower() or verp_valid:
        return RcptDecision("250 2.1.5 OK", RcptKind.BOUNCE)
    if local in FEEDBACK_LOCALS:
        return RcptDecision("250 2.1.5 OK", RcptKind.FEEDBACK)
    return RcptDecision(f"550 5.1.1 <{address}>: mailbox unavailable")


def too_many_recipients(*, accepted: int, limit: int) -> str | None:
    """RFC 5321 §4.5.3.1.8: at least 100 recipients must be taken; past the limit, 452."""
    if accepted >= max(limit, 100):
        return "452 4.5.3 Too many recipients, send the rest in another transaction"
    return None


@dataclass(frozen=True)
class MailFacts:
    """Facts about the message, the same for every recipient."""

    message_id: str
    sender: str  # From: address, else the envelope sender
    automatic: bool  # auto-submitted, bulk, null return path, or a Message-ID of ours
    is_dsn: bool  # multipart/report; report-type=delivery-status
    # The From: is one of our internal users or an address at one of our alias domains.
    claims_ours: bool = False
    # Any other bounce or feedback report (``inbound.dsn.bounce_like``); read for the catchall.
    bounce_like: bool = False


@dataclass(frozen=True)
class RecipientFacts:
    """What the services found out about one accepted recipient."""

    address: str
    kind: RcptKind
    alias: AliasConfig | None = None
    duplicate: bool = False
    reply_target: tuple[int, int] | None = None  # (content type id, record id) we sent from
    alias_record_exists: bool = False
    sender_is_contact: bool = False
    sender_follows: bool = False  # follows the record posted to (the alias's, or the thread's)
    # Replies: the strictest contact security of the aliases in front of the thread's record,
    # and whether the sender is someone the answered message (or reply address) was sent to.
    reply_policy: str = ContactSecurity.EVERYONE
    sender_was_sent: bool = False
    records_created_recently: int = 0
    unsubscribe_valid: bool = False  # the Subject carries a token the handler accepts


@dataclass(frozen=True)
class RoutingDecision:
    decision: Decision
    reply: str
    reason: str = ""
    target: tuple[int, int] | None = None  # record to post on; None with ALIAS_NEW
    notify_external: bool = False  # only posts notify; automatic mail never notifies customers
    held_as: Decision | None = None  # HELD: the post releasing it makes

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")

    @property
    def code(self) -> int:
        return int(self.reply[:3])


ACCEPT = "250 2.0.0 OK"


def _refuse(reply: str, reason: str) -> RoutingDecision:
    return RoutingDecision(Decision.REFUSED, reply, reason=reason)


def _hold(decision: RoutingDecision, reason: str) -> RoutingDecision:
    """Accept (the sender did nothing wrong we can prove) but post only when staff release it."""
    return RoutingDecision(
        Decision.HELD,
        ACCEPT,
        reason=f"held for review: {reason}",
        target=decision.target,
        notify_external=decision.notify_external,
        held_as=decision.decision,
    )


def _hold_if_ours(mail: MailFacts, decision: RoutingDecision) -> RoutingDecision:
    if mail.claims_ours:
        # Anyone can write our addresses into From:. Until sender authentication (SPF, DKIM,
        # DMARC) says otherwise, mail "from us" arriving from outside never speaks as us.
        return _hold(
            decision,
            f"From: {mail.sender} claims an internal user or one of our domains, and mail "
            "from outside is not authenticated; release it to post it as that sender",
        )
    return decision


def _contact_refusal(*, rcpt: RecipientFacts, policy: str) -> RoutingDecision | None:
    """The alias's contact security (odoo-behaviour §4.3), for new mail and replies alike."""
    if policy == ContactSecurity.CONTACTS and not rcpt.sender_is_contact:
        return _refuse(
            f"550 5.7.1 <{rcpt.address}>: only known contacts may write to this address",
            "restricted to known contacts",
        )
    if policy == ContactSecurity.FOLLOWERS and not rcpt.sender_follows:
        return _refuse(
            f"550 5.7.1 <{rcpt.address}>: only followers of the record may write to this address",
            "restricted to followers",
        )
    return None


def _route_reply(*, mail: MailFacts, rcpt: RecipientFacts) -> RoutingDecision:
    # Refused, not held: the record's owners chose who may write to it, and the sender's
    # server tells the sender at once (no mail of ours, no review queue to fill).
    refusal = _contact_refusal(rcpt=rcpt, policy=rcpt.reply_policy)
    if refusal is not None:
        return refusal
    decision = RoutingDecision(
        Decision.REPLY, ACCEPT, "reply to a message we sent", rcpt.reply_target, not mail.automatic
    )
    decision = _hold_if_ours(mail, decision)
    if decision.decision == Decision.REPLY and not (rcpt.sender_was_sent or rcpt.sender_follows):
        # Held, not refused: a leaked or forwarded token, but just as often a customer writing
        # from a second address. Posting would make them a follower able to read the thread.
        return _hold(
            decision,
            f"{mail.sender or 'the sender'} is neither a recipient of the message answered "
            "nor a follower of the record",
        )
    return decision


def route_recipient(
    *, mail: MailFacts, rcpt: RecipientFacts, loop_threshold: int, loop_minutes: int
) -> RoutingDecision:
    """What to do with the message for one recipient."""
    notify = not mail.automatic
    if rcpt.duplicate:
        return RoutingDecision(
            Decision.DUPLICATE, ACCEPT, "duplicate Message-ID, not posted again", None, False
        )
    if rcpt.kind == RcptKind.BOUNCE or mail.is_dsn:
        return RoutingDecision(Decision.BOUNCE, ACCEPT, "handed to bounce processing", None, False)
    if rcpt.kind == RcptKind.UNSUBSCRIBE:
        if not rcpt.unsubscribe_valid:
            return _refuse(
                f"550 5.7.1 <{rcpt.address}>: this unsubscribe request has no valid token; "
                "use the unsubscribe link in the mail you received, or send to this address "
                "with that mail's unsubscribe subject unchanged",
                "unsubscribe with a bad or missing token",
            )
        # Never notifies anyone: an unsubscribe, automatic or not, must not make us send mail.
        return RoutingDecision(
            Decision.UNSUBSCRIBE, ACCEPT, "unsubscribe requested by mail", None, False
        )
    if rcpt.kind == RcptKind.POSTMASTER:
        return RoutingDecision(
            Decision.POSTMASTER, ACCEPT, "mail to postmaster@, for the admins", None, False
        )
    if rcpt.reply_target is not None:
        return _route_reply(mail=mail, rcpt=rcpt)
    if rcpt.kind == RcptKind.REPLY:
        return _refuse(
            f"550 5.1.1 <{rcpt.address}>: mailbox unavailable (the conversation of this reply "
            "address no longer exists)",
            "reply address of a deleted message",
        )
    alias = rcpt.alias
    if rcpt.kind == RcptKind.FEEDBACK:
        if mail.bounce_like:
            return RoutingDecision(Decision.BOUNCE, ACCEPT, "report, handed to bounce processing")
        return _refuse(
            f"550 5.7.1 <{rcpt.address}>: this address only takes feedback reports "
            "(RFC 5965) and bounces; write to one of our aliases instead",
            "not a report",
        )
    if rcpt.kind == RcptKind.CATCHALL and mail.bounce_like:
        # Bounces to the catchall (MTAs that answer the From or Reply-To) are read too.
        return RoutingDecision(Decision.BOUNCE, ACCEPT, "bounce-like, handed to bounce processing")
    if rcpt.kind == RcptKind.CATCHALL or alias is None:
        return _refuse(
            f"550 5.1.1 <{rcpt.address}>: mailbox unavailable; this address only takes "
            "replies to our messages, write to one of our aliases instead",
            "catchall mail that is not a reply",
        )
    target = (alias.model_id, alias.record_id) if alias.record_id else None
    if alias.record_id and not rcpt.alias_record_exists:
        return _refuse(
            f"550 5.1.1 <{rcpt.address}>: mailbox unavailable (alias misconfigured)",
            "the alias's record no longer exists",
        )
    if alias.contact_security == ContactSecurity.FOLLOWERS and target is None:
        return _refuse(
            f"550 5.7.1 <{rcpt.address}>: alias misconfigured (followers only, no record)",
            "followers-only alias without a record",
        )
    refusal = _contact_refusal(rcpt=rcpt, policy=alias.contact_security)
    if refusal is not None:
        return refusal
    if target is not None:
        return _hold_if_ours(
            mail,
            RoutingDecision(
                Decision.ALIAS_POST, ACCEPT, "posted on the alias record", target, notify
            ),
        )
    if rcpt.records_created_recently >= loop_threshold:
        # Odoo's mail.gateway.loop.* rule: one sender creating this many records is a loop
        # (an auto-responder talking to us) or abuse.
        return _refuse(
            f"550 5.7.1 <{rcpt.address}>: {mail.sender or 'this sender'} created "
            f"{rcpt.records_created_recently} records in the last {loop_minutes} minutes; "
            "try again later or contact us directly",
            "loop protection",
        )
    return _hold_if_ours(
        mail, RoutingDecision(Decision.ALIAS_NEW, ACCEPT, "new record", None, notify)
    )


def data_reply(decisions: list[RoutingDecision], *, queued_as: str = "") -> str:
    """The one reply after the final dot: 250 if any recipient took the message.

    When every recipient refused it, the first refusal is the answer (the sender's server
    reports it; we generate no bounce). Refusals next to accepted recipients are kept on the
    stored rows (visible in the admin): SMTP cannot report them after DATA.
    """
    if not decisions:
        return "554 5.5.1 No valid recipients"
    if any(d.accepted for d in decisions):
        return f"{ACCEPT}: queued as {queued_as}" if queued_as else ACCEPT
    return decisions[0].reply
