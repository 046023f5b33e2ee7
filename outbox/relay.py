"""The only SMTP client of MailHub: one session to a relay, one transaction per recipient.

It talks to smtplib command by command (MAIL, RCPT, DATA) instead of ``sendmail()`` or Django's
backend, so the reply of the exact step that failed (code and the server's words) is kept for
each recipient (protocol.md §4.2-4.3: Django's backend drops the refused-recipients dict).
"""

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings

from .mime import address_text

# The exception class a failure is reported under, per SMTP step (as smtplib itself would raise).
_STEP_ERRORS = {
    "mail": "SMTPSenderRefused",
    "rcpt": "SMTPRecipientsRefused",
    "data": "SMTPDataError",
}


@dataclass(frozen=True)
class ServerConfig:
    """Where to connect: a ``MailServer`` row or the relay from the environment."""

    name: str
    host: str
    port: int
    security: str = "none"
    username: str = ""
    password: str = ""
    timeout: float = 60.0
    server_id: int | None = None
    from_filter: str = ""

    @property
    def label(self) -> str:
        return self.host


def env_relay() -> ServerConfig:
    return ServerConfig(
        name="Relay from the environment",
        host=settings.MAILHUB_RELAY_HOST,
        port=settings.MAILHUB_RELAY_PORT,
        security=settings.MAILHUB_RELAY_SECURITY,
        username=settings.MAILHUB_RELAY_USER,
        password=settings.MAILHUB_RELAY_PASSWORD,
        timeout=settings.MAILHUB_RELAY_TIMEOUT,
    )


def server_config(server) -> ServerConfig:
    return ServerConfig(
        name=server.name,
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        password=server.password,
        timeout=settings.MAILHUB_RELAY_TIMEOUT,
        server_id=server.pk,
        from_filter=server.from_filter,
    )


def _filter_matches(from_filter: str, address: str) -> tuple[bool, bool]:
    """(exact address matches, domain matches) for a comma-separated from_filter."""
    address = address.lower()
    domain = address.rpartition("@")[2]
    entries = [e.strip().lower() for e in from_filter.split(",") if e.strip()]
    return address in entries, domain in entries


def server_choose(*, from_addr: str, servers: list[ServerConfig]) -> tuple[ServerConfig, str]:
    """The server to send ``from_addr`` through and the From header to use (odoo-behaviour §9.3).

    ``servers`` are the active ones by priority. When the sender's address is not allowed by the
    chosen server, From becomes the notification address with the sender kept as display name.
    """
    name, address = parseaddr(from_addr)
    notification = settings.MAILHUB_DEFAULT_FROM

    def rewritten() -> str:
        if address.lower() == notification.lower():
            return from_addr
        return address_text(name or address, notification)

    for wanted, keep in ((address, True), (notification, False)):
        if not wanted:
            continue
        for exact_pass in (True, False):
            for server in servers:
                exact, domain = _filter_matches(server.from_filter, wanted)
                if (exact if exact_pass else domain) and server.from_filter:
                    return server, from_addr if keep else rewritten()
    for server in servers:
        if not server.from_filter:
            return server, rewritten()
    if servers:
        return servers[0], from_addr
    return env_relay(), from_addr


@dataclass(frozen=True)
class Reply:
    """The outcome of one recipient's transaction."""

    code: int | None  # None: no reply at all (refused connection, timeout, disconnect)
    text: str
    error_class: str = ""  # empty when accepted

    @property
    def accepted(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


@dataclass(frozen=True)
class Transaction:
    """One mail to one recipient; ``token`` is the caller's, handed back with the outcome."""

    sender: str
    recipient: str
    data: bytes
    token: object = None


class RelayConnectionError(Exception):
    """The relay could not be reached or dropped the session: retry later."""

    def __init__(self, error_class: str, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.error_class = error_class
        self.text = text
        self.code = code


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: leading dots doubled and the end marker (RFC 5321 §4.5.2)."""
    body = _LEADING_DOT.sub(b"..", data) if data.startswith(b".") or b"\n." in data else data
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _not_ascii(recipient: str) -> Reply:
    return Reply(
        code=553,
        text=f"<{recipient}>: address is not ASCII and SMTPUTF8 is not used",
        error_class=_STEP_ERRORS["rcpt"],
    )


def _decode(raw) -> str:
    # A server's words are stored per recipient and attempt: NUL fits no database text column.
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.replace("\x00", "")


class RelaySession:
    """One SMTP connection reused for many transactions; ``deliver`` never raises on a refusal."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.smtp: smtplib.SMTP | None = None
        # Accepted up to its 354; its content goes out with the next transaction's commands.
        self._unsent: Transaction | None = None

    def open(self) -> None:
        config = self.config
        try:
            if config.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    timeout=config.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            smtp.ehlo_or_helo_if_needed()
            if config.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password)
        except smtplib.SMTPResponseException as exc:
            raise RelayConnectionError(
                type(exc).__name__, _decode(exc.smtp_error), exc.smtp_code
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayConnectionError(type(exc).__name__, str(exc) or repr(exc)) from exc
        self.smtp = smtp

    def close(self) -> None:
        if self.smtp is None:
            return
        if self._unsent is not None:
            # The server waits for content: QUIT would be read as a line of it. Hanging up
            # leaves the transaction incomplete, so nothing is delivered (RFC 5321 §4.1.1.4).
            self._unsent = None
            self.smtp.close()
            self.smtp = None
            return
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()
        self.smtp = None

    def _lost(self, exc: Exception) -> RelayConnectionError:
        """The session is gone (or unusable): drop it and say why."""
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None
        self._unsent = None
        return RelayConnectionError(type(exc).__name__, str(exc) or repr(exc))

    def __enter__(self) -> "RelaySession":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _abort(self) -> None:
        # After a refusal the session stays usable once reset (RFC 5321 §4.1.1.5).
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()
            self.smtp = None

    def deliver(self, *, sender: str, recipient: str, data: bytes) -> Reply:
        """One transaction: MAIL FROM the VERP ``sender``, RCPT TO ``recipient``, DATA.

        When the server offers PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write and
        their replies are read together: two round trips per mail instead of four.

        Raises ``RelayConnectionError`` when the session is lost (the caller reconnects); every
        reply of the server, good or bad, comes back as a ``Reply``.
        """
        if self.smtp is None:
            self.open()
        smtp = self.smtp
        step = "mail"
        try:
            if self.pipelining:
                step, code, text = self._envelope_pipelined(sender, recipient)
            else:
                step, code, text = self._envelope_stepwise(sender, recipient)
            if step == "data" and code == 354:
                smtp.send(_dot_stuffed(data))
                code, text = smtp.getreply()
        except UnicodeEncodeError:
            # Nothing was written: smtplib encodes a command before sending it.
            return _not_ascii(recipient)
        except smtplib.SMTPServerDisconnected as exc:
            self.smtp = None
            # After the final dot the outcome is unknown: the retry may duplicate (protocol §4.2);
            # the Message-ID stays the same so the receiver can tell.
            raise RelayConnectionError(type(exc).__name__, str(exc) or "disconnected") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.smtp.close()
            self.smtp = None
            raise RelayConnectionError(type(exc).__name__, str(exc) or repr(exc)) from exc
        text = _decode(text)
        if code == 421:
            # The server is closing the session (RFC 5321 §3.8): transient for this recipient.
            self.smtp.close()
            self.smtp = None
            return Reply(code=code, text=text, error_class=_STEP_ERRORS[step])
        if 200 <= code < 300:
            return Reply(code=code, text=text)
        self._abort()
        return Reply(code=code, text=text, error_class=_STEP_ERRORS[step])

    # --- a stream of transactions, one round trip each ------------------------------------------

    def submit(self, txn: Transaction) -> list[tuple[Transaction, "Reply | RelayConnectionError"]]:
        """Start ``txn``; return the transactions whose outcome is now known, in order.

        With PIPELINING (RFC 2920 §3.1: DATA ends a group, and the content is the first
        "command" of the next one), the previous transaction's content and end marker go in the
        same write as this one's MAIL, RCPT and DATA, and their four replies are read together:
        one round trip per mail instead of two (or the four of ``smtplib.sendmail``). ``txn``
        itself usually comes back from the next call, or from ``flush()``.

        A ``RelayConnectionError`` in place of a reply means the session was lost with that
        transaction unfinished: the caller reconnects and delivers it again. If its content was
        written already the relay may have it (protocol.md §4.2): same Message-ID both times.
        """
        if self.smtp is None:
            try:
                self.open()
            except RelayConnectionError as exc:
                return [(txn, exc)]
        if not self.pipelining:
            return [(txn, self._deliver_or_lost(txn))]
        try:
            commands = f"MAIL FROM:<{txn.sender}>\r\nRCPT TO:<{txn.recipient}>\r\nDATA\r\n"
            commands = commands.encode("ascii")
        except UnicodeEncodeError:
            return [*self.flush(), (txn, _not_ascii(txn.recipient))]
        smtp, unsent, done = self.smtp, self._unsent, []
        self._unsent = None
        try:
            smtp.send(_dot_stuffed(unsent.data) + commands if unsent else commands)
            if unsent is not None:
                reply = self._final_reply(unsent)
                done.append((unsent, reply))
                unsent = None
                if reply.code == 421:  # the server hung up after answering: start again
                    return [*done, (txn, RelayConnectionError("SMTPServerDisconnected", "421"))]
            replies = [smtp.getreply() for _ in range(3)]
        except (OSError, smtplib.SMTPException) as exc:
            lost = self._lost(exc)
            return [*done, *((t, lost) for t in (unsent, txn) if t is not None)]
        (mail_code, mail_text), (rcpt_code, rcpt_text), (data_code, data_text) = replies
        if mail_code == 250 and rcpt_code in (250, 251) and data_code == 354:
            self._unsent = txn
            return done
        try:
            if data_code == 354:
                # DATA was accepted although the envelope failed: end it empty (RFC 2920 §3.1).
                smtp.send(b".\r\n")
                smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            return [*done, (txn, self._lost(exc))]
        if mail_code != 250:
            step, code, text = "mail", mail_code, mail_text
        elif rcpt_code not in (250, 251):
            step, code, text = "rcpt", rcpt_code, rcpt_text
        else:
            step, code, text = "data", data_code, data_text
        return [*done, (txn, self._refused(step, code, text))]

    def flush(self) -> list[tuple[Transaction, "Reply | RelayConnectionError"]]:
        """Send the content still held back and return its outcome (empty when none)."""
        unsent, self._unsent = self._unsent, None
        if unsent is None:
            return []
        try:
            self.smtp.send(_dot_stuffed(unsent.data))
            return [(unsent, self._final_reply(unsent))]
        except (OSError, smtplib.SMTPException) as exc:
            return [(unsent, self._lost(exc))]

    def _final_reply(self, txn: Transaction) -> Reply:
        """The reply to a content's end marker (the transaction is over whatever it says)."""
        code, text = self.smtp.getreply()
        if 200 <= code < 300:
            return Reply(code=code, text=_decode(text))
        if code == 421:
            self.smtp.close()
            self.smtp = None
        return Reply(code=code, text=_decode(text), error_class=_STEP_ERRORS["data"])

    def _refused(self, step: str, code: int, text) -> Reply:
        """A refused envelope: reset the session for the next transaction (or drop it on 421)."""
        if code == 421:
            self.smtp.close()
            self.smtp = None
        else:
            self._abort()
        return Reply(code=code, text=_decode(text), error_class=_STEP_ERRORS[step])

    def _deliver_or_lost(self, txn: Transaction) -> "Reply | RelayConnectionError":
        try:
            return self.deliver(sender=txn.sender, recipient=txn.recipient, data=txn.data)
        except RelayConnectionError as exc:
            return exc

    @property
    def pipelining(self) -> bool:
        return self.smtp is not None and self.smtp.has_extn("pipelining")

    def _envelope_stepwise(self, sender: str, recipient: str) -> tuple[str, int, bytes]:
        # putcmd, not smtp.mail()/rcpt(): those re-parse each address (email.utils), which
        # costs more than the round trip; ours are already plain addr-specs.
        smtp = self.smtp
        smtp.putcmd("mail", f"FROM:<{sender}>")
        code, text = smtp.getreply()
        if code != 250:
            return "mail", code, text
        smtp.putcmd("rcpt", f"TO:<{recipient}>")
        code, text = smtp.getreply()
        if code not in (250, 251):
            return "rcpt", code, text
        smtp.putcmd("data")
        code, text = smtp.getreply()
        return "data", code, text

    def _envelope_pipelined(self, sender: str, recipient: str) -> tuple[str, int, bytes]:
        smtp = self.smtp
        smtp.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        replies = [smtp.getreply() for _ in range(3)]
        (mail_code, mail_text), (rcpt_code, rcpt_text), (data_code, data_text) = replies
        if mail_code == 250 and rcpt_code in (250, 251):
            return "data", data_code, data_text
        if data_code == 354:
            # DATA was accepted although the envelope failed: end it empty (RFC 2920 §3.1).
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail_code != 250:
            return "mail", mail_code, mail_text
        return "rcpt", rcpt_code, rcpt_text


def connection_test(config: ServerConfig, *, sender: str, recipient: str = "noreply@example.com"):
    """Connect, MAIL FROM, RCPT TO, then stop before DATA (odoo-behaviour §9.2).

    Returns the list of (step, code, server's words); raises ``RelayConnectionError`` with what
    went wrong.
    """
    session = RelaySession(config)
    session.open()
    steps: list[tuple[str, int, str]] = []
    try:
        smtp = session.smtp
        code, text = smtp.ehlo()
        steps.append(("EHLO", code, _decode(text).splitlines()[0]))
        for step, call in (("MAIL FROM", lambda: smtp.mail(sender)), ("RCPT TO", None)):
            if call is None:
                code, text = smtp.rcpt(recipient)
            else:
                code, text = call()
            steps.append((step, code, _decode(text)))
            if code not in (250, 251):
                raise RelayConnectionError(
                    _STEP_ERRORS["mail" if step == "MAIL FROM" else "rcpt"],
                    f"{code} {_decode(text)}",
                    code,
                )
        smtp.rset()
    finally:
        session.close()
    return steps
