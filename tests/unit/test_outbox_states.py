"""The outgoing mail state machine and retry schedule, without a database."""

import datetime as dt

import pytest

from outbox import states

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
POLICY = states.RetryPolicy(delays=(60, 300, 900), max_attempts=5, max_age=dt.timedelta(hours=4))


def test_actions_start_only_where_the_admin_buttons_show():
    assert states.RETRY_FROM == {states.EXCEPTION, states.CANCEL}
    assert states.CANCEL_FROM == {states.OUTGOING, states.EXCEPTION, states.SENDING}
    assert states.SEND_NOW_FROM == {states.OUTGOING}


def test_sent_mail_never_changes_state():
    for target in states.TRANSITIONS:
        assert not states.can_transition(states.SENT, target)
    with pytest.raises(states.TransitionError, match="cannot go from 'sent' to 'outgoing'"):
        states.check_transition(states.SENT, states.OUTGOING)


def test_only_a_claim_leads_to_sent():
    assert states.sources_for(states.SENT) == {states.SENDING}
    assert states.sources_for(states.SENDING) == {states.OUTGOING}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (250, states.DELIVERED),
        (251, states.DELIVERED),
        (550, states.PERMANENT),
        (554, states.PERMANENT),
        (451, states.TRANSIENT),
        (421, states.TRANSIENT),
        (None, states.TRANSIENT),  # refused connection, timeout, disconnect
    ],
)
def test_reply_codes(code, kind):
    assert states.classify_reply(code) == kind


def test_backoff_grows_then_repeats_the_last_delay():
    created = NOW
    waits = [
        (states.next_retry_at(policy=POLICY, attempts=n, created_at=created, now=NOW) - NOW)
        for n in (1, 2, 3, 4)
    ]
    assert [w.total_seconds() for w in waits] == [60, 300, 900, 900]


def test_gives_up_after_the_attempt_limit_or_the_age():
    assert states.next_retry_at(policy=POLICY, attempts=5, created_at=NOW, now=NOW) is None
    old = NOW - dt.timedelta(hours=4)
    assert states.next_retry_at(policy=POLICY, attempts=1, created_at=old, now=NOW) is None


def test_last_retry_lands_on_the_give_up_age_not_after_it():
    created = NOW - dt.timedelta(hours=3, minutes=55)
    at = states.next_retry_at(policy=POLICY, attempts=3, created_at=created, now=NOW)
    assert at == created + dt.timedelta(hours=4)


def test_a_claim_takes_a_mail_whose_worker_died_repeatedly_alone():
    due = [(1, states.OUTGOING, 0), (2, states.SENDING, 0), (3, states.OUTGOING, 5)]
    assert states.claim_pick(due) == [1, 2, 3]  # one crash keeps batches whole
    suspects = [
        (1, states.OUTGOING, 0),
        (4, states.SENDING, states.ALONE_AFTER_DEATHS),
        (5, states.SENDING, states.ALONE_AFTER_DEATHS + 3),
    ]
    assert states.claim_pick(suspects) == [4]
    assert states.claim_pick([]) == []
