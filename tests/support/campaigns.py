"""Campaign fixtures: lists of contacts in bulk, campaigns, and the outbox's answer.

``outbox_report`` writes outcomes on the outbox rows of a campaign and sends
``recipients_updated`` exactly as the outbox does after a batch, for the queue-order tests that
drive the services directly; the end-to-end tests use the real sender and relay instead.
"""

from campaigns import services
from campaigns.models import Campaign, CampaignRecipient, ListMember, MailingList
from chatter.models import Contact


def mailing_list_bulk(*, name: str, count: int, prefix: str = "m", domain: str = "list.test"):
    """A list of ``count`` new contacts ``<prefix><i>@<domain>``, created in bulk."""
    mailing_list = MailingList.objects.create(name=name)
    contacts = Contact.objects.bulk_create(
        [Contact(name=f"{prefix} {i}", email=f"{prefix}{i}@{domain}") for i in range(count)],
        batch_size=1000,
    )
    ListMember.objects.bulk_create(
        [ListMember(mailing_list=mailing_list, contact=c) for c in contacts], batch_size=1000
    )
    return mailing_list


def campaign_make(*, subject: str, lists, body: str = "<p>Hello from us.</p>", user=None):
    return services.campaign_create(
        subject=subject, body_html=body, mailing_lists=lists, created_by=user
    )


def outbox_report(*, campaign: Campaign, status: str = "sent") -> list[int]:
    """Give every waiting mail of ``campaign`` the outcome ``status`` and tell the receivers."""
    from outbox.models import MailRecipient, OutgoingMail
    from outbox.signals import recipients_updated

    ids = list(
        CampaignRecipient.objects.filter(campaign=campaign, status__in=["queued", "deferred"])
        .exclude(outbox_recipient_id=None)
        .values_list("outbox_recipient_id", flat=True)
    )
    MailRecipient.objects.filter(pk__in=ids).update(status=status)
    mail_state = {"sent": "sent", "failed": "exception", "canceled": "cancel"}.get(status)
    if mail_state:
        OutgoingMail.objects.filter(recipients__pk__in=ids).update(state=mail_state)
    recipients_updated.send(sender=MailRecipient, recipient_ids=ids)
    return ids
