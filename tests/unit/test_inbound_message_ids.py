"""Message-IDs, In-Reply-To and References from outside are checked where they enter."""

import pytest

from inbound.parsing import header_facts, message_ids
from mailhub.msgid import msg_id_valid


@pytest.mark.parametrize(
    "value",
    [
        "<x-ü@attacker.test>",
        "<two words@attacker.test>",
        "<ctl\x01@attacker.test>",
        "<no-at-sign>",
        "<a@b@c.test>",
        "<" + "x" * 245 + "@a.test>",
        "<@a.test>",
        "<a@>",
    ],
)
def test_what_is_not_a_msg_id(value):
    assert not msg_id_valid(value)
    assert message_ids(value) == []


@pytest.mark.parametrize(
    "value",
    ["<a@b>", "<CAF=x+y_z-1.2@mail.gmail.com>", "<id@[192.0.2.1]>", "<a.b!#$%&'*+/=?^_`{|}~@c>"],
)
def test_real_world_msg_ids_are_kept(value):
    assert msg_id_valid(value) and message_ids(value) == [value]


def test_bad_ids_are_dropped_and_the_good_ones_kept_in_order():
    value = "<one@a.test> <x-ü@b.test> junk <two@a.test>\t<bad id@c> <three@a.test>"
    assert message_ids(value) == ["<one@a.test>", "<two@a.test>", "<three@a.test>"]


def _raw(**headers: str) -> bytes:
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(["From: carla@customer.test", *lines, "", "body", ""])).encode("utf-8")


def test_an_encoded_word_message_id_is_replaced_by_a_synthetic_one():
    raw = _raw(Message_ID="=?utf-8?q?=3Cx-=C3=BC@attacker.test=3E?=")
    facts = header_facts(raw)
    assert facts.message_id.endswith("@no-message-id.invalid>")
    assert msg_id_valid(facts.message_id)
    assert header_facts(raw).message_id == facts.message_id  # the same mail again: a duplicate


def test_threading_headers_keep_only_valid_ids():
    raw = _raw(
        Message_ID="<m@customer.test>",
        In_Reply_To="=?utf-8?q?=3Cx-=C3=BC@attacker.test=3E?= <parent@mailhub.test>",
        References="<" + "y" * 980 + "@long.test>\r\n <root@mailhub.test> <sp ace@x>",
    )
    facts = header_facts(raw)
    assert facts.message_id == "<m@customer.test>"
    assert facts.in_reply_to == ["<parent@mailhub.test>"]
    assert facts.references == ["<root@mailhub.test>"]
