"""Domain checks against a real DNS server on loopback, through dnspython's real resolver."""

import base64
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from diagnostics.dns_checks import DnsClient, Verdict, domain_check

KEY = base64.b64encode(bytes(range(256)) + bytes(38)).decode()  # 294 bytes, like RSA-2048
DOMAIN = "shop.test"
RELAY = "smtp.relay.test"
LISTENER = "mx.shop.test"


@pytest.fixture
def good_zone(dns_server):
    """A domain with everything right; each test breaks one thing."""
    dns_server.add(DOMAIN, "TXT", "v=spf1 include:relay.test -all", "google-site-verification=x")
    dns_server.add(f"mailhub._domainkey.{DOMAIN}", "TXT", f"v=DKIM1; k=rsa; p={KEY}")
    dns_server.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=quarantine; rua=mailto:d@shop.test")
    dns_server.add(DOMAIN, "MX", f"10 {LISTENER}.")
    dns_server.add(LISTENER, "A", "192.0.2.25")
    dns_server.add(RELAY, "A", "198.51.100.7")
    return dns_server


def check(server_or_ns, domain=DOMAIN, **kwargs):
    nameserver = getattr(server_or_ns, "nameserver", server_or_ns)
    client = DnsClient(nameservers=[nameserver], timeout=kwargs.pop("timeout", 2.0))
    options = {"selector": "mailhub", "relay": RELAY, "listener_host": LISTENER, **kwargs}
    report = domain_check(domain=domain, client=client, **options)
    return {r.name: r for r in report.results}


def test_good_domain_passes_every_check(good_zone):
    results = check(good_zone)
    assert {name: r.verdict for name, r in results.items()} == {
        "SPF": Verdict.OK,
        "DKIM": Verdict.OK,
        "DMARC": Verdict.OK,
        "MX": Verdict.OK,
    }
    assert results["SPF"].records == ("v=spf1 include:relay.test -all",)
    assert "authorizes smtp.relay.test" in results["SPF"].message
    assert results["DKIM"].records[0].endswith(KEY)  # a >255-byte record, joined back
    assert "294 bytes" in results["DKIM"].message
    assert "p=quarantine" in results["DMARC"].message
    assert results["MX"].records == (f"10 {LISTENER}",)


def test_missing_spf_fails_and_says_what_to_add(good_zone):
    good_zone.zone[DOMAIN]["TXT"] = ["google-site-verification=x"]
    spf = check(good_zone)["SPF"]
    assert spf.verdict == Verdict.FAIL
    assert "No SPF record on shop.test" in spf.message
    assert "v=spf1 include:smtp.relay.test ~all" in spf.message


def test_two_spf_records_fail(good_zone):
    good_zone.add(DOMAIN, "TXT", "v=spf1 ip4:203.0.113.0/24 ~all")
    spf = check(good_zone)["SPF"]
    assert spf.verdict == Verdict.FAIL
    assert spf.message.startswith("2 SPF records")
    assert "Merge them" in spf.message
    assert len(spf.records) == 2


def test_plus_all_fails(good_zone):
    good_zone.zone[DOMAIN]["TXT"] = ["v=spf1 include:relay.test +all"]
    spf = check(good_zone)["SPF"]
    assert spf.verdict == Verdict.FAIL
    assert '"+all"' in spf.message and "any server" in spf.message


def test_spf_not_naming_the_relay_fails_but_its_ip_passes(good_zone):
    good_zone.zone[DOMAIN]["TXT"] = ["v=spf1 include:other.test ~all"]
    assert check(good_zone)["SPF"].verdict == Verdict.FAIL
    # The relay's address inside a followed include authorizes it (RFC 7208 §5.2).
    good_zone.add("other.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    spf = check(good_zone)["SPF"]
    assert spf.verdict == Verdict.OK
    assert "ip4:198.51.100.0/24" in spf.message


def test_no_dkim_key(good_zone):
    del good_zone.zone[f"mailhub._domainkey.{DOMAIN}"]
    dkim = check(good_zone)["DKIM"]
    assert dkim.verdict == Verdict.FAIL
    assert "No DKIM record at mailhub._domainkey.shop.test" in dkim.message
    # A record without a key (revoked: empty p=) fails too, saying so.
    good_zone.add(f"mailhub._domainkey.{DOMAIN}", "TXT", "v=DKIM1; k=rsa; p=")
    dkim = check(good_zone)["DKIM"]
    assert dkim.verdict == Verdict.FAIL
    assert "revoked" in dkim.message


def test_dmarc_p_none_is_a_warning(good_zone):
    good_zone.zone[f"_dmarc.{DOMAIN}"]["TXT"] = ["v=DMARC1; p=none"]
    dmarc = check(good_zone)["DMARC"]
    assert dmarc.verdict == Verdict.WARNING
    assert "p=none" in dmarc.message and "p=quarantine" in dmarc.message
    assert dmarc.records == ("v=DMARC1; p=none",)


def test_mx_elsewhere_fails_and_listener_ip_matches(good_zone):
    good_zone.zone[DOMAIN]["MX"] = ["10 mail.hoster.test."]
    good_zone.add("mail.hoster.test", "A", "203.0.113.9")
    mx = check(good_zone)["MX"]
    assert mx.verdict == Verdict.FAIL
    assert "points to mail.hoster.test, not to the listener mx.shop.test" in mx.message
    # Given as an address, the listener matches an MX host resolving to it.
    assert check(good_zone, listener_host="203.0.113.9")["MX"].verdict == Verdict.OK


def test_nxdomain_gives_a_clear_verdict_for_every_check(good_zone):
    results = check(good_zone, domain="nowhere.test")
    assert [r.verdict for r in results.values()] == [Verdict.FAIL] * 4
    assert all("does not exist in DNS (NXDOMAIN)" in r.message for r in results.values())


def test_timeout_gives_an_error_verdict_not_a_traceback(silent_dns):
    started = time.monotonic()
    results = check(silent_dns, timeout=0.5)
    assert time.monotonic() - started < 3  # one lookup waited, not one per check
    assert [r.verdict for r in results.values()] == [Verdict.ERROR] * 4
    assert "timed out after 0.5s" in results["SPF"].message
    assert "MAILHUB_DNS_NAMESERVERS" in results["SPF"].message


@pytest.mark.django_db
def test_checkdomain_command_prints_one_line_per_check(good_zone, capsys):
    call_command(
        "checkdomain",
        DOMAIN,
        "--relay",
        RELAY,
        "--nameserver",
        good_zone.nameserver,
        "--listener-host",
        LISTENER,
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0:2] for line in lines] == [
        ["SPF", "OK"],
        ["DKIM", "OK"],
        ["DMARC", "OK"],
        ["MX", "OK"],
    ]
    assert "record: v=spf1 include:relay.test -all" in lines[0]


@pytest.mark.django_db
def test_checkdomain_command_exits_non_zero_on_failure(good_zone, capsys, settings):
    settings.MAILHUB_DNS_NAMESERVERS = [good_zone.nameserver]  # the setting, not the option
    good_zone.zone[DOMAIN]["TXT"] = ["v=spf1 +all"]
    with pytest.raises(CommandError, match=r"1 of 4 checks failed for shop.test \(SPF\)"):
        call_command(
            "checkdomain",
            DOMAIN,
            "--relay",
            RELAY,
            "--listener-host",
            LISTENER,
            "--selector",
            "mailhub",
        )
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["SPF", "FAIL"]


def test_checkdomain_command_rejects_a_bad_nameserver():
    with pytest.raises(CommandError, match="neither an IP address nor a resolvable host"):
        call_command(
            "checkdomain", DOMAIN, "--relay", RELAY, "--nameserver", "no-such-host.invalid"
        )
