"""Domain health: SPF, DKIM, DMARC and MX, each with a verdict, the record found and what to do.

The verdict functions are pure (they take lookups, return results); ``DnsClient`` wraps
dnspython's resolver with the nameservers and timeout of the settings (or of the command line),
and turns NXDOMAIN, timeouts and server failures into lookups with a problem, never exceptions.
"""

import base64
import binascii
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAIL = "fail"  # the record is missing or wrong: mail will be rejected or spoofable
    ERROR = "error"  # could not check (timeout, no nameserver): the answer is unknown


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: Verdict
    message: str
    records: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.verdict in (Verdict.FAIL, Verdict.ERROR)


class Problem(StrEnum):
    NONE = ""
    NXDOMAIN = "nxdomain"
    TIMEOUT = "timeout"
    FAILURE = "failure"


@dataclass(frozen=True)
class Lookup:
    """What one DNS question returned: the records (as text), or the problem met."""

    name: str
    records: tuple[str, ...] = ()
    problem: Problem = Problem.NONE
    detail: str = ""


@dataclass
class DomainReport:
    domain: str
    selector: str
    relay: str
    listener_host: str
    nameservers: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed]


# --- shared wording ---------------------------------------------------------------------------


def _problem_result(check: str, lookup: Lookup, *, missing: str) -> CheckResult | None:
    """The verdict when a lookup met a problem; ``missing`` explains an NXDOMAIN of ``name``."""
    if lookup.problem == Problem.TIMEOUT:
        return CheckResult(
            check,
            Verdict.ERROR,
            f"No answer for {lookup.name} ({lookup.detail}): check that the nameserver is "
            "reachable, or set MAILHUB_DNS_NAMESERVERS / --nameserver to one that is.",
        )
    if lookup.problem == Problem.FAILURE:
        return CheckResult(
            check,
            Verdict.ERROR,
            f"The lookup of {lookup.name} failed ({lookup.detail}): retry later, or ask the "
            "domain's DNS provider why its servers do not answer.",
        )
    if lookup.problem == Problem.NXDOMAIN:
        return CheckResult(check, Verdict.FAIL, missing)
    return None


def _nxdomain_of_domain(domain: str) -> str:
    return (
        f"The domain {domain} does not exist in DNS (NXDOMAIN): check its spelling, or create "
        "the zone at your DNS provider."
    )


# --- SPF (RFC 7208) -----------------------------------------------------------------------------


def _is_spf(text: str) -> bool:
    low = text.strip().lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


@dataclass(frozen=True)
class SpfTerms:
    names: tuple[str, ...]  # include:, a:, mx:, exists:, redirect= targets
    includes: tuple[str, ...]  # include: and redirect= targets (followed for their IPs)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    all_qualifier: str  # "+", "-", "~", "?" or "" when there is no "all" term


def spf_parse(record: str) -> SpfTerms:
    names: list[str] = []
    includes: list[str] = []
    networks: list = []
    all_qualifier = ""
    for term in record.split()[1:]:
        qualifier = term[0] if term[0] in "+-~?" else "+"
        body = term[1:] if term[0] in "+-~?" else term
        low = body.lower()
        if low == "all":
            all_qualifier = qualifier
        elif low.startswith(("include:", "a:", "mx:", "exists:")):
            target = body.split(":", 1)[1].split("/", 1)[0].rstrip(".").lower()
            names.append(target)
            if low.startswith("include:"):
                includes.append(target)
        elif low.startswith("redirect="):
            target = body.split("=", 1)[1].rstrip(".").lower()
            names.append(target)
            includes.append(target)
        elif low.startswith(("ip4:", "ip6:")):
            try:
                networks.append(ipaddress.ip_network(body[4:], strict=False))
            except ValueError:
                continue  # a malformed network authorizes nothing
    return SpfTerms(tuple(names), tuple(includes), tuple(networks), all_qualifier)


def _name_covers(target: str, relay: str) -> bool:
    """``include:sendgrid.net`` covers relay ``smtp.sendgrid.net``; ``_spf.x.net`` covers
    ``smtp.x.net`` (same parent domain)."""
    relay = relay.lower().rstrip(".")
    if target == relay or relay.endswith("." + target):
        return True
    parent = relay.split(".", 1)[1] if relay.count(".") >= 2 else ""
    return bool(parent) and target.endswith("." + parent)


def _ip_covered(ip: str, networks: Sequence) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


# RFC 7208 §4.6.4: at most 10 DNS-querying terms per evaluation; we follow includes within it.
SPF_LOOKUP_LIMIT = 10


def spf_verdict(
    txt: Lookup,
    *,
    domain: str,
    relay: str,
    relay_ips: Sequence[str] = (),
    fetch_txt: Callable[[str], Lookup] | None = None,
) -> CheckResult:
    """One SPF record, not ``+all``, authorizing the relay by name or by address."""
    problem = _problem_result("SPF", txt, missing=_nxdomain_of_domain(domain))
    if problem:
        return problem
    spf = tuple(r for r in txt.records if _is_spf(r))
    if not spf:
        hint = f"include:{relay} " if relay and not _is_ip(relay) else ""
        return CheckResult(
            "SPF",
            Verdict.FAIL,
            f'No SPF record on {domain}: add a TXT record "v=spf1 {hint}~all" naming the '
            "servers that send its mail.",
        )
    if len(spf) > 1:
        return CheckResult(
            "SPF",
            Verdict.FAIL,
            f"{len(spf)} SPF records on {domain}: receivers treat this as a permanent error "
            "(RFC 7208 §4.5). Merge them into one record.",
            spf,
        )
    terms = spf_parse(spf[0])
    if terms.all_qualifier == "+":
        return CheckResult(
            "SPF",
            Verdict.FAIL,
            f'The record ends with "+all": any server on the Internet may send as {domain}. '
            'Use "~all" or "-all" (RFC 7208 §5.1).',
            spf,
        )
    if not relay:
        return CheckResult(
            "SPF", Verdict.WARNING, "One SPF record; no relay given to check it against.", spf
        )
    if _is_local(relay):
        return CheckResult(
            "SPF",
            Verdict.WARNING,
            f"One SPF record; the relay {relay} is a local address, so whether the record "
            "authorizes the server that really sends cannot be checked: pass the relay's "
            "public host with --relay.",
            spf,
        )
    how = _spf_authorizes(terms, relay=relay, relay_ips=relay_ips, fetch_txt=fetch_txt)
    if how:
        return CheckResult(
            "SPF", Verdict.OK, f"One SPF record; it authorizes {relay} ({how}).", spf
        )
    suggestion = f"include:{relay}" if not _is_ip(relay) else _ip_term(relay)
    return CheckResult(
        "SPF",
        Verdict.FAIL,
        f"The SPF record does not authorize the relay {relay}: add {suggestion} before the "
        '"all" term, or the include your relay provider documents.',
        spf,
    )


def _spf_authorizes(
    terms: SpfTerms,
    *,
    relay: str,
    relay_ips: Sequence[str],
    fetch_txt: Callable[[str], Lookup] | None,
) -> str:
    """How the record authorizes the relay ("include:x", "ip4:a/b", ...), or ""."""
    ips = [relay] if _is_ip(relay) else list(relay_ips)
    pending = [terms]
    seen: set[str] = set()
    while pending:
        current = pending.pop(0)
        for target in current.names:
            if not _is_ip(relay) and _name_covers(target, relay):
                return f"names {target}"
        for net in current.networks:
            if any(_ip_covered(ip, [net]) for ip in ips):
                return f"{'ip4' if net.version == 4 else 'ip6'}:{net}"
        if fetch_txt is None:
            continue
        for target in current.includes:
            if target in seen or len(seen) >= SPF_LOOKUP_LIMIT:
                continue
            seen.add(target)
            found = [r for r in fetch_txt(target).records if _is_spf(r)]
            if len(found) == 1:
                pending.append(spf_parse(found[0]))
    return ""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_local(host: str) -> bool:
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _ip_term(ip: str) -> str:
    return f"ip{ipaddress.ip_address(ip).version}:{ip}"


# --- DKIM (RFC 6376) ----------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    """``v=DKIM1; k=rsa; p=MIIB...`` → {"v": "DKIM1", ...}; whitespace is folding (§3.2)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def dkim_verdict(txt: Lookup, *, selector: str, domain: str) -> CheckResult:
    """The selector's record exists and holds a public key (``p=``)."""
    name = f"{selector}._domainkey.{domain}"
    missing = (
        f"No DKIM record at {name}: publish the public key your relay or signer gives you as a "
        "TXT record there, or pass the selector it uses (--selector)."
    )
    problem = _problem_result("DKIM", txt, missing=missing)
    if problem:
        return problem
    if not txt.records:
        return CheckResult("DKIM", Verdict.FAIL, missing)
    keyed = [r for r in txt.records if "p" in _tags(r)]
    if not keyed:
        return CheckResult(
            "DKIM",
            Verdict.FAIL,
            f"The record at {name} holds no key (no p= tag): publish the record your signer "
            "gives you, unchanged.",
            txt.records,
        )
    tags = _tags(keyed[0])
    if not tags["p"]:
        return CheckResult(
            "DKIM",
            Verdict.FAIL,
            f"The key at {name} is revoked (empty p=, RFC 6376 §3.6.1): publish the current key "
            "or use the selector your signer uses now.",
            tuple(keyed),
        )
    try:
        key = base64.b64decode(tags["p"], validate=True)
    except (binascii.Error, ValueError):
        return CheckResult(
            "DKIM",
            Verdict.FAIL,
            f"The key at {name} is not valid base64: the record was probably cut or re-wrapped; "
            "paste it again as one TXT record.",
            tuple(keyed),
        )
    return CheckResult(
        "DKIM",
        Verdict.OK,
        f"Key found at {name} ({tags.get('k', 'rsa')}, {len(key)} bytes).",
        tuple(keyed),
    )


# --- DMARC (RFC 7489) ---------------------------------------------------------------------------


def dmarc_verdict(txt: Lookup, *, domain: str) -> CheckResult:
    name = f"_dmarc.{domain}"
    missing = (
        f'No DMARC record at {name}: add a TXT record "v=DMARC1; p=none; rua=mailto:<you>" to '
        "start receiving reports, then move to p=quarantine."
    )
    problem = _problem_result("DMARC", txt, missing=missing)
    if problem:
        return problem
    dmarc = tuple(r for r in txt.records if r.strip().lower().startswith("v=dmarc1"))
    if not dmarc:
        return CheckResult("DMARC", Verdict.FAIL, missing, txt.records)
    if len(dmarc) > 1:
        return CheckResult(
            "DMARC",
            Verdict.FAIL,
            f"{len(dmarc)} DMARC records at {name}: receivers then apply none "
            "(RFC 7489 §6.6.3). Keep one.",
            dmarc,
        )
    policy = _tags(dmarc[0]).get("p", "").lower()
    if not policy:
        return CheckResult(
            "DMARC",
            Verdict.FAIL,
            f"The DMARC record at {name} has no policy (p= is required, RFC 7489 §6.3): add "
            "p=none, p=quarantine or p=reject.",
            dmarc,
        )
    if policy == "none":
        return CheckResult(
            "DMARC",
            Verdict.WARNING,
            "Policy p=none: receivers only report, forged mail is still delivered. Move to "
            "p=quarantine once the reports show your own mail passing.",
            dmarc,
        )
    if policy in ("quarantine", "reject"):
        return CheckResult("DMARC", Verdict.OK, f"Policy p={policy}.", dmarc)
    return CheckResult(
        "DMARC",
        Verdict.FAIL,
        f"Unknown policy p={policy}: use none, quarantine or reject.",
        dmarc,
    )


# --- MX (RFC 5321 §5.1, RFC 7505) ---------------------------------------------------------------


def mx_verdict(
    mx: Lookup,
    *,
    domain: str,
    listener_host: str,
    mx_addresses: Mapping[str, Sequence[str]] | None = None,
) -> CheckResult:
    """The domain's MX points to the inbound listener's host (by name, or by address)."""
    problem = _problem_result("MX", mx, missing=_nxdomain_of_domain(domain))
    if problem:
        return problem
    entries = sorted(
        (int(pref), host.lower().rstrip("."))
        for pref, _, host in (r.partition(" ") for r in mx.records)
    )
    if not entries:
        return CheckResult(
            "MX",
            Verdict.FAIL,
            f"No MX record on {domain}: add one pointing to the MailHub listener "
            f"(MX 10 {listener_host or '<listener host>'}), or replies never reach MailHub.",
        )
    if entries == [(0, "")] or entries == [(0, ".")]:
        return CheckResult(
            "MX",
            Verdict.FAIL,
            f"{domain} publishes a null MX (RFC 7505): it accepts no mail. Replace it with an MX "
            "pointing to the MailHub listener.",
            mx.records,
        )
    if not listener_host:
        return CheckResult(
            "MX",
            Verdict.WARNING,
            "MX records found; set MAILHUB_INBOUND_HOSTNAME (or --listener-host) to the "
            "listener's public host name to check they point to it.",
            mx.records,
        )
    wanted = listener_host.lower().rstrip(".")
    addresses = mx_addresses or {}
    matching = [
        (pref, host)
        for pref, host in entries
        if host == wanted or (_is_ip(wanted) and wanted in addresses.get(host, ()))
    ]
    if not matching:
        return CheckResult(
            "MX",
            Verdict.FAIL,
            f"The MX of {domain} points to {', '.join(h for _, h in entries)}, not to the "
            f"listener {listener_host}: mail for this domain does not reach MailHub. Point "
            "an MX record at the listener.",
            mx.records,
        )
    best = entries[0][0]
    if matching[0][0] > best:
        preferred = ", ".join(h for p, h in entries if p == best)
        return CheckResult(
            "MX",
            Verdict.WARNING,
            f"The listener {listener_host} is an MX of preference {matching[0][0]}, but "
            f"{preferred} (preference {best}) is tried first: mail reaches MailHub only if that "
            "server forwards it.",
            mx.records,
        )
    return CheckResult("MX", Verdict.OK, f"MX points to the listener {listener_host}.", mx.records)


# --- resolver wrapper ---------------------------------------------------------------------------


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``"10.0.0.2"``, ``"10.0.0.2:5353"``, ``"[::1]:53"``, ``"::1"`` or a host → (ip, port)."""
    entry = entry.strip()
    port = 53
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = int(port_text)
    else:
        host = entry
    if not host:
        raise ValueError(f"Nameserver {entry!r} has no host: use HOST or HOST:PORT.")
    if not _is_ip(host):
        try:
            host = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]
        except OSError as exc:
            raise ValueError(
                f"Nameserver {entry!r} is neither an IP address nor a resolvable host: {exc}"
            ) from exc
    return host, port


class DnsClient:
    """dnspython's resolver, configured from the settings unless told otherwise."""

    def __init__(
        self, *, nameservers: Sequence[str] | None = None, timeout: float | None = None
    ) -> None:
        nameservers = list(
            nameservers if nameservers is not None else settings.MAILHUB_DNS_NAMESERVERS
        )
        self.timeout = float(timeout if timeout is not None else settings.MAILHUB_DNS_TIMEOUT)
        self.setup_error = ""
        if nameservers:
            parsed = [parse_nameserver(entry) for entry in nameservers]
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in parsed
            ]
            self.description = ", ".join(f"{host}:{port}" for host, port in parsed)
        else:
            try:
                self.resolver = dns.resolver.Resolver(configure=True)
                self.description = "system resolver"
            except dns.resolver.NoResolverConfiguration:
                self.resolver = dns.resolver.Resolver(configure=False)
                self.setup_error = (
                    "no nameserver configured on this machine: set MAILHUB_DNS_NAMESERVERS"
                )
                self.description = "none"
        self.resolver.timeout = self.timeout
        self.resolver.lifetime = self.timeout
        self.resolver.retry_servfail = False

    def _query(self, name: str, rdtype: str) -> tuple[Lookup, object | None]:
        if self.setup_error:
            return Lookup(name, problem=Problem.FAILURE, detail=self.setup_error), None
        try:
            answer = self.resolver.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(name, problem=Problem.NXDOMAIN, detail="NXDOMAIN"), None
        except dns.exception.Timeout:
            detail = f"timed out after {self.timeout:g}s asking {self.description}"
            return Lookup(name, problem=Problem.TIMEOUT, detail=detail), None
        except dns.resolver.NoNameservers as exc:
            return Lookup(name, problem=Problem.FAILURE, detail=_short(exc)), None
        except dns.exception.DNSException as exc:
            return Lookup(name, problem=Problem.FAILURE, detail=_short(exc)), None
        return Lookup(name), answer.rrset

    def txt(self, name: str) -> Lookup:
        lookup, rrset = self._query(name, "TXT")
        if rrset is None:
            return lookup
        # RFC 7208 §3.3: the character-strings of one TXT record are joined without spaces.
        records = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
        return Lookup(name, records)

    def mx(self, name: str) -> Lookup:
        lookup, rrset = self._query(name, "MX")
        if rrset is None:
            return lookup
        records = tuple(f"{r.preference} {r.exchange.to_text(omit_final_dot=True)}" for r in rrset)
        return Lookup(name, records)

    def addresses(self, host: str) -> list[str]:
        """A and AAAA of a host; empty when it has none or the lookup fails."""
        if _is_ip(host):
            return [host]
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            lookup, rrset = self._query(host, rdtype)
            if rrset is not None:
                found.extend(r.address for r in rrset)
            if lookup.problem in (Problem.NXDOMAIN, Problem.TIMEOUT):
                break  # no point asking for AAAA of a name that does not exist / no server
        return found


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def normalize_domain(domain: str) -> str:
    """Lower-case, no trailing dot, valid as a DNS name; ValueError says what is wrong."""
    cleaned = (domain or "").strip().rstrip(".").lower()
    if not cleaned or "@" in cleaned or " " in cleaned:
        raise ValueError(f"{domain!r} is not a domain name: give one like example.org.")
    try:
        dns.name.from_text(cleaned)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{domain!r} is not a valid domain name: {exc}") from exc
    return cleaned


def domain_check(
    *,
    domain: str,
    selector: str,
    relay: str,
    listener_host: str,
    client: DnsClient,
) -> DomainReport:
    """Run the four checks; NXDOMAIN of the domain itself short-cuts the lookups under it."""
    domain = normalize_domain(domain)
    report = DomainReport(domain, selector, relay, listener_host, client.description)
    spf_lookup = client.txt(domain)
    if spf_lookup.problem in (Problem.NXDOMAIN, Problem.TIMEOUT):
        # The whole domain is missing or the server is silent: asking again per record would
        # only repeat the same verdict (and, for a timeout, multiply the wait).
        for name in ("SPF", "DKIM", "DMARC", "MX"):
            result = _problem_result(name, spf_lookup, missing=_nxdomain_of_domain(domain))
            report.results.append(result)
        return report
    relay_ips = client.addresses(relay) if relay and not _is_local(relay) else []
    report.results.append(
        spf_verdict(
            spf_lookup, domain=domain, relay=relay, relay_ips=relay_ips, fetch_txt=client.txt
        )
    )
    report.results.append(
        dkim_verdict(
            client.txt(f"{selector}._domainkey.{domain}"), selector=selector, domain=domain
        )
    )
    report.results.append(dmarc_verdict(client.txt(f"_dmarc.{domain}"), domain=domain))
    mx_lookup = client.mx(domain)
    mx_addresses: dict[str, list[str]] = {}
    if listener_host and _is_ip(listener_host):
        for record in mx_lookup.records:
            host = record.partition(" ")[2].lower().rstrip(".")
            if host:
                mx_addresses[host] = client.addresses(host)
    report.results.append(
        mx_verdict(mx_lookup, domain=domain, listener_host=listener_host, mx_addresses=mx_addresses)
    )
    return report


def default_listener_host() -> str:
    """The public name MX should point to: MAILHUB_INBOUND_HOSTNAME, else the listen address."""
    if settings.MAILHUB_INBOUND_HOSTNAME:
        return settings.MAILHUB_INBOUND_HOSTNAME
    host = settings.MAILHUB_SMTPD_LISTEN.rpartition(":")[0].strip("[]")
    return "" if host in ("", "0.0.0.0", "::") else host


def default_relay_host() -> str:
    """The relay mail leaves through: the first active mail server, else MAILHUB_RELAY_HOST."""
    from outbox.models import MailServer

    server = MailServer.objects.filter(active=True).order_by("priority", "id").first()
    return server.host if server else settings.MAILHUB_RELAY_HOST
