"""The automatic blacklist rule on its own (no database): 5 hard bounces over more than a week."""

import datetime as dt

from chatter.suppression import blacklist_rule_met

T0 = dt.datetime(2026, 9, 1, 12, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def rule(count: int, days: list[float]) -> bool:
    times = [T0 + dt.timedelta(days=d) for d in days]
    return blacklist_rule_met(bounce_count=count, bounce_times=times, limit=5, min_spread=WEEK)


def test_five_bounces_spread_over_more_than_a_week_blacklist():
    assert rule(5, [0, 2, 4, 6, 8])


def test_four_bounces_are_not_enough():
    assert not rule(4, [0, 3, 6, 9])


def test_five_bounces_within_one_week_are_not_enough():
    # A mailbox server down for an afternoon must not suppress the address for good.
    assert not rule(5, [0, 1, 2, 3, 7])


def test_exactly_one_week_apart_is_not_more_than_a_week():
    assert not rule(5, [0, 1, 2, 3, 7])
    assert rule(5, [0, 1, 2, 3, 7.01])


def test_a_counter_reset_by_genuine_mail_holds_off_the_blacklist():
    # Odoo's rule also wants the contact's own counter at the limit.
    assert not rule(2, [0, 2, 4, 6, 8])
