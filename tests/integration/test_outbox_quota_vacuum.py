"""The daily limit (exact, with fail and defer policies) and the auto-vacuum."""

import datetime as dt

import pytest
from django.utils import timezone

from chatter.models import FailureType, Notification, NotificationStatus
from outbox.models import DailyQuota, MailRecipient, MailState, OutgoingMail, RecipientStatus
from outbox.services import mails_retry, mails_send, mails_vacuum, quota_reserve
from tests.support.outbox import enqueue, post_to

pytestmark = pytest.mark.django_db


def _today():
    return timezone.now().astimezone(dt.UTC).date()


def test_quota_is_exact_and_over_it_mail_fails_with_daily_limit(relay, outbox_settings):
    outbox_settings.MAILHUB_DAILY_QUOTA = 5
    enqueue(4)
    message = post_to("anna@customer.test", "ben@customer.test")
    mails_send()
    assert len(relay.handler.received) == 5
    assert DailyQuota.objects.get(day=_today()).used == 5
    failed = OutgoingMail.objects.filter(state=MailState.EXCEPTION)
    assert failed.count() == 1
    notes = Notification.objects.filter(message=message)
    over = [n for n in notes if n.status == NotificationStatus.EXCEPTION]
    # The mails queued first were sent first: the post's second recipient is the one over.
    assert len(over) == 1
    assert over[0].failure_type == FailureType.QUOTA
    assert "retry tomorrow" in over[0].failure_reason.lower()
    assert "MAILHUB_DAILY_QUOTA" in over[0].failure_reason
    # Raising the limit and retrying sends the rest.
    outbox_settings.MAILHUB_DAILY_QUOTA = 10
    mails_retry(mail_ids=list(failed.values_list("pk", flat=True)))
    mails_send()
    assert len(relay.handler.received) == 6
    assert DailyQuota.objects.get(day=_today()).used == 6


def test_refused_mail_does_not_use_the_quota(relay, outbox_settings):
    outbox_settings.MAILHUB_DAILY_QUOTA = 2
    post_to("nobody@reject.test", "anna@customer.test")
    mails_send()
    assert DailyQuota.objects.get(day=_today()).used == 1


def test_defer_policy_waits_for_tomorrow(relay, outbox_settings):
    outbox_settings.MAILHUB_DAILY_QUOTA = 1
    outbox_settings.MAILHUB_QUOTA_POLICY = "defer"
    first, second = enqueue(2)
    mails_send()
    assert relay.handler.message_ids() == [first.message_id]
    second.refresh_from_db()
    assert second.state == MailState.OUTGOING
    assert second.next_attempt_at.astimezone(dt.UTC).date() == _today() + dt.timedelta(days=1)
    assert MailRecipient.objects.get(mail=second).status == RecipientStatus.PENDING


def test_reservations_never_pass_the_limit(outbox_settings):
    outbox_settings.MAILHUB_DAILY_QUOTA = 100
    grants = [quota_reserve(wanted=30) for _ in range(5)]
    assert grants == [30, 30, 30, 10, 0]


def test_vacuum_deletes_old_sent_and_cancelled_mail_only(outbox_settings):
    mails = enqueue(6)
    old = timezone.now() - dt.timedelta(days=31)
    states = [MailState.SENT, MailState.CANCEL, MailState.EXCEPTION, MailState.OUTGOING]
    for mail, state in zip(mails, states, strict=False):
        OutgoingMail.objects.filter(pk=mail.pk).update(state=state, created_at=old)
    OutgoingMail.objects.filter(pk=mails[4].pk).update(state=MailState.SENT)  # recent
    assert mails_vacuum(older_than_days=30, batch_size=1) == 2
    left = set(OutgoingMail.objects.values_list("pk", flat=True))
    assert left == {m.pk for m in mails[2:]}
