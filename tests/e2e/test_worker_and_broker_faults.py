"""Processes die and the broker forgets: mail is found again from the database.

- A Celery worker is SIGKILLed in the middle of a large batch and another one starts: its claims
  run out and are taken again; only the mail in flight at the kill may arrive twice.
- Redis is killed (no persistence: every queued task message is gone) and restarted while mail
  waits: the next Email Queue Manager tick finds the due mail in the database.
- Two beat processes run at once: both fire the queue manager, one run sends, the other steps
  aside; no mail is sent twice.
"""

import datetime as dt
import signal
import time

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from outbox.models import MailState, OutgoingMail
from outbox.schedule import QUEUE_TASK, QUEUE_TASK_NAME
from outbox.tasks import queue_run
from tests.e2e.test_relay_faults import FAST_RETRY, account, enqueue, states
from tests.support.e2e import scaled, wait_until

pytestmark = pytest.mark.e2e


def tick_until(predicate, *, send, timeout: float, every: float, message: str, stack) -> None:
    """Fire the queue manager every ``every`` seconds (what beat does, faster) until done."""
    deadline = time.monotonic() + timeout
    next_tick = 0.0
    while time.monotonic() < deadline:
        if predicate():
            return
        if time.monotonic() >= next_tick:
            send()
            next_tick = time.monotonic() + every
        time.sleep(0.2)
    pytest.fail(f"{message}\n{stack.logs()}")


def test_worker_killed_mid_batch_and_restarted_sends_the_rest_once(e2e_stack, fault_report):
    relay = e2e_stack.relay
    # Short leases and run budget so an abandoned claim and the queue lock free up in seconds.
    e2e_stack.env.update(
        FAST_RETRY,
        MAILHUB_CLAIM_LEASE_SECONDS="4",
        MAILHUB_QUEUE_TIME_BUDGET="6",
        MAILHUB_QUEUE_BATCH_SIZE="500",
    )
    count = scaled(600, 5000)
    mails = enqueue([f"k{i}@customer.test" for i in range(count)], "killed")
    ids = [m.pk for m in mails]
    relay.handler.delay = 0.002  # a relay that takes its time, so the kill lands mid-batch
    started = time.monotonic()
    first = e2e_stack.worker()
    queue_run.delay()
    wait_until(
        lambda: len(relay.message_ids()) >= count // 4,
        timeout=90,
        message="the first worker did not start sending",
    )
    first.kill(signal.SIGKILL)
    first.proc.wait(timeout=10)
    at_kill = len(relay.message_ids())
    in_sending = OutgoingMail.objects.filter(pk__in=ids, state=MailState.SENDING).count()
    assert 0 < at_kill < count, "the kill did not land in the middle of the batch"
    assert in_sending > 0, "nothing was claimed at the kill: the case proved nothing"

    e2e_stack.worker()
    tick_until(
        lambda: states(ids) == {MailState.SENT: count},
        send=queue_run.delay,
        timeout=180,
        every=3,
        stack=e2e_stack,
        message=f"mail was not all sent after the restart: {states(ids)}",
    )
    arrived, lost, duplicates = account(relay, mails)
    fault_report.record(
        case="worker SIGKILLed mid-batch, restarted",
        sent=count,
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"killed after {at_kill} had left, {in_sending} claimed at the kill",
    )
    assert (arrived, lost) == (count, 0)
    assert duplicates <= 1, "only the mail in flight at the kill may arrive twice"


def test_redis_killed_and_restarted_while_mail_waits_nothing_is_lost(
    e2e_stack, private_redis, loopback_proxy, fault_report
):
    from mailhub.celery import app

    relay = e2e_stack.relay
    proxy = loopback_proxy(relay.port)
    proxy.set_mode("refuse")  # the mail waits: deferred, with its retry wake-up in the broker
    e2e_stack.broker_url = private_redis.url
    e2e_stack.env.update(FAST_RETRY, MAILHUB_RELAY_PORT=str(proxy.port))

    def tick() -> None:
        with app.connection_for_write(private_redis.url) as conn:
            queue_run.apply_async(connection=conn)

    count = scaled(50, 1000)
    mails = enqueue([f"r{i}@customer.test" for i in range(count)], "redis")
    ids = [m.pk for m in mails]
    started = time.monotonic()
    worker = e2e_stack.worker()
    tick()
    wait_until(
        lambda: OutgoingMail.objects.filter(pk__in=ids, attempts__gte=1).count() == count,
        timeout=60,
        message="the worker did not try the mail",
    )
    private_redis.stop()  # SIGKILL, no persistence: queued tasks and retry wake-ups are gone
    proxy.set_mode("forward")
    time.sleep(2)
    private_redis.start()

    restarts = 0

    def tick_and_supervise() -> None:
        # docker-compose restarts a worker that exits (restart: unless-stopped); so does this.
        nonlocal worker, restarts
        if worker.proc.poll() is not None:
            restarts += 1
            worker = e2e_stack.worker()
        tick()

    tick_until(
        lambda: states(ids) == {MailState.SENT: count},
        send=tick_and_supervise,
        timeout=90,
        every=5,
        stack=e2e_stack,
        message=f"due mail was not found again after Redis restarted: {states(ids)}",
    )
    arrived, lost, duplicates = account(relay, mails)
    fault_report.record(
        case="Redis killed and restarted while mail is queued",
        sent=count,
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes="found again from the database by the next queue manager tick; "
        f"worker restarted by its supervisor {restarts} time(s)",
    )
    assert (arrived, lost, duplicates) == (count, 0, 0)


def test_two_beats_at_once_the_queue_manager_never_overlaps_itself(e2e_stack, fault_report):
    relay = e2e_stack.relay
    relay.handler.delay = 0.02  # each run takes seconds, so the two beats' runs would overlap
    e2e_stack.env.update(FAST_RETRY, MAILHUB_QUEUE_TIME_BUDGET="60")
    count = scaled(300, 2000)
    mails = enqueue([f"b{i}@customer.test" for i in range(count)], "beats")
    ids = [m.pk for m in mails]
    every, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    task, _ = PeriodicTask.objects.get_or_create(
        name=QUEUE_TASK_NAME, defaults={"task": QUEUE_TASK, "interval": every}
    )
    started = time.monotonic()
    workers = [e2e_stack.worker(), e2e_stack.worker()]
    beats = [e2e_stack.beat(), e2e_stack.beat()]
    wait_until(
        lambda: all("beat: Starting" in b.output() for b in beats),
        timeout=60,
        message="the beats did not start",
    )

    def overdue() -> None:
        # Make the queue manager overdue again (as after a deploy or a long pause): both beats
        # reload the changed schedule and fire it, again and again, while the mail leaves.
        task.last_run_at = timezone.now() - dt.timedelta(hours=2)
        task.save(update_fields=["last_run_at"])
        PeriodicTasks.update_changed()

    tick_until(
        lambda: states(ids) == {MailState.SENT: count},
        send=overdue,
        timeout=120,
        every=2,
        stack=e2e_stack,
        message="the beats' queue manager runs did not send the mail",
    )
    fired = [b.output().count("Sending due task Mail: Email Queue Manager") for b in beats]
    skipped = "".join(w.output() for w in workers).count("queue.skipped")
    arrived, lost, duplicates = account(relay, mails)
    fault_report.record(
        case="two beat processes at once",
        sent=count,
        arrived=arrived,
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - started,
        notes=f"queue manager fired {sum(fired)} times by two beats, "
        f"{skipped} run(s) stepped aside while another held the lock",
    )
    assert all(fired), f"both beats should fire the overdue queue manager: {fired}"
    assert skipped >= 1, "the second run did not step aside while the first held the lock"
    assert (arrived, lost, duplicates) == (count, 0, 0)
