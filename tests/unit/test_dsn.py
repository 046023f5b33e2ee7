"""The DSN parser on bounces as real MTAs write them (no database)."""

from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbound.dsn import DELAY, HARD, NONE, POLICY, SOFT, RecipientReport, bounce_parse
from tests.support import bounces

MID = "<Qx7vT3nq0l2mRk9aZc1bW8yH@mailhub.test>"
BOB = "bob@customer.test"


def parse(raw: bytes, pol=policy.compat32):
    return bounce_parse(message_from_bytes(raw, policy=pol))


@pytest.mark.parametrize("pol", [policy.compat32, policy.default], ids=["compat32", "default"])
def test_postfix_dsn_gives_recipient_status_diagnostic_and_original_message_id(pol):
    report = parse(bounces.postfix_dsn(message_id=MID, recipient=BOB), pol)

    assert report.format == "dsn"
    assert report.reporting_mta == "mx.customer.test"
    assert report.original_message_id == MID
    [failed] = report.failed
    assert failed.address == BOB
    assert failed.action == "failed"
    assert failed.status == "5.1.1"
    assert failed.severity == HARD
    # The folded Diagnostic-Code is read whole.
    assert failed.diagnostic == (
        f"smtp; 550 5.1.1 <{BOB}>: Recipient address rejected: User unknown in local "
        "recipient table"
    )
    assert failed.remote_mta == "mail.customer.test"


def test_postfix_dsn_with_the_full_original_attached_as_message_rfc822():
    report = parse(bounces.postfix_dsn(message_id=MID, recipient=BOB, full_original=True))
    assert report.original_message_id == MID
    assert [r.address for r in report.failed] == [BOB]


def test_reason_has_status_meaning_diagnostic_and_the_reporting_mta_words():
    report = parse(bounces.postfix_dsn(message_id=MID, recipient=BOB))
    reason = report.reason_for(report.failed[0])

    assert "Status: 5.1.1 (permanent failure: bad destination mailbox address)" in reason
    assert "Diagnostic-Code: smtp; 550 5.1.1" in reason
    assert "Reported by: mx.customer.test" in reason
    assert "This is the mail system at host mx.customer.test." in reason
    # The quoted original is not part of the reason.
    assert "Printer on fire" not in reason


def test_exchange_online_ndr_reads_the_dsn_and_turns_the_html_words_into_text():
    report = parse(bounces.exchange_online_ndr(message_id=MID, recipient=BOB))

    assert report.format == "dsn"
    assert report.original_message_id == MID
    [failed] = report.failed
    assert failed.status == "5.1.10"
    assert failed.severity == HARD
    assert "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup" in (
        failed.diagnostic
    )
    assert "Your message to bob@customer.test couldn't be delivered." in report.human_text
    assert "<p>" not in report.human_text and "color:red" not in report.human_text


def test_exim_plain_text_bounce_is_recognised_through_flufl_bounce():
    report = parse(bounces.exim_bounce(message_id=MID, recipient=BOB))

    assert report.format == "non-standard"
    assert report.from_mailer_daemon
    # The original was copied inline: its Message-ID is found in the text.
    assert report.original_message_id == MID
    [failed] = report.failed
    assert failed.address == BOB
    assert failed.status == "5.1.1"
    assert failed.diagnostic == f"550 5.1.1 <{BOB}>: Recipient address rejected: User unknown"
    assert "This is a copy of the message" not in report.human_text


def test_qmail_failure_notice_is_recognised():
    report = parse(bounces.qmail_bounce(message_id=MID, recipient=BOB))
    [failed] = report.failed
    assert failed.address == BOB
    assert failed.status == "5.1.1"
    assert failed.diagnostic == "550 5.1.1 Sorry, no mailbox here by that name."
    assert report.original_message_id == MID


def test_legacy_exchange_ndr_without_a_dsn_part():
    report = parse(bounces.exchange_legacy_ndr(message_id=MID, recipient=BOB))
    [failed] = report.failed
    assert report.format == "non-standard"
    assert failed.address == BOB
    # No SMTP code in the words: a permanent failure of unknown detail, explained by the text.
    assert failed.status == "5.0.0"
    assert "The recipient name is not recognized" in failed.diagnostic
    assert report.original_message_id == MID


def test_delayed_warning_is_not_a_bounce():
    report = parse(bounces.postfix_delayed(message_id=MID, recipient=BOB))

    assert report.failed == []
    [delayed] = report.delayed
    assert delayed.address == BOB
    assert delayed.status == "4.4.1"
    assert delayed.severity == DELAY
    assert not delayed.is_bounce


def test_an_out_of_office_reply_is_not_a_bounce():
    report = parse(bounces.vacation_reply(recipient=BOB))
    assert report.recipients == ()
    assert not report.looks_like_bounce


@pytest.mark.parametrize(
    ("action", "status", "severity"),
    [
        ("failed", "5.1.1", HARD),
        ("failed", "5.1.10", HARD),
        ("failed", "5.2.1", HARD),  # mailbox disabled
        ("failed", "5.4.4", SOFT),  # unable to route: the network, not the mailbox
        ("failed", "5.3.4", SOFT),  # too big for the system
        ("failed", "5.2.2", SOFT),  # mailbox full: RFC 3463 calls it transient
        ("failed", "5.7.1", POLICY),  # refused by policy: says nothing about the address
        ("failed", "5.7.26", POLICY),
        ("failed", "4.4.7", SOFT),  # expired in a queue
        ("delayed", "4.4.1", DELAY),
        ("delivered", "2.0.0", NONE),
        ("relayed", "2.0.0", NONE),
    ],
)
def test_severity_classification(action, status, severity):
    assert RecipientReport(address=BOB, action=action, status=status).severity == severity


def test_several_recipients_in_one_dsn_each_keep_their_own_status():
    raw = bounces.postfix_dsn(message_id=MID, recipient=BOB).replace(
        b"\r\n--4Zq8Kx1Wdlz9sT.1764046348/mx.customer.test\r\n"
        b"Content-Description: Undelivered Message Headers",
        b"\r\nFinal-Recipient: rfc822; carol@customer.test\r\n"
        b"Action: delayed\r\nStatus: 4.2.2\r\n\r\n"
        b"--4Zq8Kx1Wdlz9sT.1764046348/mx.customer.test\r\n"
        b"Content-Description: Undelivered Message Headers",
    )
    report = parse(raw)
    assert [(r.address, r.severity) for r in report.recipients] == [
        (BOB, HARD),
        ("carol@customer.test", DELAY),
    ]


# --- robustness: a bounce is mail from strangers --------------------------------------------------

_SAMPLES = [
    build(message_id=MID, recipient=BOB)
    for build in (*bounces.SAMPLES.values(), bounces.postfix_delayed)
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000))
def test_the_parser_never_raises_on_arbitrary_bytes(data):
    report = parse(data)
    assert isinstance(report.recipients, tuple)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(_SAMPLES),
    where=st.floats(min_value=0, max_value=1),
    junk=st.binary(min_size=1, max_size=80),
)
def test_the_parser_never_raises_on_damaged_bounces(sample, where, junk):
    cut = int(len(sample) * where)
    report = parse(sample[:cut] + junk + sample[cut + len(junk) :])
    assert all(r.address == r.address.lower() for r in report.recipients)


def test_a_base64_encoded_delivery_status_is_read():
    import base64

    raw = bounces.postfix_dsn(message_id=MID, recipient=BOB)
    head, _, rest = raw.partition(b"Content-Type: message/delivery-status\r\n\r\n")
    report_text, sep, tail = rest.partition(b"\r\n--4Zq8Kx1Wdlz9sT")
    encoded = base64.encodebytes(report_text).replace(b"\n", b"\r\n")
    raw = (
        head
        + b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + sep
        + tail
    )
    [failed] = parse(raw).failed
    assert (failed.address, failed.status) == (BOB, "5.1.1")
