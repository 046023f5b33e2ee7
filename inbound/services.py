"""Writes of the inbound gateway: check a recipient, store a message, post it into the chatter.

Two steps, so the SMTP answer is both durable and quick (RFC 5321 §6.1):

1. ``inbound_receive`` routes the message (headers only) and commits one ``InboundMail`` row per
   recipient, raw source included. Only after that commit may the listener answer ``250``.
2. ``inbound_process`` turns a stored row into its effect (a chatter post, a new record, a bounce
   hand-off) in its own transaction. The listener runs it right after step 1; if it fails the
   row stays unprocessed and ``inbound_process_pending`` retries it (at listener start and every
   minute), so an accepted message is never lost.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from chatter.content import email_text_to_html, sanitize_email_html
from chatter.models import Contact, Follower, Message, MessageKind, Notification
from chatter.reply_address import ReplyRef, parse_reply_address
from chatter.selectors import message_recipients
from chatter.services import (
    attachment_create,
    contact_get_or_create,
    message_post,
    notifications_create,
)
from mailhub.bulk import rows_insert
from mailhub.logfiles import log_event
from outbox.models import OutgoingMail
from outbox.verp import parse_bounce_address

from . import bounces, unsubscribe
from .dsn import bounce_like
from .models import POSTING_DECISIONS, Alias, AliasDomain, ContactSecurity, Decision, InboundMail
from .parsing import HeaderFacts, body_parse, header_facts, message_object, normalize_address
from .routing import (
    AliasConfig,
    DomainConfig,
    MailFacts,
    RcptDecision,
    RcptKind,
    RecipientFacts,
    RoutingDecision,
    data_reply,
    rcpt_decide,
    route_recipient,
    split_address,
)

logger = logging.getLogger("mailhub.inbound")
MAX_PROCESS_ATTEMPTS = 5
BOUNCE_SNIFF_BYTES = 128 * 1024


# --- RCPT ---------------------------------------------------------------------------------------


def rcpt_check(*, address: str) -> RcptDecision:
    """Is ``address`` one of ours (alias, catchall, bounce or signed VERP address)?"""
    local, domain_name = split_address(address)
    domain = AliasDomain.objects.filter(domain__iexact=domain_name).first() if local else None
    domain_config = alias_config = None
    verp_valid = False
    reply_ref: ReplyRef | None = None
    # Only routed while an app handles the tokens (campaigns registers itself at start-up).
    unsubscribe_local = (
        unsubscribe.UNSUBSCRIBE_LOCAL if unsubscribe.unsubscribe_handler() is not None else ""
    )
    if domain is not None:
        domain_config = DomainConfig(domain.domain, domain.catchall_local, domain.bounce_local)
        alias = Alias.objects.filter(domain=domain, local_part__iexact=local).first()
        if alias is not None:
            alias_config = AliasConfig(
                pk=alias.pk,
                local_part=alias.local_part,
                model_id=alias.model_id,
                record_id=alias.record_id,
                contact_security=alias.contact_security,
                active=alias.active,
            )
        verp_valid = parse_bounce_address(address, bounce_local=domain.bounce_local) is not None
        reply_ref = parse_reply_address(address)
    decision = rcpt_decide(
        address=address,
        domain=domain_config,
        alias=alias_config,
        verp_valid=verp_valid,
        unsubscribe_local=unsubscribe_local,
        reply_ref=reply_ref,
    )
    if not decision.accepted:
        log_event(
            logger,
            "inbound.refused",
            rcpt=address,
            code=decision.reply[:3],
            reason=decision.reply[4:],
        )
    return decision


# --- DATA, step 1: route and store ----------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveResult:
    reply: str
    to_process: list[int]


def _own_message_id(message_id: str) -> bool:
    return message_id.rstrip(">").lower().endswith("@" + settings.MAILHUB_MAIL_DOMAIN.lower())


@dataclass(frozen=True)
class _Answered:
    """The chatter message a reply answers, and who it was sent to."""

    target: tuple[int, int]  # (content type id, record id) of its thread
    message_pk: int
    recipient_email: str = ""  # a reply address names one recipient; Message-IDs do not


def _reply_target(facts: HeaderFacts) -> _Answered | None:
    """The newest message we sent that this mail answers, if any.

    In-Reply-To first (the direct parent), then References. Every notification threads under
    a chatter Message-ID; the outbox's per-recipient copies are the second source.
    """
    for ids in (facts.in_reply_to, facts.references):
        if not ids:
            continue
        row = (
            Message.objects.filter(message_id__in=ids)
            .order_by("-id")
            .values_list("content_type_id", "object_id", "pk")
            .first()
        )
        if not row:
            row = (
                OutgoingMail.objects.filter(message_id__in=ids, chatter_message__isnull=False)
                .order_by("-id")
                .values_list(
                    "chatter_message__content_type_id",
                    "chatter_message__object_id",
                    "chatter_message_id",
                )
                .first()
            )
        if row:
            return _Answered(target=(row[0], row[1]), message_pk=row[2])
    return None


def _reply_address_target(ref: ReplyRef) -> _Answered | None:
    """The thread and the recipient a signed reply address names (None: message deleted)."""
    row = (
        Notification.objects.filter(pk=ref.notification_id, message_id=ref.message_id)
        .values_list("message__content_type_id", "message__object_id", "contact__email")
        .first()
    )
    if row:
        return _Answered(target=(row[0], row[1]), message_pk=ref.message_id, recipient_email=row[2])
    row = Message.objects.filter(pk=ref.message_id).values_list("content_type_id", "object_id")
    thread = row.first()
    return _Answered(target=thread, message_pk=ref.message_id) if thread else None


# Recipients a reply can be addressed to (a bounce or unsubscribe address is never a reply).
_REPLY_KINDS = (RcptKind.ALIAS, RcptKind.CATCHALL, RcptKind.REPLY)
_STRICTNESS = [ContactSecurity.EVERYONE, ContactSecurity.CONTACTS, ContactSecurity.FOLLOWERS]


def _reply_facts(*, answered: _Answered, sender: str, alias: AliasConfig | None) -> dict:
    """What the contact check of a reply needs (``routing._route_reply``).

    The policy is the strictest of the aliases in front of the thread: those posting to its
    record, and the alias the reply was sent to when it serves the same model (Odoo checks the
    destination alias against the thread's record, odoo-behaviour §4.3).
    """
    model_id, record_id = answered.target
    policies = set(
        Alias.objects.filter(active=True, model_id=model_id, record_id=record_id).values_list(
            "contact_security", flat=True
        )
    )
    if alias is not None and alias.model_id == model_id:
        policies.add(alias.contact_security)
    policy = max(policies, key=_STRICTNESS.index, default=ContactSecurity.EVERYONE)
    if not sender:
        return {"reply_policy": policy}
    if answered.recipient_email:
        was_sent = answered.recipient_email == sender
    else:
        was_sent = (
            Notification.objects.filter(
                message_id=answered.message_pk, contact__email=sender
            ).exists()
            or Message.objects.filter(pk=answered.message_pk, author__email=sender).exists()
        )
    return {
        "reply_policy": policy,
        "sender_was_sent": was_sent,
        "sender_follows": Follower.objects.filter(
            content_type_id=model_id, object_id=record_id, contact__email=sender
        ).exists(),
        "sender_is_contact": policy == ContactSecurity.CONTACTS
        and Contact.objects.filter(email=sender).exists(),
    }


def _unsubscribe_valid(subject: str) -> bool:
    """Checked at DATA, so a forged token is refused to the sender's server, not dropped."""
    handler = unsubscribe.unsubscribe_handler()
    token = unsubscribe.token_from_subject(subject)
    return handler is not None and bool(token) and handler.check(token)


def _unsubscribe_apply(row: InboundMail) -> str:
    handler = unsubscribe.unsubscribe_handler()
    if handler is None:
        # Accepted while a handler was registered: keep the row pending, the sweep retries.
        raise RuntimeError("no unsubscribe handler registered; is the campaigns app installed?")
    if handler.apply(unsubscribe.token_from_subject(row.subject)):
        return "unsubscribed"
    return "unsubscribe token no longer valid (campaign or contact deleted)"


def _record_exists(model_id: int, record_id: int) -> bool:
    model = ContentType.objects.get_for_id(model_id).model_class()
    return model is not None and model._default_manager.filter(pk=record_id).exists()


@dataclass(frozen=True)
class Delivery:
    """One message as the listener received it, with the RCPT decisions of its recipients."""

    peer: str
    mail_from: str
    rcpts: dict[str, RcptDecision]
    raw: bytes


def _group_reads(*, message_ids: list[str], senders: list[str], since: dt.datetime) -> list:
    """The reads routing needs for a group, in one round trip (a ``UNION ALL``).

    Rows ``("posted", message_id, "", 0)``: already a chatter message; ``("seen", message_id,
    rcpt, 0)``: already accepted for that recipient; ``("created", sender, "", n)``: records
    created through aliases since ``since``; ``("staff", sender, "", 0)``: the address of an
    internal user; ``("domain", domain, "", 0)``: one of our alias domains. Separate ORM queries
    cost several times more interpreter time than the database spends on them, and the listener
    is bound by the interpreter.
    """
    messages, inbound = Message._meta.db_table, InboundMail._meta.db_table
    users, contacts = get_user_model()._meta.db_table, Contact._meta.db_table

    def marks(values: list) -> str:
        return ", ".join(["%s"] * len(values))

    sql: list[str] = []
    params: list = []
    if message_ids:
        sql += [
            f"SELECT 'posted', message_id, '', 0 FROM {messages} "
            f"WHERE message_id IN ({marks(message_ids)})",
            f"SELECT 'seen', message_id, rcpt_to, 0 FROM {inbound} "
            f"WHERE message_id IN ({marks(message_ids)}) AND decision <> %s",
        ]
        params += [*message_ids, *message_ids, Decision.REFUSED]
    if senders:
        sql.append(
            f"SELECT 'created', sender, '', COUNT(*) FROM {inbound} WHERE sender IN "
            f"({marks(senders)}) AND decision = %s AND received_at >= %s GROUP BY sender"
        )
        params += [*senders, Decision.ALIAS_NEW, connection.ops.adapt_datetimefield_value(since)]
        sql += [
            f"SELECT 'staff', LOWER(email), '', 0 FROM {users} "
            f"WHERE is_staff = %s AND LOWER(email) IN ({marks(senders)})",
            f"SELECT 'staff', c.email, '', 0 FROM {contacts} c JOIN {users} u ON u.id = c.user_id "
            f"WHERE u.is_staff = %s AND c.email IN ({marks(senders)})",
            f"SELECT 'domain', LOWER(domain), '', 0 FROM {AliasDomain._meta.db_table}",
        ]
        params += [True, *senders, True, *senders]
    if not sql:
        return []
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(sql), params)
        return cursor.fetchall()


class _Lookups:
    """The reads routing needs, done once for a group of messages (one query per group).

    Updated as decisions are made, so two messages of one group see each other (the same
    message twice, or one sender's alias mail counted by the loop protection).
    """

    def __init__(self, facts: list[HeaderFacts], senders: list[str]) -> None:
        since = timezone.now() - dt.timedelta(minutes=settings.MAILHUB_LOOP_MINUTES)
        self.posted: set[str] = set()
        self.seen: set[tuple[str, str]] = set()
        self._created: dict[str, int] = {}
        self._staff: set[str] = set()
        self._domains: set[str] = {settings.MAILHUB_MAIL_DOMAIN.lower()}
        rows = _group_reads(
            message_ids=sorted({f.message_id for f in facts}),
            senders=sorted({s for s in senders if s}),
            since=since,
        )
        for kind, key, rcpt, count in rows:
            if kind == "posted":
                self.posted.add(key)
            elif kind == "seen":
                self.seen.add((key, rcpt))
            elif kind == "staff":
                self._staff.add(key)
            elif kind == "domain":
                self._domains.add(key)
            else:
                self._created[key] = count

    def created_recently(self, sender: str) -> int:
        return self._created.get(sender, 0)

    def claims_ours(self, sender: str) -> bool:
        """A From: of one of our internal users, or at one of our own domains."""
        return sender in self._staff or sender.rpartition("@")[2] in self._domains

    def record(self, *, message_id: str, rcpt: str, decision: RoutingDecision, sender: str):
        if decision.accepted:
            self.seen.add((message_id, rcpt))
        if decision.decision == Decision.ALIAS_NEW:
            self._created[sender] = self._created.get(sender, 0) + 1


def _catchall_bounce_like(delivery: Delivery, facts: HeaderFacts, *, is_reply: bool) -> bool:
    """Is mail to the catchall or abuse@ that is not a reply a bounce or report?

    The message is read whole only when it matters (not for aliases, replies or DSNs).
    """
    to_catchall = any(
        r.kind in (None, RcptKind.CATCHALL, RcptKind.FEEDBACK) for r in delivery.rcpts.values()
    )
    if not to_catchall or facts.is_dsn or is_reply:
        return False
    if facts.from_mailer_daemon:
        return True
    null_sender = delivery.mail_from.strip() in ("", "<>")
    if null_sender:
        return True
    # This runs before the 250: flufl.bounce's heuristics read only the head of the message
    # (a bounce's own words come first), so a large mail costs no more than a small one.
    return bounce_like(message_object(delivery.raw[:BOUNCE_SNIFF_BYTES]))


def _route_delivery(
    delivery: Delivery, facts: HeaderFacts, lookups: _Lookups
) -> tuple[list[InboundMail], list[RoutingDecision]]:
    """The decision and the row to store for every recipient of one message."""
    sender = facts.from_email or normalize_address(delivery.mail_from)
    already_posted = facts.message_id in lookups.posted
    answered_by_ids: _Answered | None = None
    if not (already_posted or facts.is_dsn) and (facts.in_reply_to or facts.references):
        answered_by_ids = _reply_target(facts)
    mail = MailFacts(
        message_id=facts.message_id,
        sender=sender,
        automatic=facts.automatic or _own_message_id(facts.message_id),
        is_dsn=facts.is_dsn,
        claims_ours=bool(sender) and lookups.claims_ours(sender),
        bounce_like=_catchall_bounce_like(delivery, facts, is_reply=answered_by_ids is not None),
    )
    rows: list[InboundMail] = []
    decisions: list[RoutingDecision] = []
    for address, rcpt in delivery.rcpts.items():
        alias = rcpt.alias
        extra: dict = {}
        answered = answered_by_ids
        if rcpt.reply_ref is not None and not (already_posted or mail.is_dsn):
            # The signed address names thread and recipient: it wins over the headers, which
            # a relay may have rewritten.
            answered = _reply_address_target(rcpt.reply_ref)
        reply_target = answered.target if answered else None
        if rcpt.kind == RcptKind.UNSUBSCRIBE:
            extra["unsubscribe_valid"] = _unsubscribe_valid(facts.subject)
        if answered is not None and rcpt.kind in _REPLY_KINDS:
            extra.update(_reply_facts(answered=answered, sender=sender, alias=alias))
        if alias is not None and reply_target is None:
            if alias.record_id:
                extra["alias_record_exists"] = _record_exists(alias.model_id, alias.record_id)
            if sender and alias.contact_security == ContactSecurity.CONTACTS:
                extra["sender_is_contact"] = Contact.objects.filter(email=sender).exists()
            if sender and alias.record_id:
                extra["sender_follows"] = Follower.objects.filter(
                    content_type_id=alias.model_id,
                    object_id=alias.record_id,
                    contact__email=sender,
                ).exists()
            elif sender:
                extra["records_created_recently"] = lookups.created_recently(sender)
        decision = route_recipient(
            mail=mail,
            rcpt=RecipientFacts(
                address=address,
                kind=rcpt.kind or RcptKind.CATCHALL,
                alias=alias,
                duplicate=already_posted or (facts.message_id, address) in lookups.seen,
                reply_target=reply_target,
                **extra,
            ),
            loop_threshold=settings.MAILHUB_LOOP_THRESHOLD,
            loop_minutes=settings.MAILHUB_LOOP_MINUTES,
        )
        lookups.record(message_id=facts.message_id, rcpt=address, decision=decision, sender=sender)
        target = decision.target
        record_type_id = target[0] if target else None
        creates = Decision.ALIAS_NEW in (decision.decision, decision.held_as)
        if creates and alias is not None:
            record_type_id = alias.model_id
        decisions.append(decision)
        rows.append(
            InboundMail(
                peer=delivery.peer[:100],
                mail_from=delivery.mail_from[:998],
                rcpt_to=address[:998],
                message_id=facts.message_id,
                subject=facts.subject,
                # A refused message stays the sender's responsibility: keep only the trail.
                raw=delivery.raw if decision.accepted else b"",
                decision=decision.decision,
                code=decision.code,
                reason=decision.reason,
                sender=sender,
                automatic=mail.automatic,
                record_type_id=record_type_id,
                record_id=target[1] if target else None,
                held_as=decision.held_as or "",
                # Held mail has nothing to process until staff release it.
                processed_at=None
                if decision.accepted and decision.decision != Decision.HELD
                else timezone.now(),
            )
        )
    return rows, decisions


def inbound_receive_many(*, deliveries: list[Delivery]) -> list[ReceiveResult | Exception]:
    """Route and store several messages in one transaction (group commit under load).

    Returns one result per delivery. If the group cannot be stored, each message is tried
    alone, so one bad message costs the others nothing; a message that still fails gets its
    exception (the listener answers ``451`` for it). A single delivery's error is raised.
    """
    facts = [header_facts(d.raw, null_sender=d.mail_from.strip() in ("", "<>")) for d in deliveries]
    try:
        lookups = _Lookups(
            facts,
            [
                f.from_email or normalize_address(d.mail_from)
                for f, d in zip(facts, deliveries, strict=True)
            ],
        )
        routed = [_route_delivery(d, f, lookups) for d, f in zip(deliveries, facts, strict=True)]
        rows_insert([row for rows, _ in routed for row in rows])  # one statement: atomic
    except Exception:
        if len(deliveries) == 1:
            raise
        return [_receive_alone(d) for d in deliveries]
    results = []
    for f, (rows, decisions) in zip(facts, routed, strict=True):
        for row, decision in zip(rows, decisions, strict=True):
            log_event(
                logger,
                "inbound.accepted" if decision.accepted else "inbound.refused",
                message_id=f.message_id,
                rcpt=row.rcpt_to,
                code=decision.code,
                reason=f"{decision.decision}: {decision.reason}",
            )
        pending = [r.pk for r in rows if r.processed_at is None]
        queued = ",".join(str(pk) for pk in pending)
        results.append(
            ReceiveResult(reply=data_reply(decisions, queued_as=queued), to_process=pending)
        )
    return results


def _receive_alone(delivery: Delivery) -> ReceiveResult | Exception:
    try:
        return inbound_receive_many(deliveries=[delivery])[0]
    except Exception as exc:  # noqa: BLE001 - handed back: the listener answers 451 for it
        return exc


def inbound_receive(
    *, peer: str, mail_from: str, rcpts: dict[str, RcptDecision], raw: bytes
) -> ReceiveResult:
    """Route a message for each accepted recipient and commit what we decided.

    Returns the SMTP reply for the end of DATA and the rows that still have to be processed.
    Raises on database errors: the caller answers ``451`` and the client keeps the message.
    """
    delivery = Delivery(peer=peer, mail_from=mail_from, rcpts=rcpts, raw=raw)
    return inbound_receive_many(deliveries=[delivery])[0]


# --- DATA, step 2: post into the chatter --------------------------------------------------------


def cid_url(*, inbound_mail_id: int, content_id: str) -> str:
    return reverse("inbound:cid", args=[inbound_mail_id, quote(content_id, safe="@._-+$")])


def inbound_body(*, inbound_mail: InboundMail, allow_remote_images: bool = False) -> tuple:
    """(safe HTML body, remote images blocked?, parsed attachments) of a stored message."""
    parsed = body_parse(bytes(inbound_mail.raw))
    blocked = False
    if parsed.html.strip():
        html, blocked = sanitize_email_html(
            parsed.html,
            cid_url=lambda cid: cid_url(inbound_mail_id=inbound_mail.pk, content_id=cid),
            allow_remote_images=allow_remote_images,
        )
    else:
        html = email_text_to_html(parsed.text)
    return html, blocked, parsed.attachments


def _author(row: InboundMail, from_name: str) -> Contact | None:
    try:
        return contact_get_or_create(email=row.sender, name=from_name)
    except ValidationError:
        return None  # no usable address: the message is posted without an author


def _record_for(row: InboundMail, title: str):
    model = row.record_type.model_class() if row.record_type_id else None
    if model is None:
        raise LookupError(f"the record type of inbound mail {row.pk} no longer exists")
    if row.decision != Decision.ALIAS_NEW:
        return model._default_manager.get(pk=row.record_id)
    from records.models import Record
    from records.services import record_create

    title = (title or "(no subject)")[:255]
    if issubclass(model, Record):
        return record_create(model=model, title=title, created_by=None)
    fields = {f.name for f in model._meta.get_fields()}
    return model._default_manager.create(**({"title": title} if "title" in fields else {}))


def _post(row: InboundMail, body: tuple | None = None) -> Message:
    """Post ``row``; ``body`` is its ``inbound_body``, when it was read before the transaction."""
    raw = bytes(row.raw)
    facts = header_facts(raw, null_sender=row.mail_from.strip() in ("", "<>"))
    existing = Message.objects.filter(message_id=facts.message_id).first()
    record_key = (row.record_type_id, row.record_id)
    if existing is not None and (existing.content_type_id, existing.object_id) == record_key:
        return existing  # same message to two of our addresses, same thread: posted once
    record = _record_for(row, facts.subject)
    body, blocked, attachments = body if body is not None else inbound_body(inbound_mail=row)
    author = _author(row, facts.from_name)
    message_id = facts.message_id
    if existing is not None:
        # The same message to two aliases makes two records; Message-IDs are unique per post.
        local, _, domain = message_id.strip("<>").rpartition("@")
        message_id = f"<{local}.{row.pk}@{domain}>"
    message = message_post(
        record=record,
        author=author,
        body=body,
        subject=facts.subject,
        kind=MessageKind.EMAIL,
        in_reply_to=(facts.in_reply_to or [""])[-1],
        references=" ".join(facts.references),
        message_id=message_id,
        notify=False,
    )
    for part in attachments:
        attachment_create(
            message=message,
            content=part.content,
            filename=part.filename,
            content_type=part.content_type,
            content_id=part.content_id,
        )
    # Followers are notified once the attachments are on the message, so their copy has them.
    recipients = message_recipients(
        content_type=message.content_type,
        object_id=message.object_id,
        subtype=message.subtype,
        mentions=(),
        author=author,
    )
    if row.automatic:
        # An auto-reply, bulk mail or bounce-like message never makes us mail customers
        # (spec §4 Loops); staff still see it in their inbox or mail.
        recipients = [c for c in recipients if c.is_internal]
    if recipients:
        notifications_create(message=message, recipients=recipients, automatic=row.automatic)
    row.record_type_id = message.content_type_id
    row.record_id = message.object_id
    row.remote_images = blocked
    return message


_POSTED = (Decision.REPLY, Decision.ALIAS_NEW, Decision.ALIAS_POST)


def inbound_process(*, inbound_mail_id: int) -> str:
    """Apply the stored decision of one row; idempotent (a processed row is left alone).

    The body is parsed and sanitised before the transaction: that is the slow part of a post
    (bounded by the caps, up to a second for the worst input), and on SQLite a transaction
    holds the one write lock, so doing it inside made every other sender wait for its ``250``.
    """
    pending = (
        InboundMail.objects.filter(
            pk=inbound_mail_id, processed_at__isnull=True, decision__in=_POSTED
        )
        .only("pk", "raw")
        .first()
    )
    body = inbound_body(inbound_mail=pending) if pending is not None else None
    with transaction.atomic():
        row = (
            InboundMail.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=inbound_mail_id, processed_at__isnull=True)
            .select_related("record_type")
            .first()
        )
        if row is None:
            return "already processed"
        outcome = row.decision
        if row.decision == Decision.BOUNCE:
            outcome = bounces.bounce_process(
                inbound_mail=row, rcpt=row.rcpt_to, message=message_object(bytes(row.raw))
            )
            # The bounce decision, for Admin → Inbound mails.
            row.reason = f"{row.reason}; {outcome}"[:2000] if row.reason else outcome[:2000]
        elif row.decision == Decision.UNSUBSCRIBE:
            outcome = _unsubscribe_apply(row)
        elif row.decision in _POSTED:
            row.chatter_message = _post(row, body)
            if row.sender and not row.automatic:
                # Genuine mail from an address proves it works again (spec §5).
                bounces.contact_bounce_reset(email=row.sender)
        row.processed_at = timezone.now()
        row.error = ""
        row.save(
            update_fields=[
                "processed_at",
                "error",
                "reason",
                "chatter_message",
                "record_type",
                "record_id",
                "remote_images",
            ]
        )
    return str(outcome)


def inbound_process_many(*, ids: list[int]) -> None:
    """Process rows one by one; a failure is recorded on its row and retried later."""
    for pk in ids:
        try:
            inbound_process(inbound_mail_id=pk)
        except Exception as exc:  # noqa: BLE001 - the row keeps the error; the sweep retries
            logger.exception("inbound mail %s could not be processed", pk)
            InboundMail.objects.filter(pk=pk, processed_at__isnull=True).update(
                attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
            )


def inbound_process_pending(*, older_than_seconds: int = 30, limit: int = 200) -> int:
    """Retry rows accepted but not yet processed (a crash or an error after the 250)."""
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    ids = list(
        InboundMail.objects.filter(
            processed_at__isnull=True,
            attempts__lt=MAX_PROCESS_ATTEMPTS,
            received_at__lte=cutoff,
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    inbound_process_many(ids=ids)
    return len(ids)


# --- Review of held mail --------------------------------------------------------------------------


class NotHeld(Exception):
    """The mail is not (or no longer) held: someone else released or discarded it."""


def _reviewer(user: AbstractBaseUser | None) -> str:
    return user.get_username() if user is not None else "a script"


def inbound_release(*, inbound_mail_id: int, by: AbstractBaseUser | None) -> str:
    """Post a held mail as it would have been posted (its followers notified, its author
    subscribed). A guarded update: two reviewers releasing at once post it once.
    """
    row = InboundMail.objects.filter(pk=inbound_mail_id, decision=Decision.HELD).first()
    if row is None or row.held_as not in POSTING_DECISIONS:
        raise NotHeld(f"inbound mail {inbound_mail_id} is not held for review")
    now = timezone.now()
    released = InboundMail.objects.filter(pk=row.pk, decision=Decision.HELD).update(
        decision=row.held_as,
        processed_at=None,
        reviewed_at=now,
        reviewed_by=by,
        reason=f"{row.reason}; released by {_reviewer(by)}"[:2000],
    )
    if not released:
        raise NotHeld(f"inbound mail {inbound_mail_id} is not held for review")
    log_event(logger, "inbound.released", inbound_mail=row.pk, by=_reviewer(by))
    # Posted now; if that fails the row is unprocessed and the sweep retries it.
    inbound_process_many(ids=[row.pk])
    return str(row.held_as)


def inbound_discard(*, inbound_mail_id: int, by: AbstractBaseUser | None) -> None:
    """Never post a held mail; the row and its raw source stay as the trail."""
    row = InboundMail.objects.filter(pk=inbound_mail_id, decision=Decision.HELD).first()
    discarded = (
        InboundMail.objects.filter(pk=inbound_mail_id, decision=Decision.HELD).update(
            decision=Decision.DISCARDED,
            reviewed_at=timezone.now(),
            reviewed_by=by,
            reason=f"{row.reason}; discarded by {_reviewer(by)}"[:2000],
        )
        if row is not None
        else 0
    )
    if not discarded:
        raise NotHeld(f"inbound mail {inbound_mail_id} is not held for review")
    log_event(logger, "inbound.discarded", inbound_mail=inbound_mail_id, by=_reviewer(by))
