"""Bounce messages as real MTAs write them, built around the mail of ours that bounced.

Each builder returns the raw bytes (CRLF line ends, as they travel over SMTP) of a bounce for
``recipient`` about the original mail ``message_id`` sent from ``sender`` (its Return-Path).
The layouts follow what the servers actually send: Postfix's ``bounce(8)`` templates, Exim's
default non-DSN bounce, Exchange Online's NDR, an old Exchange 5.5 style NDR, qmail's
``qmail-send`` text, and Postfix's delayed-mail warning.
"""

import email.utils
import logging
import secrets

import pytest

ORIGINAL_SUBJECT = "Re: Printer on fire"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _unique() -> str:
    """Each bounce is its own message: the listener drops a Message-ID it has already seen."""
    return secrets.token_hex(6).upper()


def _date() -> str:
    return email.utils.formatdate(localtime=False, usegmt=True)


def _original_headers(*, message_id: str, sender: str, recipient: str) -> str:
    return (
        f"Return-Path: <{sender}>\n"
        "Received: from mailhub.test (mailhub.test [127.0.0.1])\n"
        "\tby relay.mailhub.test (Postfix) with ESMTP id 4Zq8Kx1Wdlz9sT\n"
        f"\tfor <{recipient}>; {_date()}\n"
        f"Message-ID: {message_id}\n"
        f"Date: {_date()}\n"
        "From: MailHub <notifications@mailhub.test>\n"
        f"To: {recipient}\n"
        f"Subject: {ORIGINAL_SUBJECT}\n"
        "Auto-Submitted: auto-generated\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
    )


def postfix_dsn(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
    reporting_mta: str = "mx.customer.test",
    full_original: bool = False,
) -> bytes:
    """Postfix's "Undelivered Mail Returned to Sender": a multipart/report DSN (RFC 3464)."""
    boundary = "4Zq8Kx1Wdlz9sT.1764046348/mx.customer.test"
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    if full_original:
        original = (
            "Content-Description: Undelivered Message\n"
            "Content-Type: message/rfc822\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            f"{headers}\nHello, the printer is still on fire.\n"
        )
    else:
        original = (
            "Content-Description: Undelivered Message Headers\n"
            "Content-Type: text/rfc822-headers\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            f"{headers}"
        )
    return _crlf(
        f"Return-Path: <>\n"
        f"Received: by {reporting_mta} (Postfix)\n\tid 4Zq8Kx1Wdlz9sT; {_date()}\n"
        f"Date: {_date()}\n"
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"To: {sender}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f'\tboundary="{boundary}"\n'
        "Content-Transfer-Encoding: 7bit\n"
        f"Message-Id: <20261125045228.{_unique()}@{reporting_mta}>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        f"This is the mail system at host {reporting_mta}.\n"
        "\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n"
        "\n"
        "For further assistance, please send mail to postmaster.\n"
        "\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n"
        "\n"
        "                   The mail system\n"
        "\n"
        f"<{recipient}>: host mail.customer.test[192.0.2.25] said: 550 5.1.1\n"
        f"    <{recipient}>: Recipient address rejected: User unknown in local\n"
        "    recipient table (in reply to RCPT TO command)\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns; {reporting_mta}\n"
        "X-Postfix-Queue-ID: 4Zq8Kx1Wdlz9sT\n"
        f"X-Postfix-Sender: rfc822; {sender}\n"
        f"Arrival-Date: {_date()}\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        "Action: failed\n"
        "Status: 5.1.1\n"
        "Remote-MTA: dns; mail.customer.test\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address\n"
        "    rejected: User unknown in local recipient table\n"
        "\n"
        f"--{boundary}\n"
        f"{original}"
        "\n"
        f"--{boundary}--\n"
    )


def postfix_delayed(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
    reporting_mta: str = "mx.customer.test",
) -> bytes:
    """Postfix's "Delayed Mail (still being retried)" warning: Action delayed, Status 4.4.1."""
    boundary = "7Hk2Qw9Tnbz4pL.1764046348/mx.customer.test"
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    return _crlf(
        "Return-Path: <>\n"
        f"Date: {_date()}\n"
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)\n"
        "Subject: Delayed Mail (still being retried)\n"
        f"To: {sender}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f'\tboundary="{boundary}"\n'
        f"Message-Id: <20261125050000.{_unique()}@{reporting_mta}>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        f"This is the mail system at host {reporting_mta}.\n"
        "\n"
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n"
        "\n"
        "Your message could not be delivered for more than 4 hour(s).\n"
        "It will be retried until it is 5 day(s) old.\n"
        "\n"
        f"<{recipient}>: connect to mail.customer.test[192.0.2.25]:25: Connection\n"
        "    timed out\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns; {reporting_mta}\n"
        "X-Postfix-Queue-ID: 7Hk2Qw9Tnbz4pL\n"
        f"X-Postfix-Sender: rfc822; {sender}\n"
        f"Arrival-Date: {_date()}\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        "Action: delayed\n"
        "Status: 4.4.1\n"
        "Diagnostic-Code: X-Postfix; connect to mail.customer.test[192.0.2.25]:25:\n"
        "    Connection timed out\n"
        f"Will-Retry-Until: {_date()}\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{headers}"
        "\n"
        f"--{boundary}--\n"
    )


def exim_bounce(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
    host: str = "mx.exim.test",
) -> bytes:
    """Exim's default bounce: plain text, X-Failed-Recipients, the original copied inline."""
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    return _crlf(
        "Return-path: <>\n"
        f"Received: from mail by {host} with local (Exim 4.96)\n"
        f"\tid 1tFqXz-000Abc-2K; {_date()}\n"
        f"X-Failed-Recipients: {recipient}\n"
        "Auto-Submitted: auto-replied\n"
        f"From: Mail Delivery System <Mailer-Daemon@{host}>\n"
        f"To: {sender}\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        f"Message-Id: <E1tFqXz-{_unique()}-2K@{host}>\n"
        f"Date: {_date()}\n"
        "\n"
        "This message was created automatically by mail delivery software.\n"
        "\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n"
        "\n"
        f"  {recipient}\n"
        "    host mail.exim-customer.test [198.51.100.7]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\n"
        f"    550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\n"
        "\n"
        "------ This is a copy of the message, including all the headers. ------\n"
        "\n"
        f"{headers}"
        "\n"
        "Hello, the printer is still on fire.\n"
    )


def exchange_online_ndr(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
) -> bytes:
    """An Exchange Online NDR: HTML words, a DSN with 5.1.10, the original as message/rfc822."""
    boundary = "_000_BN8PR12MB3394A1B2C3D4E5F6BN8PR12MB3394namp_"
    inner = "_001_BN8PR12MB3394A1B2C3D4E5F6BN8PR12MB3394namp_"
    reporting = "BN8PR12MB3394.namprd12.prod.outlook.com"
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    return _crlf(
        "Return-Path: <>\n"
        "From: <postmaster@corp.example.com>\n"
        f"To: <{sender}>\n"
        f"Date: {_date()}\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f'\tboundary="{boundary}"\n'
        f"Message-ID: <4f2a9c0e-1b7d-4c55-{_unique()}@{reporting}>\n"
        "Subject: Undeliverable: Re: Printer on fire\n"
        "Auto-Submitted: auto-replied\n"
        "X-MS-Exchange-Message-Is-Ndr:\n"
        "MIME-Version: 1.0\n"
        "\n"
        f"--{boundary}\n"
        f'Content-Type: multipart/alternative; boundary="{inner}"\n'
        "\n"
        f"--{inner}\n"
        'Content-Type: text/html; charset="utf-8"\n'
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        "<html><head><style>.x{color:red}</style></head><body>"
        "<p><b>Your message to "
        f'<a href="mailto:{recipient}">{recipient}</a> couldn\'t be delivered.</b></p>'
        f"<p>{recipient.split('@')[0]} wasn't found at corp.example.com.</p>"
        "<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
        "Recipient not found by SMTP address lookup'</p>"
        "</body></html>\n"
        "\n"
        f"--{inner}--\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns;{reporting}\n"
        f"Received-From-MTA: dns;{reporting}\n"
        f"Arrival-Date: {_date()}\n"
        "\n"
        f"Final-Recipient: rfc822;{recipient}\n"
        "Action: failed\n"
        "Status: 5.1.10\n"
        "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not\n"
        " found by SMTP address lookup\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n"
        "\n"
        f"{headers}"
        "\n"
        "Hello, the printer is still on fire.\n"
        "\n"
        f"--{boundary}--\n"
    )


def exchange_legacy_ndr(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
) -> bytes:
    """An Exchange 5.5/2000 style NDR: no DSN part, only words (recognised by flufl.bounce)."""
    boundary = "----_=_NextPart_000_01C2A9D4.6B1E2F30"
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    return _crlf(
        "Return-Path: <>\n"
        "From: System Administrator <postmaster@exchange.example.org>\n"
        f"To: {sender}\n"
        f"Date: {_date()}\n"
        "Subject: Undeliverable: Re: Printer on fire\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        f"Message-ID: <{_unique()}@exchange.example.org>\n"
        "\n"
        f"--{boundary}\n"
        'Content-Type: text/plain; charset="iso-8859-1"\n'
        "\n"
        "Your message\n"
        "\n"
        f"  To:      {recipient}\n"
        f"  Subject: {ORIGINAL_SUBJECT}\n"
        f"  Sent:    {_date()}\n"
        "\n"
        "did not reach the following recipient(s):\n"
        "\n"
        f"{recipient} on {_date()}\n"
        "    The recipient name is not recognized\n"
        "\tThe MTS-ID of the original message is: c=us;a= ;p=example;l=EXCH0112251048LQ\n"
        "    MSEXCH:IMS:Example:Main:EXCH01 0 (000C05A6) Unknown Recipient\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n"
        "\n"
        f"{headers}"
        "\n"
        "Hello, the printer is still on fire.\n"
        "\n"
        f"--{boundary}--\n"
    )


def qmail_bounce(
    *,
    message_id: str,
    recipient: str,
    sender: str = "bounce@mailhub.test",
    host: str = "mx.qmail.test",
) -> bytes:
    """qmail-send's failure notice (plain text, no DSN)."""
    headers = _original_headers(message_id=message_id, sender=sender, recipient=recipient)
    return _crlf(
        "Return-Path: <>\n"
        f"Date: {_date()}\n"
        f"Message-ID: <{_unique()}.qmail@{host}>\n"
        f"From: MAILER-DAEMON@{host}\n"
        f"To: {sender}\n"
        "Subject: failure notice\n"
        "\n"
        f"Hi. This is the qmail-send program at {host}.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n"
        "\n"
        f"<{recipient}>:\n"
        "198.51.100.9 does not like recipient.\n"
        "Remote host said: 550 5.1.1 Sorry, no mailbox here by that name.\n"
        "Giving up on 198.51.100.9.\n"
        "\n"
        "--- Below this line is a copy of the message.\n"
        "\n"
        f"{headers}"
        "\n"
        "Hello, the printer is still on fire.\n"
    )


def vacation_reply(*, recipient: str, sender: str = "bounce@mailhub.test") -> bytes:
    """An out-of-office answer sent to the Return-Path: not a bounce (protocol.md §3.2)."""
    return _crlf(
        f"From: Bob <{recipient}>\n"
        f"To: {sender}\n"
        f"Date: {_date()}\n"
        "Subject: Automatic reply: Re: Printer on fire\n"
        "Auto-Submitted: auto-replied\n"
        f"Message-ID: <vacation-{_unique()}@customer.test>\n"
        "\n"
        "I am out of the office until Monday.\n"
    )


SAMPLES = {
    "postfix": postfix_dsn,
    "exim": exim_bounce,
    "exchange-online": exchange_online_ndr,
    "exchange-legacy": exchange_legacy_ndr,
    "qmail": qmail_bounce,
}


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def bounce_log():
    """The lines bounce processing logs during the test (``mailhub.bounces``)."""
    handler = LogLines()
    logger = logging.getLogger("mailhub.bounces")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
