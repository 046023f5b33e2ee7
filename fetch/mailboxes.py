"""Thin adapters over imapclient and poplib: one interface to list, read and acknowledge mail.

Every failure becomes a ``MailboxError`` carrying the server's own words (or the TLS or socket
error), so a bad server shows one clear line on its row and never a stack trace.
"""

import imaplib
import poplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from .models import AfterFetch, IncomingServer, Protocol

TIMEOUT_SECONDS = 30


class MailboxError(Exception):
    """What went wrong talking to the mailbox, in words a person can act on."""


def server_words(value: object) -> str:
    if isinstance(value, str) and value[:2] in ("b'", 'b"') and value[-1:] == value[1]:
        # imapclient's LoginError carries the repr of the server's bytes.
        return value[2:-1]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple) and value:
        return " ".join(server_words(v) for v in value)
    return str(value)


@contextmanager
def server_errors(server: IncomingServer, step: str) -> Iterator[None]:
    """Turn what the libraries raise during ``step`` into one ``MailboxError`` line."""
    where = f"{server.host}:{server.effective_port}"
    try:
        yield
    except MailboxError:
        raise
    except LoginError as exc:
        raise MailboxError(f"login refused by {where}: {server_words(exc.args)}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(f"TLS failure with {where}: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS failure with {where}: {exc.reason or exc}") from exc
    except TimeoutError as exc:
        raise MailboxError(f"{where} did not answer within {TIMEOUT_SECONDS} s ({step})") from exc
    except (IMAPClientError, imaplib.IMAP4.error, poplib.error_proto) as exc:
        raise MailboxError(f"{where} refused {step}: {server_words(exc.args)}") from exc
    except OSError as exc:
        raise MailboxError(f"cannot reach {where} ({step}): {exc.strerror or exc}") from exc


@dataclass
class Mailbox:
    """An open, logged-in mailbox. ``key_space`` scopes the UIDs (IMAP UIDVALIDITY)."""

    server: IncomingServer
    key_space: str
    greeting: str

    def uids(self) -> list[str]:
        raise NotImplementedError

    def size(self, uid: str) -> int:
        raise NotImplementedError

    def read(self, uid: str) -> bytes:
        raise NotImplementedError

    def read_headers(self, uid: str) -> bytes:
        raise NotImplementedError

    def acknowledge(self, uid: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class ImapMailbox(Mailbox):
    def __init__(self, server: IncomingServer) -> None:
        context = ssl.create_default_context()
        with server_errors(server, "the connection"):
            self.client = IMAPClient(
                server.host,
                port=server.effective_port,
                ssl=server.protocol == Protocol.IMAP_SSL,
                ssl_context=context,
                timeout=TIMEOUT_SECONDS,
            )
        try:
            with server_errors(server, "STARTTLS"):
                if server.protocol == Protocol.IMAP_STARTTLS:
                    self.client.starttls(context)
            with server_errors(server, "the login"):
                greeting = server_words(self.client.login(server.login, server.password))
            with server_errors(server, f"to open folder {server.folder!r}"):
                selected = self.client.select_folder(server.folder)
            if server.after_fetch == AfterFetch.MOVE:
                with server_errors(server, "the folder check"):
                    if not self.client.folder_exists(server.move_to):
                        raise MailboxError(
                            f"folder {server.move_to!r} (move fetched mail to) does not exist "
                            f"on {server.host}"
                        )
        except BaseException:
            self._shutdown()
            raise
        exists = selected.get(b"EXISTS", 0)
        super().__init__(
            server=server,
            key_space=str(selected.get(b"UIDVALIDITY", "")),
            greeting=f"{greeting}; folder {server.folder!r}: {exists} message(s)",
        )

    def uids(self) -> list[str]:
        # Mark-seen mailboxes keep what was taken: only unseen mail is new (as Odoo does).
        criteria = ["UNSEEN"] if self.server.after_fetch == AfterFetch.MARK_SEEN else ["UNDELETED"]
        with server_errors(self.server, "the search"):
            return [str(uid) for uid in sorted(self.client.search(criteria))]

    def _fetch_item(self, uid: str, item: str, key: bytes):
        with server_errors(self.server, f"to read message {uid}"):
            data = self.client.fetch([int(uid)], [item])
        try:
            return data[int(uid)][key]
        except KeyError as exc:
            raise MailboxError(f"message {uid} vanished from {self.server.folder!r}") from exc

    def size(self, uid: str) -> int:
        return int(self._fetch_item(uid, "RFC822.SIZE", b"RFC822.SIZE"))

    def read(self, uid: str) -> bytes:
        # BODY.PEEK leaves \Seen alone until the mail is stored (RFC 3501 §6.4.5).
        return self._fetch_item(uid, "BODY.PEEK[]", b"BODY[]")

    def read_headers(self, uid: str) -> bytes:
        return self._fetch_item(uid, "BODY.PEEK[HEADER]", b"BODY[HEADER]")

    def acknowledge(self, uid: str) -> None:
        action = self.server.after_fetch
        with server_errors(self.server, f"to {action} message {uid}"):
            if action == AfterFetch.MARK_SEEN:
                self.client.add_flags([int(uid)], [b"\\Seen"])
            elif action == AfterFetch.MOVE and self.client.has_capability("MOVE"):
                self.client.move([int(uid)], self.server.move_to)  # RFC 6851
            else:
                if action == AfterFetch.MOVE:
                    self.client.copy([int(uid)], self.server.move_to)
                self.client.add_flags([int(uid)], [b"\\Deleted"])
                # UID EXPUNGE (RFC 4315) removes only this message, not others marked deleted.
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge([int(uid)])
                else:
                    self.client.expunge()

    def _shutdown(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a broken connection: nothing left to do
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        self._shutdown()


class Pop3Mailbox(Mailbox):
    def __init__(self, server: IncomingServer) -> None:
        with server_errors(server, "the connection"):
            self.client = poplib.POP3_SSL(
                server.host,
                server.effective_port,
                context=ssl.create_default_context(),
                timeout=TIMEOUT_SECONDS,
            )
        try:
            with server_errors(server, "the login"):
                self.client.user(server.login)
                greeting = server_words(self.client.pass_(server.password))
            with server_errors(server, "the listing"):
                # UIDL (RFC 1939 §7): an id that stays with the message across sessions.
                _, lines, _ = self.client.uidl()
        except BaseException:
            self.client.close()
            raise
        self.numbers = {}
        for line in lines:
            number, _, uidl = server_words(line).partition(" ")
            self.numbers[uidl.strip()] = int(number)
        super().__init__(
            server=server,
            key_space="",
            greeting=f"{greeting}; {len(self.numbers)} message(s)",
        )

    def uids(self) -> list[str]:
        return list(self.numbers)

    def size(self, uid: str) -> int:
        with server_errors(self.server, f"to list message {uid}"):
            answer = server_words(self.client.list(self.numbers[uid]))  # "+OK 3 1204" (RFC 1939 §5)
        return int(answer.split()[2])

    def read(self, uid: str) -> bytes:
        with server_errors(self.server, f"to read message {uid}"):
            _, lines, _ = self.client.retr(self.numbers[uid])
        return b"\r\n".join(lines) + b"\r\n"

    def read_headers(self, uid: str) -> bytes:
        with server_errors(self.server, f"to read message {uid}"):
            _, lines, _ = self.client.top(self.numbers[uid], 0)
        return b"\r\n".join(lines) + b"\r\n"

    def acknowledge(self, uid: str) -> None:
        # POP3 has no flags: "mark seen" leaves the mail, remembered by its UIDL.
        if self.server.after_fetch == AfterFetch.DELETE:
            with server_errors(self.server, f"to delete message {uid}"):
                self.client.dele(self.numbers[uid])

    def close(self) -> None:
        # QUIT enters the UPDATE state: only now are deletions applied (RFC 1939 §6).
        with server_errors(self.server, "QUIT"):
            try:
                self.client.quit()
            finally:
                self.client.close()


def mailbox_open(server: IncomingServer) -> Mailbox:
    return ImapMailbox(server) if server.is_imap else Pop3Mailbox(server)
