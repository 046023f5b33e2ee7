"""A small real DNS server for the domain-check tests: UDP on a free loopback port.

``dns_server.zone`` maps a name to ``{rdtype: [values]}``; each case sets the records it needs.
A name absent from the zone answers NXDOMAIN; a present name without the asked type answers
NOERROR with no records. ``silent_dns`` is a bound UDP port that never answers (timeouts).
"""

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest


def _txt_rdata(value: str) -> dns.rdata.Rdata:
    # One TXT record; values over 255 bytes are split into several character-strings as a
    # DNS provider does (RFC 7208 §3.3), so the client must join them.
    raw = value.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


@dataclass
class DnsServer:
    port: int
    zone: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.zone.setdefault(name.lower().rstrip("."), {}).setdefault(rdtype, []).extend(values)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        records = self.zone.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        values = records.get(rdtype, [])
        if values:
            if rdtype == "TXT":
                rdatas = [_txt_rdata(v) for v in values]
            else:
                rdatas = [
                    dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, v) for v in values
                ]
            response.answer.append(dns.rrset.from_rdata_list(question.name, 300, rdatas))
        return response.to_wire()


def _serve(sock: socket.socket, server: DnsServer, stop: threading.Event) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            wire, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            sock.sendto(server.answer(wire), peer)
        except Exception:  # noqa: BLE001 - a malformed query gets no answer, like a real server
            continue


@pytest.fixture
def dns_server():
    """A DNS responder on 127.0.0.1:<free port>, answering from ``dns_server.zone``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server = DnsServer(port=sock.getsockname()[1])
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(sock, server, stop), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


@pytest.fixture
def silent_dns():
    """``"127.0.0.1:<port>"`` of a bound UDP socket that reads nothing and answers nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
