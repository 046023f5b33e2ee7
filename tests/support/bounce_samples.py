"""Bounce samples in the shapes real MTAs and providers send, each with what it should mean.

Every sample is a builder ``build(message_id=..., recipient=..., sender=...)`` returning the raw
bytes of a bounce for the mail we sent to ``recipient`` with the Return-Path ``sender`` (the
VERP address of that recipient's copy), and the severity a reader should find. The layouts
follow the servers' own templates: RFC 3464 reports as Postfix, Sendmail, Exim, Exchange,
Office 365, Gmail, Amazon SES, SendGrid-style relays, Lotus Domino and X.400 gateways write
them (with their quirks: no ``report-type``, a report wrapped in ``multipart/mixed``, a
quoted-printable or base64 report, a separator line holding a space, ``Action: error``,
comments in fields, an internal ``Final-Recipient``), and the non-standard texts of Exim,
qmail, Yahoo, GroupWise, old Exchange and Sendmail's plain notices.

``tests/support/bounces.py`` holds the five older builders; they are listed here too.
"""

import base64
import quopri
from collections.abc import Callable
from dataclasses import dataclass

from inbound.dsn import HARD, POLICY, SOFT

from . import bounces
from .bounces import _crlf, _date, _original_headers, _unique


@dataclass(frozen=True)
class Sample:
    name: str
    build: Callable[..., bytes]
    severity: str  # what the failure means for the address


def _report_message(
    *,
    sender: str,
    daemon: str,
    subject: str,
    human: str,
    report: str,
    original: str,
    outer: str = "multipart/report; report-type=delivery-status",
    report_encoding: str = "7bit",
    wrap_mixed: bool = False,
    extra_headers: str = "",
    original_type: str = "text/rfc822-headers",
    report_part: str = "message/delivery-status",
) -> bytes:
    """An RFC 6522 report: the human part, the delivery-status part, the returned original."""
    boundary = f"=_report_{_unique()}"
    if report_encoding == "quoted-printable":
        # Long lines get soft line breaks (RFC 2045 §6.7), here inside the Diagnostic-Code.
        body = quopri.encodestring(report.encode(), quotetabs=False).decode()
    elif report_encoding == "base64":
        body = base64.encodebytes(report.encode()).decode()
    else:
        body = report
    parts = (
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Content-Description: Notification\n\n"
        f"{human}\n\n"
        f"--{boundary}\n"
        f"Content-Type: {report_part}\n"
        f"Content-Transfer-Encoding: {report_encoding}\n"
        "Content-Description: Delivery report\n\n"
        f"{body}\n"
        f"--{boundary}\n"
        f"Content-Type: {original_type}\n"
        "Content-Description: Undelivered Message Headers\n\n"
        f"{original}\n"
        f"--{boundary}--\n"
    )
    if wrap_mixed:
        # A gateway or list manager wrapping the report in multipart/mixed.
        inner = f'Content-Type: {outer}; boundary="{boundary}"\n\n{parts}'
        mixed = f"=_mixed_{_unique()}"
        content = (
            f'Content-Type: multipart/mixed; boundary="{mixed}"\n\n'
            f"--{mixed}\n"
            "Content-Type: text/plain\n\nThe message below was returned.\n\n"
            f"--{mixed}\n{inner}\n--{mixed}--\n"
        )
    else:
        content = f'Content-Type: {outer}; boundary="{boundary}"\n\n{parts}'
    return _crlf(
        "Return-Path: <>\n"
        f"Date: {_date()}\n"
        f"From: {daemon}\n"
        f"To: <{sender}>\n"
        f"Subject: {subject}\n"
        f"Message-ID: <{_unique()}@{daemon.rpartition('@')[2].strip('>')}>\n"
        f"{extra_headers}"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        f"{content}"
    )


def _plain_message(
    *, sender: str, daemon: str, subject: str, text: str, extra_headers: str = ""
) -> bytes:
    return _crlf(
        "Return-Path: <>\n"
        f"Date: {_date()}\n"
        f"From: {daemon}\n"
        f"To: {sender}\n"
        f"Subject: {subject}\n"
        f"Message-ID: <{_unique()}@{daemon.rpartition('@')[2].strip('>')}>\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        f"{text}"
    )


def _headers(message_id: str, sender: str, recipient: str) -> str:
    return _original_headers(message_id=message_id, sender=sender, recipient=recipient)


def sendmail_dsn(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Sendmail 8: Original-Recipient is ours, Final-Recipient the local mailbox it became."""
    local = recipient.split("@")[0]
    return _report_message(
        sender=sender,
        daemon="Mail Delivery Subsystem <MAILER-DAEMON@smtp.customer.test>",
        subject="Returned mail: see transcript for details",
        human=(
            "The original message was received at Thu, 3 Dec 2026 10:02:11 +0100\n"
            "from relay.mailhub.test [192.0.2.10]\n\n"
            "   ----- The following addresses had permanent fatal errors -----\n"
            f"<{recipient}>\n"
            f"    (reason: 550 5.1.1 <{local}>... User unknown)\n\n"
            "   ----- Transcript of session follows -----\n"
            f"... while talking to mailhost.customer.test.:\n>>> RCPT To:<{local}>\n"
            f"<<< 550 5.1.1 <{local}>... User unknown"
        ),
        report=(
            "Reporting-MTA: dns; smtp.customer.test\n"
            "Received-From-MTA: DNS; relay.mailhub.test\n"
            "Arrival-Date: Thu, 3 Dec 2026 10:02:11 +0100\n\n"
            f"Original-Recipient: rfc822;{recipient}\n"
            f"Final-Recipient: RFC822; {local}@mailhost.customer.test\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "Remote-MTA: DNS; mailhost.customer.test\n"
            f"Diagnostic-Code: SMTP; 550 5.1.1 <{local}>... User unknown\n"
            "Last-Attempt-Date: Thu, 3 Dec 2026 10:02:12 +0100\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def gmail_nonexistent(*, message_id: str, recipient: str, sender: str) -> bytes:
    return _report_message(
        sender=sender,
        daemon="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        subject="Delivery Status Notification (Failure)",
        human=(
            "** Address not found **\n\n"
            f"Your message wasn't delivered to {recipient} because the address couldn't be "
            "found, or is unable to receive mail.\n\nThe response from the remote server was:\n"
            f"550 5.1.1 The email account that you tried to reach does not exist."
        ),
        report=(
            "Reporting-MTA: dns; googlemail.com\n"
            "Received-From-MTA: dns; relay.mailhub.test\n"
            "Arrival-Date: Thu, 03 Dec 2026 01:02:03 -0800 (PST)\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the server\n"
            " for the domain customer.test.)\n"
            "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does\n"
            "    not exist. Please try 550-5.1.1 double-checking the recipient's email address\n"
            "    for typos or 550 5.1.1 unnecessary spaces. https://support.google.com/mail\n"
            "Last-Attempt-Date: Thu, 03 Dec 2026 01:02:04 -0800 (PST)\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def gmail_spam_block(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A policy block reported with Status 5.0.0: the Diagnostic-Code's 5.7.1 says what it is."""
    return _report_message(
        sender=sender,
        daemon="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        subject="Delivery Status Notification (Failure)",
        human=f"** Message blocked **\n\nYour message to {recipient} has been blocked.",
        report=(
            "Reporting-MTA: dns; googlemail.com\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: smtp; 550-5.7.1 [192.0.2.10] Our system has detected that this\n"
            "    message is likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
            "    this message has been blocked.\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def office365_policy(*, message_id: str, recipient: str, sender: str) -> bytes:
    return _report_message(
        sender=sender,
        daemon="Microsoft Outlook <postmaster@outlook.com>",
        subject="Undeliverable: Re: Printer on fire",
        human=(
            f"Your message to {recipient} couldn't be delivered.\n"
            "Access denied, banned sending IP [192.0.2.10]."
        ),
        report=(
            "Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\n"
            "Received-From-MTA: dns;relay.mailhub.test\n\n"
            f"Final-Recipient: rfc822;{recipient}\n"
            "Action: failed\n"
            "Status: 5.7.606\n"
            "Diagnostic-Code: smtp;550 5.7.606 Access denied, banned sending IP [192.0.2.10]. "
            "To request removal from this list please visit https://sender.office.com/\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def ses_hard(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Amazon SES-style relay: a plain RFC 3464 report from the relay's own daemon."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@amazonses.com",
        subject="Delivery Status Notification (Failure)",
        human=(
            "An error occurred while trying to deliver the mail to the following recipients:\n"
            f"{recipient}"
        ),
        report=(
            "Reporting-MTA: dns; a8-30.smtp-out.amazonses.com\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
            "User unknown in virtual mailbox table\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def sendgrid_no_report_type(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A relay that writes ``multipart/report`` without ``report-type`` (RFC 6522 wants it)."""
    return _report_message(
        sender=sender,
        daemon="<mailer-daemon@relay.sendgrid.test>",
        subject="Undelivered Mail Returned to Sender",
        human="This is an automatically generated Delivery Status Notification.",
        report=(
            "Reporting-MTA: dns; o1.email.sendgrid.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.2.1\n"
            "Diagnostic-Code: smtp; 550 5.2.1 The email account that you tried to reach is "
            "disabled.\n"
        ),
        outer="multipart/report",
        original=_headers(message_id, sender, recipient),
    )


def mixed_wrapped_dsn(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A DSN inside ``multipart/mixed`` (a gateway that forwards the report it got)."""
    return _report_message(
        sender=sender,
        daemon="postmaster@gateway.customer.test",
        subject="Delivery failure",
        human="Delivery has failed to these recipients.",
        report=(
            "Reporting-MTA: dns; gateway.customer.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
        ),
        wrap_mixed=True,
        original=_headers(message_id, sender, recipient),
    )


def postfix_quoted_printable(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A quoted-printable report whose recipient blocks are parted by a line holding spaces."""
    other = "someone.else@elsewhere.test"
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.customer.test (Mail Delivery System)",
        subject="Undelivered Mail Returned to Sender",
        human="I'm sorry to have to inform you that your message could not be delivered.",
        report=(
            "Reporting-MTA: dns; mx.customer.test\n"
            "X-Postfix-Queue-ID: 4Zq8Kx1Wdlz9sT\n"
            "   \n"
            f"Final-Recipient: rfc822; {other}\n"
            "Action: delivered\n"
            "Status: 2.0.0\n"
            " \t\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            f"Original-Recipient: rfc822;{recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
            "User unknown in local recipient table, please check the spelling of the address\n"
        ),
        report_encoding="quoted-printable",
        original=_headers(message_id, sender, recipient),
    )


def base64_report_full(*, message_id: str, recipient: str, sender: str) -> bytes:
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx2.customer.test",
        subject="Mail delivery failed",
        human="Your message could not be delivered: the mailbox is full.",
        report=(
            "Reporting-MTA: dns; mx2.customer.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.2.2\n"
            "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full, over quota\n"
        ),
        report_encoding="base64",
        original=_headers(message_id, sender, recipient),
    )


def domino_action_with_comment(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Lotus Domino: ``Action: failed (Bad destination mailbox address)``, Status 5.0.0."""
    return _report_message(
        sender=sender,
        daemon="Postmaster@customer.test",
        subject="DELIVERY FAILURE: User bob not listed in Domino Directory",
        human=(
            f"Your message\n\n  Subject: Re: Printer on fire\n\nwas not delivered to:\n\n"
            f"  {recipient}\n\nbecause:\n\n  User {recipient.split('@')[0]} "
            f"({recipient}) not listed in Domino Directory"
        ),
        report=(
            "Reporting-MTA: dns;domino01.customer.test\n\n"
            f"Final-Recipient: rfc822;{recipient}\n"
            "Action: failed (Bad destination mailbox address)\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: X-Notes; User not listed in Domino Directory\n"
        ),
        extra_headers="X-Mailer: Lotus Domino Release 9.0.1FP10\n",
        original=_headers(message_id, sender, recipient),
    )


def x400_gateway(*, message_id: str, recipient: str, sender: str) -> bytes:
    """An X.400 gateway: Final-Recipient is an O/R address, Original-Recipient ours."""
    local, _, domain = recipient.partition("@")
    return _report_message(
        sender=sender,
        daemon="postmaster@x400gw.customer.test",
        subject="Non-delivery report",
        human="Your message was not delivered (X.400 non-delivery).",
        report=(
            "Reporting-MTA: x400; /ADMD=TESTNET/PRMD=CUSTOMER/\n"
            "DSN-Gateway: dns; x400gw.customer.test\n\n"
            f"Original-Recipient: rfc822;{recipient}\n"
            f"Final-Recipient: X400; /RFC-822={local}(a){domain}/ADMD=TESTNET/C=DE/\n"
            "Action: error\n"
            "Status: 5.1.1\n"
            "X-Supplementary-Info: unrecognised O/R name\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def commented_fields(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Comments in every field (RFC 5322 §3.2.2 allows them in structured fields)."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.comments.test",
        subject="failure notice",
        human="The mail below could not be delivered.",
        report=(
            "Reporting-MTA: dns; mx.comments.test (Mail Server)\n\n"
            f"Final-Recipient: rfc822; {recipient} (the customer)\n"
            "Action: failed (permanent)\n"
            "Status: 5.1.1 (bad destination mailbox address)\n"
            "Diagnostic-Code: smtp; 550 Requested action not taken: mailbox unavailable\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def expired_in_queue(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A 4.4.7 ``failed``: given up after days of retries; the address may well work."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.slow.test",
        subject="Undelivered Mail Returned to Sender",
        human="Your message could not be delivered for 5 days. It will be returned.",
        report=(
            "Reporting-MTA: dns; mx.slow.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 4.4.7\n"
            "Diagnostic-Code: X-Postfix; delivery temporarily suspended: connect to\n"
            "    mail.customer.test[192.0.2.55]:25: Connection timed out\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def yahoo_plain(*, message_id: str, recipient: str, sender: str) -> bytes:
    text = (
        "Sorry, we were unable to deliver your message to the following address.\n\n"
        f"<{recipient}>:\n"
        "554: delivery error: dd This user doesn't have a yahoo.com account "
        f"({recipient}) [0] - mta1010.mail.ne1.yahoo.com\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"{_headers(message_id, sender, recipient)}\nHello\n"
    )
    return _plain_message(
        sender=sender,
        daemon="MAILER-DAEMON@yahoo.com",
        subject="Failure Notice",
        text=text,
    )


def yahoo_policy(*, message_id: str, recipient: str, sender: str) -> bytes:
    text = (
        "Sorry, we were unable to deliver your message to the following address.\n\n"
        f"<{recipient}>:\n"
        "554: 5.7.9 Message not accepted for policy reasons.  See "
        "https://postmaster.yahooinc.com/error-codes\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"{_headers(message_id, sender, recipient)}\nHello\n"
    )
    return _plain_message(
        sender=sender, daemon="MAILER-DAEMON@yahoo.com", subject="Failure Notice", text=text
    )


def groupwise_plain(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Novell GroupWise Internet Agent: multipart/mixed, the failed address in angle brackets."""
    boundary = f"=_gw_{_unique()}"
    return _crlf(
        "Return-Path: <>\n"
        f"Date: {_date()}\n"
        "From: Mail Delivery System <postmaster@gw.customer.test>\n"
        f"To: {sender}\n"
        "Subject: Message status - undeliverable\n"
        f"Message-ID: <{_unique()}@gw.customer.test>\n"
        "X-Mailer: Novell GroupWise Internet Agent 18.2.1\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "The message that you sent was undeliverable to the following:\n"
        f"\t<{recipient}> (user not found)\n\n"
        "Possible causes: the address is wrong or the mailbox was removed.\n\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n\n"
        f"{_headers(message_id, sender, recipient)}\nHello\n"
        f"--{boundary}--\n"
    )


def sendmail_plain(*, message_id: str, recipient: str, sender: str) -> bytes:
    """An old Sendmail notice without a report part."""
    text = (
        "The original message was received at Thu, 3 Dec 2026 10:02:11 +0100\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        f"{recipient}\n"
        "    (reason: 550 5.2.1 Mailbox disabled for this recipient)\n\n"
        "   ----- Transcript of session follows -----\n"
        "550 5.2.1 Mailbox disabled for this recipient\n\n"
        "   ----- Original message follows -----\n"
        f"{_headers(message_id, sender, recipient)}\n"
    )
    return _plain_message(
        sender=sender,
        daemon="Mail Delivery Subsystem <MAILER-DAEMON@old.customer.test>",
        subject="Returned mail: User unknown",
        text=text,
    )


def qmail_over_quota(*, message_id: str, recipient: str, sender: str) -> bytes:
    text = (
        "Hi. This is the qmail-send program at mail.customer.test.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{recipient}>:\n"
        "552 5.2.2 user is over quota\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"{_headers(message_id, sender, recipient)}\nHello\n"
    )
    return _plain_message(
        sender=sender,
        daemon="MAILER-DAEMON@mail.customer.test",
        subject="failure notice",
        text=text,
    )


def x400_only(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Only an X.400 Final-Recipient: the report names no Internet address, the words do."""
    local, _, domain = recipient.partition("@")
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@x400.customer.test",
        subject="Delivery Notification: Delivery has failed",
        human=(
            "This report relates to a message you sent with the following header fields:\n\n"
            f"  Message-id: {message_id}\n  To: {recipient}\n\n"
            "Your message cannot be delivered to the following recipients:\n\n"
            f"  Recipient address: {recipient}\n  Reason: Unknown user"
        ),
        report=(
            "Reporting-MTA: x400; mta x400.customer.test in /ADMD= /C=DE/\n\n"
            f"Final-Recipient: x400; /RFC-822={local}(a){domain}/ADMD= /C=DE/\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def report_without_recipient_block(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A report with only its per-message block; the failed address is in the words."""
    return _report_message(
        sender=sender,
        daemon="Mail Delivery Subsystem <mailer-daemon@mx.partial.test>",
        subject="Delivery Status Notification (Failure)",
        human=(
            "Delivery to the following recipient failed permanently:\n\n"
            f"     {recipient}\n\n"
            "Technical details of permanent failure:\n"
            "The email account that you tried to reach does not exist.\n\n"
            "----- Original message -----"
        ),
        report=(
            "Reporting-MTA: dns; mx.partial.test\nArrival-Date: Thu, 3 Dec 2026 10:00:00 +0000\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def exchange_2003(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Exchange 2003: lower-case report type, X-Display-Name, Action ``failed``."""
    return _report_message(
        sender=sender,
        daemon="System Administrator <postmaster@exch.customer.test>",
        subject="Undeliverable: Re: Printer on fire",
        human=(
            "Your message did not reach some or all of the intended recipients.\n\n"
            "The following recipient(s) cannot be reached:\n\n"
            "      Bob on 03/12/2026 10:02\n"
            "            The e-mail account does not exist at the organization this message "
            "was sent to.\n"
            "            <exch.customer.test #5.1.1>"
        ),
        report=(
            "Reporting-MTA: dns;exch.customer.test\n"
            "Received-From-MTA: dns;relay.mailhub.test\n\n"
            f"Final-Recipient: rfc822;{recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "X-Display-Name: Bob\n"
        ),
        outer="multipart/report; report-type=Delivery-Status",
        original=_headers(message_id, sender, recipient),
    )


def two_recipients_ours_second(*, message_id: str, recipient: str, sender: str) -> bytes:
    """One report for two recipients, ours the second, no blank line between the blocks."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.multi.test",
        subject="Undelivered Mail Returned to Sender",
        human="Your message could not be delivered to some recipients.",
        report=(
            "Reporting-MTA: dns; mx.multi.test\n\n"
            "Final-Recipient: rfc822; stranger@multi.test\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 No such user\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def lowercase_fields_exim(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Exim's DSN: lower-case names, ``Action: FAILED``, X-Exim-Diagnostic, bare address."""
    return _report_message(
        sender=sender,
        daemon="Mail Delivery System <Mailer-Daemon@exim.customer.test>",
        subject="Mail delivery failed: returning message to sender",
        human=(
            "This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {recipient}\n    mailbox is disabled"
        ),
        report=(
            "reporting-mta: dns; exim.customer.test\n\n"
            "action: FAILED\n"
            f"final-recipient: {recipient}\n"
            "status: 5.0.0\n"
            "remote-mta: dns; mail.customer.test\n"
            "diagnostic-code: smtp; 550 Mailbox is disabled\n"
            "x-exim-diagnostic: X-str; Mailbox is disabled\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def no_status_no_action(*, message_id: str, recipient: str, sender: str) -> bytes:
    """A sloppy MTA: neither Action nor Status, only the server's reply."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@sloppy.test",
        subject="Returned mail",
        human="The following message could not be delivered.",
        report=(
            "Reporting-MTA: dns; sloppy.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>... User unknown\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def spamhaus_block(*, message_id: str, recipient: str, sender: str) -> bytes:
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.strict.test (Mail Delivery System)",
        subject="Undelivered Mail Returned to Sender",
        human="Your message was refused by the receiving server.",
        report=(
            "Reporting-MTA: dns; mx.strict.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: smtp; 554 Service unavailable; Client host [192.0.2.10]\n"
            "    blocked using zen.spamhaus.org\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def reputation_block(*, message_id: str, recipient: str, sender: str) -> bytes:
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.rep.test",
        subject="Undeliverable message",
        human="Delivery failed.",
        report=(
            "Reporting-MTA: dns; mx.rep.test\n\n"
            f"Final-Recipient: rfc822; {recipient}\n"
            "Action: failed\n"
            "Status: 5.0.0\n"
            "Diagnostic-Code: smtp; 550 Message rejected due to poor sender reputation\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def outlook_mailbox_unavailable(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Outlook.com consumer: 5.5.0 whose words say the mailbox is not there."""
    return _report_message(
        sender=sender,
        daemon="postmaster@outlook.com",
        subject="Undeliverable: Re: Printer on fire",
        human=f"Delivery has failed to these recipients or groups:\n\n{recipient}",
        report=(
            "Reporting-MTA: dns;DM6NAM12HT123.mail.protection.outlook.com\n\n"
            f"Final-Recipient: rfc822;{recipient}\n"
            "Action: failed\n"
            "Status: 5.5.0\n"
            "Diagnostic-Code: smtp;550 5.5.0 Requested action not taken: mailbox unavailable "
            "(S2017062302). [DM6NAM12FT012.eop-nam12.prod.protection.outlook.com]\n"
        ),
        original=_headers(message_id, sender, recipient),
    )


def full_original_attached(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Original-Recipient in a different case, the whole original as message/rfc822."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.case.test",
        subject="Undelivered Mail Returned to Sender",
        human="Your message could not be delivered.",
        report=(
            "Reporting-MTA: dns; mx.case.test\n\n"
            f"Original-Recipient: rfc822; {recipient.upper()}\n"
            "Final-Recipient: rfc822; mbox-4711@store.case.test\n"
            "Action: failed\n"
            "Status: 5.2.1\n"
            "Diagnostic-Code: smtp; 550 5.2.1 mailbox disabled\n"
        ),
        original=_headers(message_id, sender, recipient) + "\nHello, the printer is on fire.\n",
        original_type="message/rfc822",
    )


def postfix_smtputf8(*, message_id: str, recipient: str, sender: str) -> bytes:
    """Postfix for internationalised mail: RFC 6533 global report, ``utf-8`` address type."""
    return _report_message(
        sender=sender,
        daemon="MAILER-DAEMON@mx.utf8.test (Mail Delivery System)",
        subject="Undelivered Mail Returned to Sender",
        human="Your message could not be delivered to one or more recipients.",
        report=(
            "Reporting-MTA: dns; mx.utf8.test\n\n"
            f"Final-Recipient: utf-8; {recipient}\n"
            f"Original-Recipient: utf-8; {recipient}\n"
            "Action: failed\n"
            "Status: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 Benutzer unbekannt (user unknown)\n"
        ),
        outer="multipart/report; report-type=global-delivery-status",
        report_part="message/global-delivery-status",
        original_type="message/global-headers",
        original=_headers(message_id, sender, recipient),
    )


SAMPLES: list[Sample] = [
    Sample("postfix", bounces.postfix_dsn, HARD),
    Sample("exim", bounces.exim_bounce, HARD),
    Sample("exchange-online", bounces.exchange_online_ndr, HARD),
    Sample("exchange-legacy", bounces.exchange_legacy_ndr, HARD),
    Sample("qmail", bounces.qmail_bounce, HARD),
    Sample("sendmail-dsn", sendmail_dsn, HARD),
    Sample("gmail-nonexistent", gmail_nonexistent, HARD),
    Sample("gmail-spam-block", gmail_spam_block, POLICY),
    Sample("office365-policy", office365_policy, POLICY),
    Sample("ses-hard", ses_hard, HARD),
    Sample("sendgrid-no-report-type", sendgrid_no_report_type, HARD),
    Sample("dsn-in-multipart-mixed", mixed_wrapped_dsn, HARD),
    Sample("postfix-quoted-printable", postfix_quoted_printable, HARD),
    Sample("base64-mailbox-full", base64_report_full, SOFT),
    Sample("domino-action-comment", domino_action_with_comment, HARD),
    Sample("x400-gateway", x400_gateway, HARD),
    Sample("commented-fields", commented_fields, HARD),
    Sample("expired-in-queue", expired_in_queue, SOFT),
    Sample("yahoo", yahoo_plain, HARD),
    Sample("yahoo-policy", yahoo_policy, POLICY),
    Sample("groupwise", groupwise_plain, HARD),
    Sample("sendmail-plain", sendmail_plain, HARD),
    Sample("qmail-over-quota", qmail_over_quota, SOFT),
    Sample("x400-only", x400_only, HARD),
    Sample("report-without-recipient-block", report_without_recipient_block, HARD),
    Sample("exchange-2003", exchange_2003, HARD),
    Sample("two-recipients-ours-second", two_recipients_ours_second, HARD),
    Sample("exim-dsn-lowercase", lowercase_fields_exim, HARD),
    Sample("no-status-no-action", no_status_no_action, HARD),
    Sample("spamhaus-block", spamhaus_block, POLICY),
    Sample("reputation-block", reputation_block, POLICY),
    Sample("outlook-mailbox-unavailable", outlook_mailbox_unavailable, HARD),
    Sample("full-original-attached", full_original_attached, HARD),
    Sample("postfix-smtputf8-global", postfix_smtputf8, HARD),
]


def arf_report(
    *,
    message_id: str,
    recipient: str,
    sender: str,
    feedback_id: str = "",
    redacted: bool = True,
    provider: str = "Yahoo!-Mail-Feedback/2.0",
    feedback_type: str = "abuse",
) -> bytes:
    """A feedback-loop report (RFC 5965) as Yahoo's, Microsoft's JMRP or Comcast's send it.

    The complaining address is redacted in the report and in the returned copy's To (as most
    providers do); the returned headers keep that copy's Return-Path.
    """
    boundary = f"=_arf_{_unique()}"
    shown = "redacted@" + recipient.partition("@")[2] if redacted else recipient
    original = _original_headers(message_id=message_id, sender=sender, recipient=shown)
    if feedback_id:
        original += f"Feedback-ID: {feedback_id}\n"
    rcpt_line = "" if redacted else f"Original-Rcpt-To: {recipient}\n"
    return _crlf(
        f"Date: {_date()}\n"
        "From: Feedback Loop <feedback@fbl.provider.test>\n"
        "To: fbl@mailhub.test\n"
        "Subject: FW: Re: Printer on fire\n"
        f"Message-ID: <{_unique()}@fbl.provider.test>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\n\n'
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "This is an email abuse report for an email message received from IP 192.0.2.10.\n\n"
        f"--{boundary}\n"
        "Content-Type: message/feedback-report\n\n"
        f"Feedback-Type: {feedback_type}\n"
        f"User-Agent: {provider}\n"
        "Version: 1\n"
        "Original-Mail-From: <bounce@mailhub.test>\n"
        f"{rcpt_line}"
        "Arrival-Date: Thu, 03 Dec 2026 10:02:11 +0000\n"
        "Source-IP: 192.0.2.10\n"
        "Reported-Domain: mailhub.test\n\n"
        f"--{boundary}\n"
        "Content-Type: text/rfc822-headers\n\n"
        f"{original}\n"
        f"--{boundary}--\n"
    )
