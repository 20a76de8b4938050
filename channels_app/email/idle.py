"""IMAP IDLE (RFC 2177): mail arrives within seconds instead of at the next minute's poll.

``manage.py mail_idle`` runs ``mailboxes_watch``: one thread per active mail
account, each holding a connection of its own in IDLE on the account's folder.
When the server reports new mail (an untagged EXISTS or RECENT) the watcher
ends the IDLE (DONE) and runs the ordinary poll (``imap.mailbox_poll``, on a
connection of its own) under the account's poll lock (``tasks.poll_lock``), so
the watcher and the beat's minute poll never poll one account at once; storing
is idempotent anyway. The order closes every gap: the watcher selects the
folder first, then polls once, then IDLEs, so mail that arrives while it polls
is reported when the next IDLE begins.

Each IDLE ends after ``RENEW_SECONDS`` (servers may drop a client idle for 30
minutes) and starts again. Errors close the connection and reconnect after a
delay that doubles from ``BACKOFF_FIRST_SECONDS`` up to
``BACKOFF_MAX_SECONDS`` (afresh after a connection that worked for
``HEALTHY_SECONDS``). A server that does not list IDLE after login gets
no watcher: the minute poll serves it.

Python's imaplib has no IDLE, so ``IdleSession`` speaks it on the socket of an
imaplib connection: it sends ``<tag> IDLE``, reads untagged responses with a
deadline (non-blocking reads through ``select``), and sends ``DONE``.
"""

from __future__ import annotations

import enum
import imaplib
import io
import itertools
import logging
import re
import select
import ssl
import threading
import time
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, close_old_connections, connections

from channels_app.email.imap import (
    TIMEOUT,
    MailboxError,
    describe_error,
    mailbox_connect,
    mailbox_logout,
    mailbox_poll,
    mailbox_select,
)
from channels_app.email.models import MailAccount
from channels_app.email.tasks import PollLockUnavailable, poll_lock

log = logging.getLogger(__name__)

# An IDLE is ended and begun again this often: under the 29 minutes RFC 2177 allows.
RENEW_SECONDS = 25 * 60
# Reconnection delays after an error: doubling from the first up to the most.
BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0
# A connection that worked this long before its error starts the delays afresh.
HEALTHY_SECONDS = 60.0
# While another poller holds the account's lock, try again this often.
LOCK_RETRY_SECONDS = 1.0
# How often the set of accounts to watch is read again.
REFRESH_SECONDS = 60.0
# How often a waiting IDLE looks whether it was asked to stop.
_STOP_CHECK_SECONDS = 0.5
_MAX_LINE = 64 * 1024
_NEW_MAIL = re.compile(rb"^\* \d+ (EXISTS|RECENT)$", re.IGNORECASE)
_BYE = re.compile(rb"^\* BYE\b", re.IGNORECASE)

_WATCH_ERRORS = (
    MailboxError,
    imaplib.IMAP4.error,
    ssl.SSLError,
    OSError,
    OperationalError,
    InterfaceError,
    PollLockUnavailable,
)


class IdleUnsupported(MailboxError):
    """The server does not list IDLE among its capabilities."""


class IdleSession:
    """The IDLE exchange on an imaplib connection whose folder is selected.

    From its creation the session reads the connection itself, through a
    buffer of its own: afterwards the connection takes no other command but
    the LOGOUT of ``close``.
    """

    def __init__(self, client: imaplib.IMAP4) -> None:
        if "IDLE" not in client.capabilities:
            raise IdleUnsupported("the server does not offer IDLE")
        if not isinstance(client.file, io.BufferedReader):
            raise MailboxError("the connection is not readable as bytes")
        self._client = client
        self._file = client.file
        self._sock = client.socket()
        self._buffer = bytearray()
        self._tags = itertools.count(1)
        self._sock.settimeout(0.0)
        # Whatever imaplib has read ahead is taken over.
        self._receive(at_start=True)

    def wait(self, seconds: float, *, stop: threading.Event | None = None) -> bool:
        """IDLE until the server reports new mail, ``seconds`` pass or ``stop`` is set; then DONE.

        True when new mail was reported (EXISTS or RECENT, also in the answers
        to IDLE and DONE). Raises MailboxError when the server refuses IDLE,
        ends the session (BYE), closes the connection or does not answer
        within ``imap.TIMEOUT``.
        """
        tag = f"SDIDLE{next(self._tags)}".encode()
        self._send(tag + b" IDLE\r\n")
        news = False
        answer_by = time.monotonic() + TIMEOUT
        while True:
            line = self._expect_line(answer_by, "IDLE")
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                raise MailboxError(f"IDLE refused: {line.decode('utf-8', 'replace')}")
            news |= self._untagged(line)
        end = time.monotonic() + seconds
        while not news and time.monotonic() < end and not (stop is not None and stop.is_set()):
            waited = self._read_line(min(end, time.monotonic() + _STOP_CHECK_SECONDS))
            if waited is not None:
                news |= self._untagged(waited)
        self._send(b"DONE\r\n")
        answer_by = time.monotonic() + TIMEOUT
        while True:
            line = self._expect_line(answer_by, "DONE")
            if line.startswith(tag + b" "):
                if line[len(tag) + 1 :].upper().startswith(b"OK"):
                    return news
                raise MailboxError(f"IDLE failed: {line.decode('utf-8', 'replace')}")
            news |= self._untagged(line)

    def close(self) -> None:
        """LOGOUT without waiting for the answer, then close the connection."""
        try:
            self._send(b"SDBYE LOGOUT\r\n")
        except (MailboxError, OSError):
            log.debug("LOGOUT not sent", exc_info=True)
        try:
            self._client.shutdown()
        except OSError:
            log.debug("Closing the IMAP connection failed", exc_info=True)

    def _untagged(self, line: bytes) -> bool:
        if _BYE.match(line):
            raise MailboxError(f"the server ended the session: {line.decode('utf-8', 'replace')[:500]}")
        return _NEW_MAIL.match(line) is not None

    def _send(self, data: bytes) -> None:
        self._sock.settimeout(TIMEOUT)
        try:
            self._sock.sendall(data)
        finally:
            self._sock.settimeout(0.0)

    def _expect_line(self, until: float, command: str) -> bytes:
        line = self._read_line(until)
        if line is None:
            raise MailboxError(f"no answer to {command} within {TIMEOUT} seconds")
        return line

    def _read_line(self, until: float) -> bytes | None:
        """The next line without its CRLF, or None when ``until`` (monotonic) comes first."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > _MAX_LINE:
                raise MailboxError("the server sent a line longer than 64 KiB")
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            # Decrypted bytes already in the TLS layer do not wake select().
            pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
            if not pending:
                readable, _, _ = select.select([self._sock], [], [], remaining)
                if not readable:
                    return None
            self._receive()

    def _receive(self, *, at_start: bool = False) -> None:
        """Append what has arrived; the socket is readable unless ``at_start``."""
        try:
            data = self._file.read1(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if not data:
            if at_start:
                return
            raise MailboxError("the server closed the connection")
        self._buffer += data


class WatchEnd(enum.StrEnum):
    STOPPED = "stopped"
    NO_IDLE = "no IDLE"
    GONE = "account gone"


def mailbox_watch(*, account_id: int, stop: threading.Event, renew_seconds: float = RENEW_SECONDS) -> WatchEnd:
    """Keep one account's mail coming in as it arrives, until ``stop`` is set.

    Connects, checks that the server offers IDLE (``NO_IDLE`` otherwise:
    nothing is polled, the minute poll serves the account), selects the
    folder, polls once, then IDLEs and polls again whenever new mail is
    reported; each IDLE lasts at most ``renew_seconds``. Any error (mail
    server, database, lock cache) closes the connection and reconnects after
    the backoff delay. Ends with ``GONE`` when the account is deleted.
    """
    delay = BACKOFF_FIRST_SECONDS
    while not stop.is_set():
        started = time.monotonic()
        try:
            close_old_connections()
            account = MailAccount.objects.filter(pk=account_id).first()
            if account is None:
                return WatchEnd.GONE
            if _watch(account, stop, renew_seconds):
                return WatchEnd.NO_IDLE
            return WatchEnd.STOPPED
        except _WATCH_ERRORS as exc:
            if isinstance(exc, OperationalError | InterfaceError):
                connections.close_all()
            reason = describe_error(exc)
        except Exception as exc:
            log.exception("IMAP IDLE of account %s failed", account_id)
            reason = describe_error(exc)
        if time.monotonic() - started >= HEALTHY_SECONDS:
            delay = BACKOFF_FIRST_SECONDS
        log.warning("IMAP IDLE of account %s stopped: %s; connecting again in %.0f s", account_id, reason, delay)
        stop.wait(delay)
        delay = min(delay * 2, BACKOFF_MAX_SECONDS)
    return WatchEnd.STOPPED


def _watch(account: MailAccount, stop: threading.Event, renew_seconds: float) -> bool:
    """One connection's life; True when the server does not offer IDLE."""
    client = mailbox_connect(account)
    if "IDLE" not in client.capabilities:
        mailbox_logout(client)
        log.info("IMAP server of %s does not offer IDLE: it is polled every minute", account.name)
        return True
    try:
        mailbox_select(client, account)
        session = IdleSession(client)
    except BaseException:
        mailbox_logout(client)
        raise
    try:
        _poll_drained(account, stop)
        log.info("IMAP IDLE of %s: waiting for new mail", account.name)
        while not stop.is_set():
            if session.wait(renew_seconds, stop=stop):
                _poll_drained(account, stop)
    finally:
        session.close()
    return False


def _poll_drained(account: MailAccount, stop: threading.Event) -> None:
    """Poll under the account's lock (waiting while another poller holds it) until nothing waits."""
    while not stop.is_set():
        close_old_connections()
        with poll_lock(account.pk) as locked:
            report = mailbox_poll(account=account) if locked else None
        if report is None:
            stop.wait(LOCK_RETRY_SECONDS)
            continue
        if report.fetched:
            log.info("IMAP IDLE poll: %s", report)
        if report.error:
            raise MailboxError(report.error)
        if not report.budget_spent:
            return


@dataclass
class _Watcher:
    fingerprint: tuple[object, ...]
    stop: threading.Event
    thread: threading.Thread


def _fingerprint(account: MailAccount) -> tuple[object, ...]:
    """What a watcher's connection depends on: a change starts a new watcher."""
    return (
        account.host,
        account.port,
        account.security,
        account.username,
        account.password_env,
        account.password_encrypted,
        account.folder,
        account.processed_folder,
    )


def mailboxes_watch(
    *,
    stop: threading.Event,
    account_name: str | None = None,
    refresh_seconds: float = REFRESH_SECONDS,
    renew_seconds: float = RENEW_SECONDS,
) -> None:
    """Run a watcher (``mailbox_watch``) per active account, or for the one named, until ``stop`` is set.

    The accounts are read again every ``refresh_seconds``: a new account gets
    a watcher, a deleted or deactivated one loses it, a changed one (server,
    login, folders) gets a new one. A watcher that found no IDLE is not
    started again until its account changes. On stop every watcher ends its
    IDLE and logs out.
    """
    watchers: dict[int, _Watcher] = {}
    try:
        while not stop.is_set():
            try:
                close_old_connections()
                accounts = MailAccount.objects.order_by("pk")
                accounts = (
                    accounts.filter(name=account_name) if account_name is not None else accounts.filter(is_active=True)
                )
                wanted = {account.pk: (account.name, _fingerprint(account)) for account in accounts}
            except (OperationalError, InterfaceError) as exc:
                connections.close_all()
                log.warning("Mail accounts not read: %s; trying again in %.0f s", describe_error(exc), refresh_seconds)
                wanted = {pk: ("", watcher.fingerprint) for pk, watcher in watchers.items()}
            for pk, watcher in list(watchers.items()):
                if pk not in wanted or wanted[pk][1] != watcher.fingerprint:
                    watcher.stop.set()
                    del watchers[pk]
            for pk, (name, fingerprint) in wanted.items():
                if pk not in watchers:
                    watchers[pk] = _watcher_start(pk, name, fingerprint, renew_seconds)
            stop.wait(refresh_seconds)
    finally:
        for watcher in watchers.values():
            watcher.stop.set()
        for watcher in watchers.values():
            watcher.thread.join(TIMEOUT)


def _watcher_start(account_id: int, name: str, fingerprint: tuple[object, ...], renew_seconds: float) -> _Watcher:
    own_stop = threading.Event()

    def run() -> None:
        try:
            end = mailbox_watch(account_id=account_id, stop=own_stop, renew_seconds=renew_seconds)
            log.info("IMAP IDLE of %s ended: %s", name or account_id, end)
        except Exception:
            log.exception("IMAP IDLE of %s failed", name or account_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=f"mail-idle-{account_id}", daemon=True)
    thread.start()
    return _Watcher(fingerprint=fingerprint, stop=own_stop, thread=thread)
