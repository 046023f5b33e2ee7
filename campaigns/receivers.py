"""Signal receivers: the outbox tells us what happened to campaign mail."""

from . import services
from .models import UnsubscribeMethod


def on_recipients_updated(sender, recipient_ids=(), **kwargs) -> None:
    services.campaign_recipients_sync(recipient_ids=list(recipient_ids))


def on_complaint_received(sender, recipient_id=None, at=None, **kwargs) -> None:
    """A feedback-loop report about one copy: count it on the campaign that sent it."""
    if recipient_id is not None:
        services.campaign_complaint_record(outbox_recipient_id=recipient_id, at=at)


def mail_unsubscribe_check(token: str) -> bool:
    """The inbound gateway asks at DATA whether ``unsubscribe <token>`` is one of ours."""
    return services.unsubscribe_target(token=token) is not None


def mail_unsubscribe_apply(token: str) -> bool:
    """The same service as the one-click POST, recorded as "by mail"; idempotent."""
    return services.contact_unsubscribe(token=token, method=UnsubscribeMethod.MAIL) is not None
