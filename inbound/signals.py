"""Signals other apps listen to, so the inbound gateway never imports them.

``complaint_received`` is sent once a feedback-loop report (RFC 5965) was tied to the exact
copy it is about, with ``recipient_id`` (the outbox ``MailRecipient`` of that copy, or None),
``contact_id`` and ``at``. Campaigns count it on the campaign that sent the copy.
"""

from django.dispatch import Signal

complaint_received = Signal()
