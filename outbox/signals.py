"""Signals other apps listen to, so the outbox never imports them.

``recipients_updated`` is sent after the outcomes of a batch are written (delivered, failed,
deferred, bounced, cancelled), with ``recipient_ids``: the ``MailRecipient`` primary keys whose
status changed. Campaigns use it to keep their counters; receivers must work in bulk.
"""

from django.dispatch import Signal

recipients_updated = Signal()
