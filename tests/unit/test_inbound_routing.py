"""The pure core of the gateway: RCPT decisions, the DATA routing order, parsing; no database.

Property-based tests feed generated and mutated messages to parsing and routing: nothing may
raise, whatever arrives from the network.
"""

import random
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatter.content import email_text_to_html, sanitize_email_html
from chatter.reply_address import ReplyRef
from inbound.models import ContactSecurity, Decision
from inbound.parsing import (
    body_parse,
    header_facts,
    header_section,
    message_ids,
    synthetic_message_id,
)
from inbound.routing import (
    AliasConfig,
    DomainConfig,
    MailFacts,
    RcptKind,
    RecipientFacts,
    data_reply,
    rcpt_decide,
    route_recipient,
    too_many_recipients,
)
from inbound.unsubscribe import token_from_subject

DOMAIN = DomainConfig("mailhub.test", "catchall", "bounce")
SUPPORT = AliasConfig(
    pk=1, local_part="support", model_id=7, record_id=None, contact_security="everyone"
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mail(**kw) -> MailFacts:
    return MailFacts(
        **{"message_id": "<a@b>", "sender": "c@d.test", "automatic": False, "is_dsn": False, **kw}
    )


def _route(mail=None, **rcpt):
    facts = RecipientFacts(**{"address": "support@mailhub.test", "kind": RcptKind.ALIAS, **rcpt})
    return route_recipient(mail=mail or _mail(), rcpt=facts, loop_threshold=20, loop_minutes=120)


# --- RCPT -----------------------------------------------------------------------------------------


def test_rcpt_decisions():
    assert rcpt_decide(address="x@other.test", domain=None, alias=None).reply.startswith(
        "550 5.7.1"
    )
    unknown = rcpt_decide(address="nobody@mailhub.test", domain=DOMAIN, alias=None)
    assert unknown.reply == "550 5.1.1 <nobody@mailhub.test>: mailbox unavailable"
    alias = rcpt_decide(address="support@mailhub.test", domain=DOMAIN, alias=SUPPORT)
    assert alias.accepted and alias.kind == RcptKind.ALIAS and alias.alias == SUPPORT
    inactive = AliasConfig(**{**SUPPORT.__dict__, "active": False})
    assert not rcpt_decide(address="support@mailhub.test", domain=DOMAIN, alias=inactive).accepted
    assert (
        rcpt_decide(address="Catchall@mailhub.test", domain=DOMAIN, alias=None).kind == "catchall"
    )
    assert rcpt_decide(address="bounce@mailhub.test", domain=DOMAIN, alias=None).kind == "bounce"
    verp = rcpt_decide(
        address="bounce+n1.x@mailhub.test", domain=DOMAIN, alias=None, verp_valid=True
    )
    assert verp.kind == RcptKind.BOUNCE
    assert rcpt_decide(address="no-at-sign", domain=DOMAIN, alias=None).reply.startswith("553")


def test_rcpt_takes_a_reply_address_only_when_signed():
    ref = ReplyRef(message_id=3, notification_id=4)
    signed = rcpt_decide(
        address="reply+3.4.x@mailhub.test", domain=DOMAIN, alias=None, reply_ref=ref
    )
    assert signed.accepted and signed.kind == RcptKind.REPLY and signed.reply_ref == ref
    forged = rcpt_decide(address="Reply+3.4.x@mailhub.test", domain=DOMAIN, alias=None)
    assert forged.reply == "550 5.1.1 <Reply+3.4.x@mailhub.test>: mailbox unavailable"


def test_recipient_limit_is_never_below_100():
    assert too_many_recipients(accepted=99, limit=100) is None
    assert too_many_recipients(accepted=100, limit=100).startswith("452 4.5.3")
    assert too_many_recipients(accepted=50, limit=10) is None, "RFC 5321 asks for 100 at least"


# --- DATA order -----------------------------------------------------------------------------------


def test_duplicate_wins_over_everything():
    decision = _route(_mail(is_dsn=True), duplicate=True, reply_target=(1, 2), alias=SUPPORT)
    assert decision.decision == Decision.DUPLICATE and decision.accepted


def test_bounce_wins_over_reply_and_alias():
    assert _route(kind=RcptKind.BOUNCE).decision == Decision.BOUNCE
    assert _route(_mail(is_dsn=True), alias=SUPPORT, reply_target=(1, 2)).decision == "bounce"


def test_reply_wins_over_alias_and_catchall():
    decision = _route(alias=SUPPORT, reply_target=(3, 4), sender_was_sent=True)
    assert (decision.decision, decision.target) == (Decision.REPLY, (3, 4))
    assert _route(kind=RcptKind.CATCHALL, reply_target=(3, 4), sender_follows=True).decision == (
        Decision.REPLY
    )


def test_a_reply_from_someone_the_thread_was_never_sent_to_is_held():
    # A leaked or forwarded Message-ID / reply address: accepted, kept, never posted.
    held = _route(kind=RcptKind.CATCHALL, reply_target=(3, 4))
    assert (held.decision, held.code, held.held_as, held.target) == (
        Decision.HELD,
        250,
        Decision.REPLY,
        (3, 4),
    )
    assert "neither a recipient" in held.reason


@pytest.mark.parametrize(
    "policy,facts,words",
    [
        (ContactSecurity.FOLLOWERS, {"sender_was_sent": True}, "only followers"),
        (ContactSecurity.CONTACTS, {"sender_follows": True}, "only known contacts"),
    ],
)
def test_the_contact_security_of_the_thread_applies_to_replies(policy, facts, words):
    refused = _route(kind=RcptKind.REPLY, reply_target=(3, 4), reply_policy=policy, **facts)
    assert refused.decision == Decision.REFUSED and refused.reply.startswith("550 5.7.1")
    assert words in refused.reply
    allowed = {"sender_follows": True, "sender_is_contact": True}
    assert _route(reply_target=(3, 4), reply_policy=policy, **allowed).decision == Decision.REPLY


def test_a_from_claiming_to_be_ours_is_held_whatever_the_route():
    ours = _mail(sender="admin@mailhub.test", claims_ours=True)
    routes = [
        _route(ours, alias=SUPPORT),
        _route(ours, reply_target=(3, 4), sender_follows=True),
        _route(ours, alias=AliasConfig(2, "printer", 7, 9, "everyone"), alias_record_exists=True),
    ]
    assert [(r.decision, r.held_as) for r in routes] == [
        (Decision.HELD, Decision.ALIAS_NEW),
        (Decision.HELD, Decision.REPLY),
        (Decision.HELD, Decision.ALIAS_POST),
    ]
    assert all("claims an internal user" in r.reason for r in routes)
    # What would be refused anyway stays refused; bounces are not posts.
    assert _route(ours, kind=RcptKind.CATCHALL).decision == Decision.REFUSED
    assert _route(ours, kind=RcptKind.BOUNCE).decision == Decision.BOUNCE


def test_a_reply_address_whose_message_is_gone_is_refused_550_511():
    gone = _route(kind=RcptKind.REPLY, address="reply+1.2.abc@mailhub.test")
    assert gone.decision == Decision.REFUSED and gone.reply.startswith("550 5.1.1")


def test_catchall_without_reply_is_refused_550_511():
    decision = _route(kind=RcptKind.CATCHALL, address="catchall@mailhub.test")
    assert decision.reply.startswith("550 5.1.1 <catchall@mailhub.test>")
    assert decision.decision == Decision.REFUSED


def test_bounce_like_mail_to_the_catchall_is_a_bounce_but_a_reply_stays_a_reply():
    catchall = {"address": "catchall@mailhub.test", "kind": RcptKind.CATCHALL}
    assert _route(_mail(bounce_like=True), **catchall).decision == Decision.BOUNCE
    assert _route(
        _mail(bounce_like=True), **catchall, reply_target=(3, 4), sender_was_sent=True
    ).decision == (Decision.REPLY)
    assert _route(_mail(), **catchall).code == 550


def test_abuse_and_fbl_take_reports_only():
    for local in ("abuse", "fbl", "ABUSE"):
        decision = rcpt_decide(address=f"{local}@mailhub.test", domain=DOMAIN, alias=None)
        assert (decision.accepted, decision.kind) == (True, RcptKind.FEEDBACK)
    # An alias of that name wins: the domain decided to read abuse@ itself.
    abuse_alias = AliasConfig(
        pk=2, local_part="abuse", model_id=7, record_id=None, contact_security="everyone"
    )
    assert (
        rcpt_decide(address="abuse@mailhub.test", domain=DOMAIN, alias=abuse_alias).kind
        == RcptKind.ALIAS
    )
    feedback = {"address": "abuse@mailhub.test", "kind": RcptKind.FEEDBACK}
    assert _route(_mail(bounce_like=True), **feedback).decision == Decision.BOUNCE
    assert _route(_mail(is_dsn=True), **feedback).decision == Decision.BOUNCE
    refused = _route(_mail(), **feedback)
    assert refused.code == 550 and "feedback reports" in refused.reply


def test_alias_creates_or_posts():
    assert _route(alias=SUPPORT).decision == Decision.ALIAS_NEW
    on_record = AliasConfig(**{**SUPPORT.__dict__, "record_id": 9})
    decision = _route(alias=on_record, alias_record_exists=True)
    assert (decision.decision, decision.target) == (Decision.ALIAS_POST, (7, 9))
    assert _route(alias=on_record).reply.startswith("550 5.1.1"), "its record is gone"


def test_contact_security():
    contacts = AliasConfig(**{**SUPPORT.__dict__, "contact_security": ContactSecurity.CONTACTS})
    refused = _route(alias=contacts)
    assert refused.reply.startswith("550 5.7.1") and "known contacts" in refused.reply
    assert _route(alias=contacts, sender_is_contact=True).accepted
    followers = AliasConfig(
        **{**SUPPORT.__dict__, "contact_security": ContactSecurity.FOLLOWERS, "record_id": 9}
    )
    assert "followers" in _route(alias=followers, alias_record_exists=True).reply
    assert _route(alias=followers, alias_record_exists=True, sender_follows=True).accepted
    no_record = AliasConfig(**{**SUPPORT.__dict__, "contact_security": ContactSecurity.FOLLOWERS})
    assert "misconfigured" in _route(alias=no_record).reply


def test_loop_threshold():
    assert _route(alias=SUPPORT, records_created_recently=19).accepted
    refused = _route(alias=SUPPORT, records_created_recently=20)
    assert refused.reply.startswith("550 5.7.1") and "120 minutes" in refused.reply


def test_automatic_mail_never_notifies_customers():
    assert not _route(_mail(automatic=True), alias=SUPPORT).notify_external
    assert not _route(_mail(automatic=True), reply_target=(1, 2)).notify_external
    assert _route(alias=SUPPORT).notify_external


def test_data_reply_is_250_when_any_recipient_took_it():
    ok, refused = _route(alias=SUPPORT), _route(kind=RcptKind.CATCHALL)
    assert data_reply([refused, ok], queued_as="5").startswith("250 2.0.0 OK: queued as 5")
    assert data_reply([refused]) == refused.reply
    assert data_reply([]).startswith("554")


# --- parsing --------------------------------------------------------------------------------------


def test_header_facts():
    raw = (
        b"From: =?utf-8?q?J=C3=B6rg?= <JOERG@Example.TEST>\r\nSubject: =?utf-8?b?SGFsbG8=?=\r\n"
        b"Message-ID: <x1@example.test>\r\nIn-Reply-To: <p@mailhub.test>\r\n"
        b"References: <a@b> <c@d>\r\nAuto-Submitted: auto-replied\r\n\r\nbody"
    )
    facts = header_facts(raw)
    assert (facts.from_name, facts.from_email, facts.subject) == (
        "Jörg",
        "joerg@example.test",
        "Hallo",
    )
    assert facts.message_id == "<x1@example.test>" and facts.in_reply_to == ["<p@mailhub.test>"]
    assert facts.references == ["<a@b>", "<c@d>"] and facts.automatic
    assert not header_facts(b"Auto-Submitted: no\r\n\r\n").automatic
    assert header_facts(b"Precedence: bulk\r\n\r\n").automatic
    assert header_facts(b"\r\n", null_sender=True).automatic
    assert header_facts(b"").message_id == synthetic_message_id(b"")


def test_raw_utf8_headers_are_read_as_utf8():
    # SMTPUTF8 senders (RFC 6532) put UTF-8 straight into the headers, with no encoded words.
    raw = "Subject: Grüße aus Zürich\r\nFrom: Jörg Müller <jorg@kunde.test>\r\n\r\nHallo".encode()
    facts = header_facts(raw)
    assert facts.subject == "Grüße aus Zürich"
    assert (facts.from_name, facts.from_email) == ("Jörg Müller", "jorg@kunde.test")
    # Latin-1 bytes from an old sender are still readable rather than replacement characters.
    assert header_facts(b"Subject: Caf\xe9 cr\xe8me\r\n\r\n").subject == "Café crème"


def test_message_ids_are_extracted_in_order():
    assert message_ids("<a@b>  junk <c@d>") == ["<a@b>", "<c@d>"]


# --- properties: nothing escapes ------------------------------------------------------------------

HEADER_NAMES = [
    "From",
    "To",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "Precedence",
    "Content-Disposition",
    "Content-ID",
]


def _seed_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@customer.test>"
    msg["Subject"] = "Hello"
    msg["Message-ID"] = "<seed@customer.test>"
    msg.set_content("plain text\n> quoted")
    msg.add_alternative("<p>html <img src='cid:i1'></p>", subtype="html")
    msg.add_attachment(
        b"\x00\x01data", maintype="application", subtype="octet-stream", filename="f"
    )
    return msg.as_bytes()


SEED = _seed_message()


@st.composite
def generated_messages(draw) -> bytes:
    headers = draw(
        st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.binary(max_size=80)), max_size=12)
    )
    body = draw(st.binary(max_size=600))
    return (
        b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
        + b"\r\n"
        + body
    )


@st.composite
def mutated_messages(draw) -> bytes:
    """The seed message with random byte flips, cuts, insertions and duplications."""
    data = bytearray(SEED)
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 30))):
        op = rng.choice(["flip", "cut", "insert", "dup"])
        at = rng.randrange(len(data) or 1)
        if op == "flip" and data:
            data[at] = rng.randrange(256)
        elif op == "cut":
            del data[at : at + rng.randrange(1, 200)]
        elif op == "insert":
            data[at:at] = rng.choice([b"\r\n", b"--", b"=?utf-8?b?", b"boundary=", b"\x00", b";"])
        else:
            data[at:at] = data[at : at + rng.randrange(1, 100)]
    return bytes(data)


@PROPERTY
@given(st.one_of(generated_messages(), mutated_messages(), st.binary(max_size=2000)))
def test_parsing_never_raises(raw):
    facts = header_facts(raw)
    assert facts.message_id.startswith("<") and len(facts.message_id) <= 998
    assert "\n" not in facts.subject and "\r" not in facts.subject
    body = body_parse(raw)
    html, _ = sanitize_email_html(body.html, cid_url=lambda c: f"/inbound/mail/1/cid/{c}")
    assert "<script" not in html.lower()
    assert "<script" not in email_text_to_html(body.text).lower()
    for attachment in body.attachments:
        assert "/" not in attachment.filename and "\\" not in attachment.filename


@PROPERTY
@given(st.one_of(generated_messages(), mutated_messages(), st.binary(max_size=2000)))
def test_the_header_section_holds_every_header_the_parser_finds(raw):
    def headers(data: bytes) -> list:
        return BytesHeaderParser(policy=compat32).parsebytes(data).items()

    assert headers(header_section(raw)) == headers(raw)


@PROPERTY
@given(
    raw=st.one_of(generated_messages(), mutated_messages()),
    kind=st.sampled_from(list(RcptKind)),
    duplicate=st.booleans(),
    reply=st.one_of(st.none(), st.tuples(st.integers(1, 9), st.integers(1, 9))),
    security=st.sampled_from(list(ContactSecurity)),
    record_id=st.one_of(st.none(), st.integers(1, 9)),
    flags=st.tuples(*[st.booleans()] * 5),
    created=st.integers(0, 40),
)
def test_routing_always_decides(raw, kind, duplicate, reply, security, record_id, flags, created):
    facts = header_facts(raw)
    alias = AliasConfig(1, "support", 7, record_id, security) if kind == RcptKind.ALIAS else None
    mail = MailFacts(facts.message_id, facts.from_email, facts.automatic, facts.is_dsn, flags[3])
    decision = route_recipient(
        mail=mail,
        rcpt=RecipientFacts(
            address="support@mailhub.test",
            kind=kind,
            alias=alias,
            duplicate=duplicate,
            reply_target=reply,
            alias_record_exists=flags[0],
            sender_is_contact=flags[1],
            sender_follows=flags[2],
            sender_was_sent=flags[4],
            reply_policy=security,
            records_created_recently=created,
        ),
        loop_threshold=20,
        loop_minutes=120,
    )
    assert decision.code in (250, 550)
    assert decision.accepted == (decision.decision != Decision.REFUSED)
    if Decision.REPLY in (decision.decision, decision.held_as):
        assert decision.target is not None
    if decision.decision == Decision.ALIAS_POST or decision.held_as == Decision.ALIAS_POST:
        assert decision.target is not None
    if decision.decision in (Decision.REPLY, Decision.ALIAS_POST, Decision.ALIAS_NEW):
        assert not mail.claims_ours, "mail claiming to be ours is never posted unreviewed"
    assert (decision.decision == Decision.HELD) == (decision.held_as is not None)
    if facts.automatic:
        assert not decision.notify_external


# --- the List-Unsubscribe mailto ----------------------------------------------------------------


def test_unsubscribe_address_is_ours_only_on_our_domains_and_only_when_handled():
    on = rcpt_decide(
        address="Unsubscribe@mailhub.test",
        domain=DOMAIN,
        alias=None,
        unsubscribe_local="unsubscribe",
    )
    assert on.accepted and on.kind == RcptKind.UNSUBSCRIBE
    # An alias of the same name does not swallow the requests every campaign mail points to.
    same_name = AliasConfig(**{**SUPPORT.__dict__, "local_part": "unsubscribe"})
    assert (
        rcpt_decide(
            address="unsubscribe@mailhub.test",
            domain=DOMAIN,
            alias=same_name,
            unsubscribe_local="unsubscribe",
        ).kind
        == RcptKind.UNSUBSCRIBE
    )
    foreign = rcpt_decide(
        address="unsubscribe@elsewhere.test",
        domain=None,
        alias=None,
        unsubscribe_local="unsubscribe",
    )
    assert foreign.reply.startswith("550 5.7.1")
    unhandled = rcpt_decide(address="unsubscribe@mailhub.test", domain=DOMAIN, alias=None)
    assert unhandled.reply.startswith("550 5.1.1")


def test_unsubscribe_routing_accepts_a_valid_token_and_refuses_the_rest_with_what_to_do():
    address = "unsubscribe@mailhub.test"
    ok = _route(address=address, kind=RcptKind.UNSUBSCRIBE, unsubscribe_valid=True)
    assert ok.decision == Decision.UNSUBSCRIBE and ok.accepted and not ok.notify_external
    auto = _route(
        _mail(automatic=True), address=address, kind=RcptKind.UNSUBSCRIBE, unsubscribe_valid=True
    )
    assert auto.accepted and not auto.notify_external
    bad = _route(address=address, kind=RcptKind.UNSUBSCRIBE, unsubscribe_valid=False)
    assert bad.decision == Decision.REFUSED and bad.reply.startswith("550 5.7.1")
    assert "use the unsubscribe link" in bad.reply
    # A reply header does not turn an unsubscribe request into a chatter post.
    threaded = _route(
        address=address, kind=RcptKind.UNSUBSCRIBE, unsubscribe_valid=True, reply_target=(3, 4)
    )
    assert threaded.decision == Decision.UNSUBSCRIBE and threaded.target is None


def test_token_from_subject():
    assert token_from_subject("unsubscribe .eJy:1a:b-c") == ".eJy:1a:b-c"
    assert token_from_subject("Re: UNSUBSCRIBE tok  ") == "tok"
    assert token_from_subject("unsubscribe") == ""
    assert token_from_subject("") == ""
    assert token_from_subject("please unsubscribeme now") == ""
