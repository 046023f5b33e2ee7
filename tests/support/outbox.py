"""Outbox fixtures: posting to customers, queueing mail, and reading what the relay received."""

import pytest

from chatter.services import contact_get_or_create, follower_add, message_post
from outbox.services import MailDraft, mails_enqueue
from tests.support.chatter import TicketFactory


def post_to(*addresses: str, body: str = "<p>Hello</p>", subject: str = "Status"):
    """Post on a new ticket followed by ``addresses`` (customers, notified by email)."""
    ticket = TicketFactory()
    for address in addresses:
        follower_add(record=ticket, contact=contact_get_or_create(email=address))
    return message_post(record=ticket, author=None, body=body, subject=subject)


def enqueue(count: int, *, to: str = "rcpt{i}@customer.test", **kwargs):
    drafts = [
        MailDraft(to=to.format(i=i), subject=f"Mail {i}", body_html=f"<p>Mail {i}</p>")
        for i in range(count)
    ]
    return mails_enqueue(drafts=drafts, **kwargs)


@pytest.fixture
def outbox_settings(settings):
    """Quick retries and no daily limit unless a test sets one."""
    settings.MAILHUB_RETRY_DELAYS = [1]
    settings.MAILHUB_RETRY_MAX_ATTEMPTS = 3
    settings.MAILHUB_DAILY_QUOTA = 0
    settings.CELERY_TASK_ALWAYS_EAGER = False
    return settings
