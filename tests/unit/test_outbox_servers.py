"""Choosing the relay for a sender (odoo-behaviour §9.3), without a database."""

import pytest

from outbox.relay import ServerConfig, server_choose


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.MAILHUB_DEFAULT_FROM = "notifications@mailhub.test"
    settings.MAILHUB_RELAY_HOST = "relay.env.test"


def _server(name: str, from_filter: str = "") -> ServerConfig:
    return ServerConfig(name=name, host=f"{name}.test", port=25, from_filter=from_filter)


def test_exact_address_beats_domain_and_keeps_the_sender():
    servers = [_server("domain", "customer.test"), _server("exact", "anna@customer.test")]
    chosen, from_header = server_choose(from_addr="Anna <anna@customer.test>", servers=servers)
    assert (chosen.name, from_header) == ("exact", "Anna <anna@customer.test>")
    chosen, _ = server_choose(from_addr="ben@customer.test", servers=servers)
    assert chosen.name == "domain"


def test_foreign_sender_goes_out_as_the_notification_address_with_its_name():
    servers = [_server("ours", "mailhub.test"), _server("any")]
    chosen, from_header = server_choose(from_addr="Anna <anna@gmail.test>", servers=servers)
    assert chosen.name == "ours"
    assert from_header == "Anna <notifications@mailhub.test>"


def test_server_without_filter_then_any_then_the_environment():
    chosen, from_header = server_choose(from_addr="x@gmail.test", servers=[_server("open")])
    assert (chosen.name, from_header) == ("open", '"x@gmail.test" <notifications@mailhub.test>')
    only = [_server("strict", "other.test")]
    assert server_choose(from_addr="x@gmail.test", servers=only)[0].name == "strict"
    chosen, from_header = server_choose(from_addr="x@gmail.test", servers=[])
    assert (chosen.host, from_header) == ("relay.env.test", "x@gmail.test")
