"""The bounce reader on the shapes real MTAs send: nesting, encodings, spellings, X.400."""

from email import message_from_bytes, policy

import pytest

from inbound.dsn import (
    DELAY,
    DELAYED,
    FAILED,
    HARD,
    NONE,
    POLICY,
    SOFT,
    bounce_like,
    bounce_parse,
    status_severity,
)
from tests.support import bounce_samples, bounces

MID = "<Zt3qkVx0bn2LwPq8sR1cYd5j@mailhub.test>"
BOB = "bob@customer.test"
VERP = "bounce+n7.00112233445566778899@mailhub.test"


def parse(raw: bytes):
    return bounce_parse(message_from_bytes(raw, policy=policy.compat32))


def dsn(report: str, *, outer: str = "multipart/report; report-type=delivery-status") -> bytes:
    return bounce_samples._report_message(
        sender=VERP,
        daemon="MAILER-DAEMON@mx.example.test",
        subject="Undelivered Mail Returned to Sender",
        human="Your message could not be delivered.",
        report=report,
        outer=outer,
        original=bounces._original_headers(message_id=MID, sender=VERP, recipient=BOB),
    )


@pytest.mark.parametrize("sample", bounce_samples.SAMPLES, ids=lambda s: s.name)
def test_every_sample_gives_the_address_we_sent_to_and_its_severity(sample):
    report = parse(sample.build(message_id=MID, recipient=BOB, sender=VERP))

    assert BOB in [r.address for r in report.failed], report.recipients
    [ours] = [r for r in report.failed if r.address == BOB]
    assert ours.severity == sample.severity
    assert report.original_message_id == MID


@pytest.mark.parametrize(
    ("action", "meaning"),
    [
        ("failed", FAILED),
        ("Failed", FAILED),
        ("FAILED", FAILED),
        ("failed (Bad destination mailbox address)", FAILED),
        ("error", FAILED),
        ("Error (permanent)", FAILED),
        ("failure", FAILED),
        ("(the server said) failed", FAILED),
        ("delayed", DELAYED),
        ("Delayed (will retry)", DELAYED),
        ("delivered", "delivered"),
        ("relayed (to a non-DSN system)", "relayed"),
    ],
)
def test_every_action_spelling(action, meaning):
    report = parse(
        dsn(
            "Reporting-MTA: dns; mx.example.test\n\n"
            f"Final-Recipient: rfc822; {BOB}\nAction: {action}\nStatus: 5.1.1\n"
            if meaning != DELAYED
            else "Reporting-MTA: dns; mx.example.test\n\n"
            f"Final-Recipient: rfc822; {BOB}\nAction: {action}\nStatus: 4.4.1\n"
        )
    )
    [recipient] = report.recipients
    assert recipient.action == meaning


def test_a_missing_action_is_read_from_the_status_class():
    report = parse(
        dsn(
            f"Reporting-MTA: dns; mx.example.test\n\nFinal-Recipient: rfc822; {BOB}\n"
            "Status: 5.2.1\n"
        )
    )
    [recipient] = report.failed
    assert (recipient.action, recipient.severity) == (FAILED, HARD)


@pytest.mark.parametrize(
    ("status", "diagnostic", "read", "severity"),
    [
        ("550", "smtp; 550 5.1.1 no such user", "5.1.1", HARD),
        ("554", "smtp; 554 rejected as spam", "5.0.0", POLICY),
        ("452", "", "4.0.0", SOFT),
    ],
)
def test_an_smtp_reply_code_in_the_status_field(status, diagnostic, read, severity):
    report = parse(
        dsn(
            f"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822;{BOB}\nAction: failed\n"
            f"Status: {status}\n" + (f"Diagnostic-Code: {diagnostic}\n" if diagnostic else "")
        )
    )
    [failed] = report.failed
    assert (failed.status, failed.severity) == (read, severity)


def test_a_quoted_printable_report_with_space_filled_separators_keeps_both_blocks():
    raw = bounce_samples.postfix_quoted_printable(message_id=MID, recipient=BOB, sender=VERP)
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert b"=\r\n" in raw  # a soft line break inside a field

    report = parse(raw)

    assert [(r.address, r.action) for r in report.recipients] == [
        ("someone.else@elsewhere.test", "delivered"),
        (BOB, FAILED),
    ]
    [failed] = report.failed
    assert failed.status == "5.1.1"
    assert "please check the spelling of the address" in failed.diagnostic
    assert report.reporting_mta == "mx.customer.test"


def test_original_recipient_is_preferred_over_final_recipient():
    report = parse(bounce_samples.sendmail_dsn(message_id=MID, recipient=BOB, sender=VERP))
    [failed] = report.failed
    assert failed.address == BOB
    assert failed.final_recipient == "bob@mailhost.customer.test"
    assert failed.candidates == (BOB, "bob@mailhost.customer.test")


def test_an_x400_final_recipient_is_not_taken_for_an_address():
    report = parse(bounce_samples.x400_gateway(message_id=MID, recipient=BOB, sender=VERP))
    [failed] = report.failed
    assert failed.address == BOB
    assert failed.final_recipient == ""  # "X400; /RFC-822=bob(a)customer.test/..." is no address


def test_fields_with_comments_and_no_address_type():
    report = parse(
        dsn(
            "Reporting-MTA: dns; mx.example.test (our relay)\n\n"
            f"Final-Recipient: <{BOB.upper()}> (Bob)\n"
            "Action: failed (permanent)\n"
            "Status: 5.1.1 (no such mailbox)\n"
        )
    )
    [failed] = report.failed
    assert (failed.address, failed.status) == (BOB, "5.1.1")


@pytest.mark.parametrize(
    "outer", ["multipart/report", "multipart/report; report-type=DELIVERY-STATUS"]
)
def test_a_report_without_or_with_an_odd_report_type_is_read(outer):
    report = parse(
        dsn(f"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822;{BOB}\nStatus: 5.1.1\n", outer=outer)
    )
    assert [r.address for r in report.failed] == [BOB]


def test_a_report_with_no_recipient_block_falls_back_to_flufl_bounce():
    raw = bounce_samples.report_without_recipient_block(message_id=MID, recipient=BOB, sender=VERP)
    report = parse(raw)
    assert report.has_report
    assert [r.address for r in report.failed] == [BOB]


@pytest.mark.parametrize(
    ("status", "diagnostic", "severity"),
    [
        ("5.0.0", "smtp; 550 5.7.1 Message rejected as spam", POLICY),
        ("5.0.0", "smtp; 550 Your IP is on our blocklist", POLICY),
        ("5.0.0", "smtp; 550 rejected: poor reputation of the sending domain", POLICY),
        ("5.0.0", "smtp; 550 User unknown", HARD),
        ("5.0.0", "smtp; 552 Mailbox is full", SOFT),
        ("", "smtp; 550 mailbox not found", HARD),
        ("5.5.0", "smtp; 550 5.5.0 Requested action not taken: mailbox unavailable", HARD),
        ("5.5.0", "smtp; 550 5.5.0 syntax error", SOFT),
        # The code comes first: a 5.1.1 is a dead mailbox whatever else the text says.
        ("5.1.1", "smtp; 550 5.1.1 unknown user (spam folder full)", HARD),
        ("5.7.1", "smtp; 550 5.7.1 user unknown", POLICY),
        ("4.2.2", "smtp; 452 4.2.2 over quota", SOFT),
    ],
)
def test_classification_codes_first_words_as_tie_breaker(status, diagnostic, severity):
    assert status_severity(action=FAILED, status=status, diagnostic=diagnostic) == severity


def test_delayed_and_delivered_are_not_failures():
    assert status_severity(action=DELAYED, status="4.4.1") == DELAY
    assert status_severity(action="delivered", status="2.0.0") == NONE


@pytest.mark.parametrize("sample", bounce_samples.SAMPLES, ids=lambda s: s.name)
def test_every_sample_looks_like_a_bounce_whatever_its_envelope(sample):
    raw = sample.build(message_id=MID, recipient=BOB, sender=VERP)
    assert bounce_like(message_from_bytes(raw, policy=policy.compat32), null_sender=False)


def test_ordinary_mail_and_vacation_replies_do_not_look_like_bounces():
    vacation = bounces.vacation_reply(recipient=BOB)
    ordinary = (
        b"From: Carla <carla@customer.test>\r\nTo: catchall@mailhub.test\r\n"
        b"Subject: Hello\r\n\r\nJust saying hello.\r\n"
    )
    for raw in (vacation, ordinary):
        assert not bounce_like(message_from_bytes(raw, policy=policy.compat32))
