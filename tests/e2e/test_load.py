"""Bounded load: inbound mail over 50 concurrent connections while outbound mail leaves.

CI runs a small version; ``bench/faults`` runs the issue's figure (10,000 each way). Every
message is counted at the end (posted once / at the relay once) and the peak memory of the
listener and the worker is read from ``/proc`` so a leak shows as a number.
"""

import threading
import time
from pathlib import Path

import pytest

from outbox.models import MailState
from outbox.tasks import queue_run
from tests.e2e.test_inbound_faults import Sender, aliases, mail, stored_once  # noqa: F401
from tests.e2e.test_relay_faults import FAST_RETRY, account, enqueue, states
from tests.support.e2e import scaled, wait_until

pytestmark = pytest.mark.e2e

CONNECTIONS = 50


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_inbound_over_50_connections_while_outbound_leaves(e2e_stack, aliases, fault_report):  # noqa: F811
    inbound_count = scaled(500, 10_000)
    outbound_count = scaled(500, 10_000)
    relay = e2e_stack.relay
    e2e_stack.env.update(FAST_RETRY)
    outgoing = enqueue([f"load{i}@customer.test" for i in range(outbound_count)], "load")
    listener = e2e_stack.smtpd()
    worker = e2e_stack.worker()
    per_connection = inbound_count // CONNECTIONS
    batches = [
        {f"<load-{c}-{n}@customer.test>": mail(n, tag=f"load-{c}") for n in range(per_connection)}
        for c in range(CONNECTIONS)
    ]
    inbound_ids = [key for batch in batches for key in batch]
    senders = [Sender(e2e_stack.smtpd_port) for _ in batches]
    started = time.monotonic()
    queue_run.delay()
    threads = [
        threading.Thread(target=s.send_all, args=(b,), kwargs={"to": "desk@mailhub.test"})
        for s, b in zip(senders, batches, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1800)
    # A sender retries what got no 250 (e.g. 421 when too many connections came at once).
    for _ in range(10):
        if sum(len(s.accepted) for s in senders) == len(inbound_ids):
            break
        for sender, batch in zip(senders, batches, strict=True):
            sender.send_all(batch, to="desk@mailhub.test")
    inbound_done = time.monotonic() - started
    wait_until(
        lambda: stored_once(inbound_ids)[0] == len(inbound_ids),
        timeout=scaled(120, 1800),
        message="inbound mail was not all posted",
    )
    ids = [m.pk for m in outgoing]
    wait_until(
        lambda: states(ids) == {MailState.SENT: outbound_count},
        timeout=scaled(120, 1800),
        message=f"outbound mail did not all leave: {states(ids)}",
    )
    elapsed = time.monotonic() - started
    stored, in_lost, in_dup = stored_once(inbound_ids)
    arrived, out_lost, out_dup = account(relay, outgoing)
    listener_mib = peak_rss_mib(listener.proc.pid)
    worker_mib = peak_rss_mib(worker.proc.pid)
    refusals = sum(1 for s in senders for code in s.replies if code != 250)
    fault_report.record(
        case=f"load: {inbound_count} inbound over {CONNECTIONS} connections + "
        f"{outbound_count} outbound at once",
        sent=inbound_count + outbound_count,
        arrived=stored + arrived,
        lost=in_lost + out_lost,
        duplicates=in_dup + out_dup,
        seconds=elapsed,
        notes=f"inbound accepted in {inbound_done:.0f}s ({refusals} temporary refusals, "
        f"retried); peak RSS listener {listener_mib:.0f} MiB, worker {worker_mib:.0f} MiB",
    )
    assert (stored, in_lost, in_dup) == (len(inbound_ids), 0, 0)
    assert (arrived, out_lost, out_dup) == (outbound_count, 0, 0)
    assert not any(s.refused for s in senders), "no inbound mail may be refused for good"
    # Bounded memory: far below what buffering the whole load would take.
    assert listener_mib < 400 and worker_mib < 400, (listener_mib, worker_mib)
