"""Signed reply addresses: only what we signed parses, whatever else arrives at RCPT."""

import pytest

from chatter.reply_address import ReplyRef, parse_reply_address, reply_address
from outbox.verp import VerpRef, bounce_address


def test_a_signed_address_names_its_thread_and_recipient_in_any_case():
    address = reply_address(ref=ReplyRef(message_id=31, notification_id=4077), domain="x.test")
    assert address.startswith("reply+31.4077.") and address.endswith("@x.test")
    ref = ReplyRef(message_id=31, notification_id=4077)
    assert parse_reply_address(address) == ref
    assert parse_reply_address(f"<{address.upper()}>") == ref, "local parts arrive in any case"


def test_the_signature_changes_with_the_secret(settings):
    before = reply_address(ref=ReplyRef(1, 2), domain="x.test")
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert parse_reply_address(before) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda a: a.replace("reply+31.4077", "reply+31.4078"),  # another recipient
        lambda a: a.replace("reply+31.", "reply+32."),  # another thread
        lambda a: a.replace("reply+31.", "reply+031."),  # the same numbers spelled otherwise
        lambda a: a[: a.index("@") - 1] + "0" + a[a.index("@") :],  # one digit of the signature
        lambda a: a.split(".")[0] + "." + a.split(".")[1] + "@x.test",  # no signature
        lambda a: a.replace("reply+31", "reply+\u0663\u0661"),  # Arabic-Indic digits
        lambda a: "reply+1" * 40 + "@x.test",  # junk
    ],
)
def test_any_change_to_a_signed_address_is_refused(mutate):
    address = reply_address(ref=ReplyRef(31, 4077), domain="x.test")
    assert parse_reply_address(mutate(address)) is None


def test_a_verp_signature_is_no_reply_signature():
    verp = bounce_address(ref=VerpRef("n", 4077), domain="x.test")
    signature = verp.split(".")[1].split("@")[0]
    assert parse_reply_address(f"reply+31.4077.{signature}@x.test") is None
