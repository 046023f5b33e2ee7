"""The queue manager's run: never two at once, leases, and the journal of a dead worker."""

import datetime as dt
import subprocess
import sys

import pytest
from django.utils import timezone

from outbox.models import MailRecipient, MailState, OutgoingMail, QueueLock, RecipientStatus
from outbox.services import QUEUE_LOCK, journal_dir, journals_replay, mails_claim, queue_run
from tests.support.outbox import enqueue

pytestmark = pytest.mark.django_db


def test_a_run_never_overlaps_another(relay, outbox_settings):
    enqueue(3)
    QueueLock.objects.create(
        name=QUEUE_LOCK, holder="other:1:x", expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    assert queue_run() is None
    assert relay.handler.received == []
    # A run that died keeps the lock only until its lease ends.
    QueueLock.objects.filter(name=QUEUE_LOCK).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    report = queue_run()
    assert report.delivered == 3
    assert len(relay.handler.received) == 3
    assert QueueLock.objects.get(name=QUEUE_LOCK).holder == ""


def test_a_claim_whose_lease_ran_out_is_claimable_again(outbox_settings):
    (mail,) = enqueue(1)
    assert mails_claim(limit=10, holder="a:1:x") == [mail.pk]
    assert mails_claim(limit=10, holder="b:2:y") == []  # held
    OutgoingMail.objects.filter(pk=mail.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert mails_claim(limit=10, holder="b:2:y") == [mail.pk]
    mail.refresh_from_db()
    assert (mail.state, mail.claimed_by) == (MailState.SENDING, "b:2:y")


def test_journal_of_a_dead_process_is_replayed_once(outbox_settings):
    first, second = enqueue(2)
    done = MailRecipient.objects.get(mail=first)
    open_one = MailRecipient.objects.get(mail=second)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    folder = journal_dir()
    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / f"{dead.stdout.strip()}-abc.log"
    journal.write_text(f"{done.pk}\tsent\t250\t2.0.0 Ok: queued as 1\n{open_one.pk}\tsent\t")
    assert journals_replay() == 1  # the torn last line is ignored
    done.refresh_from_db()
    assert (done.status, done.code, done.response) == (
        RecipientStatus.SENT,
        250,
        "2.0.0 Ok: queued as 1",
    )
    assert MailRecipient.objects.get(pk=open_one.pk).status == RecipientStatus.PENDING
    assert not journal.exists()
    assert journals_replay() == 0


def test_a_spent_time_budget_claims_nothing_and_strands_nothing(relay, outbox_settings):
    from outbox.services import mails_send

    enqueue(2)
    report = mails_send(time_budget=1e-9)
    assert (report.claimed, report.out_of_time) == (0, True)
    assert set(OutgoingMail.objects.values_list("state", flat=True)) == {MailState.OUTGOING}


def test_due_count_sees_due_and_abandoned_mail_only(outbox_settings):
    from outbox.selectors import mails_due_count

    now_due, later, abandoned = enqueue(3)
    OutgoingMail.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=1)
    )
    OutgoingMail.objects.filter(pk=abandoned.pk).update(
        state=MailState.SENDING, lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert mails_due_count() == 2
