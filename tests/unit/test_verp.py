from outbox.verp import VerpRef, bounce_address, parse_bounce_address


def test_bounce_address_round_trip():
    address = bounce_address(ref=VerpRef("n", 42), domain="mailhub.test")
    assert address.startswith("bounce+n42.")
    assert address.endswith("@mailhub.test")
    assert parse_bounce_address(address) == VerpRef("n", 42)
    assert parse_bounce_address(f"<{address.upper()}>") == VerpRef("n", 42)


def test_forged_or_foreign_addresses_are_refused():
    address = bounce_address(ref=VerpRef("r", 7), domain="mailhub.test")
    forged = address.replace("r7.", "r8.")
    assert parse_bounce_address(forged) is None
    assert parse_bounce_address("bounce@mailhub.test") is None
    assert parse_bounce_address("someone+r7.abc@mailhub.test") is None
