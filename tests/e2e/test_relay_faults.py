"""The relay misbehaves while mail leaves through the real worker: nothing lost, nothing doubled.

Mail is queued in the database, a real Celery worker sends it to a real relay on loopback, and
the relay (or a proxy in front of it) refuses, defers, rejects or drops. At the end every mail
is either at the relay exactly once or visibly failed with the relay's words.
"""

import time

import pytest

from outbox.models import MailAttempt, MailState, OutgoingMail
from outbox.services import MailDraft, mails_enqueue
from outbox.tasks import queue_run
from tests.support.e2e import scaled, wait_until

pytestmark = pytest.mark.e2e

# Quick retries so a case fits in seconds; the production delays are minutes (RFC 5321 §4.5.4.1).
FAST_RETRY = {
    "MAILHUB_RETRY_DELAYS": "2,4",
    "MAILHUB_RETRY_MAX_ATTEMPTS": "20",
    "MAILHUB_DAILY_QUOTA": "0",
}


def enqueue(addresses: list[str], tag: str) -> list[OutgoingMail]:
    drafts = [
        MailDraft(to=a, subject=f"{tag} {i}", body_html=f"<p>{tag} {i}</p>")
        for i, a in enumerate(addresses)
    ]
    return mails_enqueue(drafts=drafts)


def states(ids) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in OutgoingMail.objects.filter(pk__in=ids).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def account(relay, mails) -> tuple[int, int, int]:
    """(arrived, lost, duplicates) of ``mails``: lost = neither at the relay nor failed."""
    at_relay = relay.counts()
    failed = set(
        OutgoingMail.objects.filter(
            pk__in=[m.pk for m in mails], state=MailState.EXCEPTION
        ).values_list("message_id", flat=True)
    )
    arrived = sum(1 for m in mails if at_relay.get(m.message_id))
    lost = sum(1 for m in mails if not at_relay.get(m.message_id) and m.message_id not in failed)
    duplicates = sum(at_relay[m.message_id] - 1 for m in mails if at_relay.get(m.message_id, 0) > 1)
    return arrived, lost, duplicates


def test_relay_refusing_connections_then_back_mail_waits_with_backoff_then_leaves(
    e2e_stack, loopback_proxy, fault_report
):
    relay = e2e_stack.relay
    proxy = loopback_proxy(relay.port)
    proxy.set_mode("refuse")
    e2e_stack.env.update(FAST_RETRY, MAILHUB_RELAY_PORT=str(proxy.port))
    count = scaled(40, 1000)
    mails = enqueue([f"wait{i}@customer.test" for i in range(count)], "refused")
    ids = [m.pk for m in mails]
    started = time.monotonic()
    e2e_stack.worker()
    queue_run.delay()

    wait_until(
        lambda: OutgoingMail.objects.filter(pk__in=ids, attempts__gte=2).count() == count,
        timeout=60,
        message="mail was not retried while the relay refused connections",
    )
    time.sleep(3)
    # Backoff, not a busy loop: a handful of attempts per mail in several seconds of outage.
    tries = MailAttempt.objects.filter(mail_id__in=ids).count()
    assert tries <= count * 6, f"{tries} attempts for {count} mails in a short outage"
    assert states(ids) == {MailState.OUTGOING: count} or set(states(ids)) <= {
        MailState.OUTGOING,
        MailState.SENDING,
    }
    waiting = OutgoingMail.objects.filter(pk__in=ids, state=MailState.OUTGOING).first()
    assert waiting.next_attempt_at is not None and waiting.failure_reason == ""
    assert relay.message_ids() == []

    proxy.set_mode("forward")  # the relay is back; nobody pokes the queue
    wait_until(
        lambda: states(ids) == {MailState.SENT: count},
        timeout=90,
        message=f"mail did not leave after the relay came back: {states(ids)}",
    )
    arrived, lost, duplicates = account(relay, mails)
    fault_report.record(
        case="relay refuses connections, then comes back",
        sent=count,
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"{tries} attempts during the outage",
    )
    assert (arrived, lost, duplicates) == (count, 0, 0)


REPLIES = {
    # domain: (where, reply, permanent?)
    "r451.test": ("rcpt", "451 4.3.0 Local problem, try later", False),
    "r452.test": ("rcpt", "452 4.5.3 Too many recipients", False),
    "r550.test": ("rcpt", "550 5.1.1 <{addr}>: mailbox unavailable", True),
    "r554.test": ("rcpt", "554 5.7.1 <{addr}>: relay access denied", True),
    "d451.test": ("data", "451 4.3.0 Queue full, try later", False),
    "d452.test": ("data", "452 4.3.1 Insufficient system storage", False),
    "d550.test": ("data", "550 5.7.1 Message refused by policy", True),
    "d554.test": ("data", "554 5.6.0 Message content rejected", True),
    # 421 closes the session (RFC 5321 §3.8): the sender treats the relay as down for the rest
    # of the batch and defers it. These go last so they hold back only each other.
    "r421.test": ("rcpt", "421 4.7.0 Too busy, closing", False),
    "d421.test": ("data", "421 4.7.0 Too busy, closing", False),
}


def test_relay_answers_4xx_and_5xx_at_rcpt_and_at_end_of_data_and_drops_mid_data(
    e2e_stack, loopback_proxy, fault_report
):
    relay = e2e_stack.relay
    proxy = loopback_proxy(relay.port)
    e2e_stack.env.update(
        FAST_RETRY, MAILHUB_RELAY_PORT=str(proxy.port), MAILHUB_RETRY_MAX_ATTEMPTS="100"
    )
    per_class = scaled(3, 100)
    for domain, (where, reply, _) in REPLIES.items():
        rules = relay.handler.rcpt_rules if where == "rcpt" else relay.handler.data_rules
        rules.append((f"@{domain}", reply))
    by_domain = {
        domain: enqueue([f"u{i}@{domain}" for i in range(per_class)], domain)
        for domain in ["ok.test", *REPLIES]
    }
    # A drop also makes the sender give up on the session for the rest of its batch (after one
    # reconnect), so the drops are few and last, like the 421s.
    drops = scaled(3, 20)
    dropped = enqueue([f"drop{i}@ok.test" for i in range(drops)], "dropmid")
    # The first deliveries of the "dropmid" mails are cut after DATA began (at their Subject).
    proxy.cut_when(b"Subject: dropmid", times=drops)
    all_mails = [m for mails in by_domain.values() for m in mails] + dropped
    started = time.monotonic()
    e2e_stack.worker()
    queue_run.delay()

    def settled() -> bool:
        ids = [m.pk for m in all_mails]
        return not OutgoingMail.objects.filter(pk__in=ids, attempts=0).exists() and not (
            OutgoingMail.objects.filter(pk__in=ids, state=MailState.SENDING).exists()
        )

    wait_until(
        settled,
        timeout=scaled(90, 900),
        message=lambda: f"the relay's answers were not all recorded\n{e2e_stack.logs()}",
    )
    for domain, (_, reply, permanent) in REPLIES.items():
        ids = [m.pk for m in by_domain[domain]]
        if permanent:
            assert states(ids) == {MailState.EXCEPTION: per_class}, domain
            reason = OutgoingMail.objects.get(pk=ids[0]).failure_reason
            code = reply.split()[0]
            assert reason.startswith("Mail delivery failed via SMTP server"), reason
            assert code in reason, f"{domain}: the relay's code is missing from {reason!r}"
        else:
            waiting = OutgoingMail.objects.filter(pk__in=ids)
            assert {m.state for m in waiting} <= {MailState.OUTGOING, MailState.SENDING}, domain
            assert all(m.failure_reason == "" for m in waiting), domain
    assert proxy.cuts >= 1, "no delivery was dropped mid-DATA"

    # The relay recovers: every transient refusal is retried and lands once.
    relay.handler.rcpt_rules.clear()
    relay.handler.data_rules.clear()
    transient = [m for d, (_, _, p) in REPLIES.items() if not p for m in by_domain[d]]
    expected = transient + by_domain["ok.test"] + dropped
    wait_until(
        lambda: states([m.pk for m in expected]) == {MailState.SENT: len(expected)},
        timeout=scaled(120, 900),
        message=lambda: (
            "transient refusals were not delivered after the relay recovered: "
            f"{states([m.pk for m in expected])}\n{e2e_stack.logs()}"
        ),
    )
    arrived, lost, duplicates = account(relay, all_mails)
    permanent_count = len(all_mails) - len(expected)
    fault_report.record(
        case="relay answers 421/451/452/550/554 at RCPT and end of DATA, drops mid-DATA",
        sent=len(all_mails),
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"{permanent_count} refused for good (5xx), shown as Delivery Failed",
    )
    assert proxy.cuts == drops, "every armed mid-DATA drop happened"
    assert arrived == len(expected) and lost == 0 and duplicates == 0
    assert not any(relay.counts().get(m.message_id) for m in all_mails if m not in expected)


def test_connection_lost_after_the_final_reply_duplicates_at_most_that_one_mail(
    e2e_stack, loopback_proxy, fault_report
):
    """The one allowed duplicate: the relay said 250, the sender never heard it."""
    relay = e2e_stack.relay
    proxy = loopback_proxy(relay.port)
    e2e_stack.env.update(FAST_RETRY, MAILHUB_RELAY_PORT=str(proxy.port))
    count = scaled(20, 500)
    mails = enqueue([f"c{i}@ok.test" for i in range(count)], "lostreply")
    proxy.cut_when(b"250 2.0.0 OK: queued", times=1, from_server=True)
    started = time.monotonic()
    e2e_stack.worker()
    queue_run.delay()
    wait_until(
        lambda: states([m.pk for m in mails]) == {MailState.SENT: count},
        timeout=90,
        message="mail did not all leave",
    )
    arrived, lost, duplicates = account(relay, mails)
    fault_report.record(
        case="connection lost after the relay's final 250",
        sent=count,
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes="the allowed case: the mail whose 250 was lost arrives twice",
    )
    assert proxy.cuts == 1
    assert (arrived, lost) == (count, 0)
    assert duplicates == 1, "exactly the mail in flight may arrive twice, never a batch"
