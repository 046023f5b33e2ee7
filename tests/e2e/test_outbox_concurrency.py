"""Real Celery worker processes racing over the queue on PostgreSQL (SKIP LOCKED claims).

Counting Message-IDs at the relay proves each mail left exactly once, whatever the races.
"""

import signal
import time
from collections import Counter

import pytest
from django.db import connection

from chatter.models import FailureType
from outbox.models import DailyQuota, MailState, OutgoingMail
from outbox.tasks import mail_send_urgent, queue_run
from tests.conftest import wait_for
from tests.support.outbox import enqueue

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "SKIP LOCKED claims race only on PostgreSQL; SQLite has a single writer. "
            "Run with DATABASE_URL=postgres://..."
        )


def _received_counts(relay) -> Counter:
    return Counter(relay.handler.message_ids())


def test_two_queue_managers_deliver_5000_mails_exactly_once(relay, celery_worker_process):
    mails = enqueue(5000)
    expected = {m.message_id for m in mails}
    env = {
        "MAILHUB_DAILY_QUOTA": "0",
        "MAILHUB_QUEUE_BATCH_SIZE": "100",
        "MAILHUB_QUEUE_PARALLEL": "2",  # a run also sends a helper to the other worker
    }
    workers = [celery_worker_process(name=f"w{i}", **env) for i in range(2)]
    ids = [m.pk for m in mails]
    # Two queue-manager runs (one wins the lock and brings a helper; the other is refused or runs
    # after it) and two Send Now over every mail: several claimers at once.
    queue_run.delay()
    queue_run.delay()
    mail_send_urgent.delay(ids)
    mail_send_urgent.delay(list(reversed(ids)))
    wait_for(
        lambda: (
            len(relay.handler.received) >= 5000
            and not OutgoingMail.objects.exclude(state=MailState.SENT).exists()
        ),
        timeout=150,
        interval=0.5,
        message=f"not all sent: {len(relay.handler.received)} at the relay\n"
        + "\n".join(w.output()[-1500:] for w in workers),
    )
    time.sleep(0.5)
    counts = _received_counts(relay)
    assert set(counts) == expected
    assert max(counts.values()) == 1, counts.most_common(3)
    assert sum(OutgoingMail.objects.values_list("attempts", flat=True)) == 5000


def test_worker_killed_mid_batch_loses_nothing(relay, celery_worker_process):
    mails = enqueue(400)
    env = {
        "MAILHUB_DAILY_QUOTA": "0",
        "MAILHUB_QUEUE_BATCH_SIZE": "400",
        "MAILHUB_CLAIM_LEASE_SECONDS": "3",
    }
    first = celery_worker_process(name="doomed", **env)
    ids = [m.pk for m in mails]
    mail_send_urgent.delay(ids)
    wait_for(
        lambda: len(relay.handler.received) >= 50,
        timeout=60,
        message=f"the first worker sent nothing:\n{first.output()[-2000:]}",
    )
    first.kill(signal.SIGKILL)
    first.proc.wait(timeout=10)
    before = len(relay.handler.received)
    assert before < 400, "the batch finished before the kill: make it bigger"
    assert OutgoingMail.objects.filter(state=MailState.SENDING).exists()
    survivor = celery_worker_process(name="survivor", **env)
    time.sleep(3.5)  # the dead worker's lease runs out
    mail_send_urgent.delay(ids)
    wait_for(
        lambda: not OutgoingMail.objects.exclude(state=MailState.SENT).exists(),
        timeout=90,
        interval=0.5,
        message="the abandoned mail never came back to the queue",
    )
    counts = _received_counts(relay)
    assert set(counts) == {m.message_id for m in mails}
    duplicates = [mid for mid, n in counts.items() if n > 1]
    # Only the mail on the wire at the kill may go twice (its outcome was never written).
    assert len(duplicates) <= 1, duplicates
    assert all(n <= 2 for n in counts.values())
    # What the dead worker had delivered but not yet written came back from its journal.
    assert "queue.journal_replayed" in survivor.output()


def test_four_workers_racing_a_quota_of_100_send_exactly_100(relay, celery_worker_process):
    mails = enqueue(400)
    env = {"MAILHUB_DAILY_QUOTA": "100", "MAILHUB_QUEUE_BATCH_SIZE": "10"}
    workers = [celery_worker_process(name=f"q{i}", **env) for i in range(4)]
    ids = [m.pk for m in mails]
    for offset in range(4):
        mail_send_urgent.delay(ids[offset:] + ids[:offset])
    wait_for(
        lambda: (
            not OutgoingMail.objects.filter(
                state__in=[MailState.OUTGOING, MailState.SENDING]
            ).exists()
        ),
        timeout=120,
        interval=0.5,
        message="\n".join(w.output()[-1500:] for w in workers),
    )
    time.sleep(0.5)
    counts = _received_counts(relay)
    assert len(relay.handler.received) == 100
    assert max(counts.values()) == 1
    assert DailyQuota.objects.get().used == 100
    over = OutgoingMail.objects.filter(state=MailState.EXCEPTION)
    assert over.count() == 300
    assert set(over.values_list("failure_type", flat=True)) == {FailureType.QUOTA}
