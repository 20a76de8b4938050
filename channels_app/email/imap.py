"""Poll one IMAP mailbox into the desk: fetch, store, process, then acknowledge.

For every message the order is fixed:

1. ``UID FETCH <uid> (BODY.PEEK[])`` -- PEEK, so reading alone never sets \\Seen;
2. ``email_ingest`` stores the raw mail and processes it, and commits;
3. only then the message is marked \\Seen, or moved to the processed folder.

A crash between 1 and 2 leaves the message unseen: the next poll fetches it
again. A crash between 2 and 3 leaves it unseen too: the next poll fetches it
again and ``email_ingest`` answers ``duplicate`` (keyed by
``imap:<account>:<UIDVALIDITY>:<UID>``, by the raw bytes' hash and by the
Message-ID), after which it is marked. A new UIDVALIDITY (a rebuilt mailbox)
makes new keys, and the raw hash and Message-ID still recognise the mail. Two
pollers of one mailbox at once race on those unique keys and store each mail
once; the task's lock only saves the duplicate work.

The connection is TLS (IMAPS) or STARTTLS with the certificate verified
against the system trust store or ``SERVICEDESK_EMAIL["IMAP_CA_FILE"]``. When
STARTTLS is not offered or fails, the poll stops before the login: there is no
plaintext fallback.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.services import IngestOutcome, email_ingest
from servicedesk.core.secrets import CredentialUnreadable

log = logging.getLogger(__name__)

# Seconds a network operation may block before the poll gives up.
TIMEOUT = 60
# Messages taken per poll; the rest wait for the next run (every minute).
MAX_MESSAGES_PER_POLL = 500

_UIDVALIDITY = re.compile(rb"\d+")


class MailboxError(Exception):
    """The mail server refused or broke off: the poll stops, the message stays unmarked."""


@dataclass
class PollReport:
    account: str
    uidvalidity: int | None = None
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    marked: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        counts = (
            f"{self.account}: fetched {self.fetched}, stored {self.stored}, duplicates {self.duplicates}, "
            f"quarantined {self.quarantined}, marked {self.marked}"
        )
        return f"{counts}; error: {self.error}" if self.error else counts


def mailbox_poll(*, account: MailAccount) -> PollReport:
    """Take the waiting mail of one account into the desk.

    Mail server and TLS failures end the poll with ``report.error`` set and
    recorded on the account (``last_error``); messages not yet marked stay in
    the mailbox for the next poll. A database failure (OperationalError,
    InterfaceError) is recorded too when possible and raised, so a task or
    command can report a temporary failure. Safe to run twice or concurrently.
    """
    report = PollReport(account=account.name)
    try:
        client = _connect(account)
    except (MailboxError, imaplib.IMAP4.error, ssl.SSLError, OSError) as exc:
        report.error = _describe(exc)
        mailbox_poll_record(account=account, error=report.error)
        return report
    try:
        _poll(client, account, report)
    except (MailboxError, imaplib.IMAP4.error, ssl.SSLError, OSError) as exc:
        report.error = _describe(exc)
    except (OperationalError, InterfaceError) as exc:
        report.error = _describe(exc)
        _record_quietly(account, report.error)
        raise
    finally:
        _logout(client)
    mailbox_poll_record(account=account, error=report.error)
    if report.error:
        log.warning("IMAP poll of %s stopped: %s", account.name, report.error)
    return report


def mailbox_poll_record(*, account: MailAccount, error: str) -> None:
    """Record when the account was polled and how it ended ('' when it went well)."""
    now = timezone.now()
    MailAccount.objects.filter(pk=account.pk).update(last_polled_at=now, last_error=error[:2000])
    account.last_polled_at = now
    account.last_error = error[:2000]


def _record_quietly(account: MailAccount, error: str) -> None:
    try:
        mailbox_poll_record(account=account, error=error)
    except (OperationalError, InterfaceError):
        log.exception("Could not record the failed poll of %s", account.name)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}".splitlines()[0][:2000]


def _ssl_context() -> ssl.SSLContext:
    ca_file = getattr(settings, "SERVICEDESK_EMAIL", {}).get("IMAP_CA_FILE") or None
    return ssl.create_default_context(cafile=ca_file)


def _connect(account: MailAccount) -> imaplib.IMAP4:
    """An authenticated connection over TLS, or an error: never a plaintext login."""
    try:
        password = account.password()
    except CredentialUnreadable as exc:
        raise MailboxError(exc.message) from None
    if not password:
        raise MailboxError("no password: set the environment variable named in the account, or a stored password")
    context = _ssl_context()
    if account.security == MailAccount.Security.TLS:
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(account.host, account.port, ssl_context=context, timeout=TIMEOUT)
    elif account.security == MailAccount.Security.STARTTLS:
        client = imaplib.IMAP4(account.host, account.port, timeout=TIMEOUT)
        try:
            if "STARTTLS" not in client.capabilities:
                raise MailboxError("the server does not offer STARTTLS; refusing to log in without TLS")
            typ, data = client.starttls(ssl_context=context)
            if typ != "OK":
                raise MailboxError(f"STARTTLS failed: {data!r}")
        except BaseException:
            _close(client)
            raise
    else:
        raise MailboxError(f"unsupported connection security {account.security!r}")
    try:
        client.login(account.username, password)
    except BaseException:
        _close(client)
        raise
    return client


def _poll(client: imaplib.IMAP4, account: MailAccount, report: PollReport) -> None:
    typ, data = client.select(_mailbox_name(account.folder))
    if typ != "OK":
        raise MailboxError(f"cannot open folder {account.folder!r}: {_text(data)}")
    report.uidvalidity = _uidvalidity(client)
    # With a processed folder every message still here is waiting; without
    # one, the \Seen flag is the mark.
    criteria = "UNDELETED" if account.processed_folder else "UNSEEN"
    typ, data = client.uid("SEARCH", criteria)
    if typ != "OK":
        raise MailboxError(f"UID SEARCH failed: {_text(data)}")
    uids = sorted({int(uid) for uid in (data[0] or b"").split()})[:MAX_MESSAGES_PER_POLL]
    for uid in uids:
        raw = _fetch(client, uid)
        if raw is None:
            # Expunged by another client since the search.
            continue
        report.fetched += 1
        result = email_ingest(
            raw=raw,
            source=InboundEmail.Source.IMAP,
            source_key=f"imap:{account.pk}:{report.uidvalidity}:{uid}",
            account=account,
        )
        if result.outcome is IngestOutcome.STORED:
            report.stored += 1
        elif result.outcome is IngestOutcome.DUPLICATE:
            report.duplicates += 1
        else:
            report.quarantined += 1
        _mark(client, account, uid)
        report.marked += 1


def _uidvalidity(client: imaplib.IMAP4) -> int:
    _, values = client.response("UIDVALIDITY")
    for value in values or []:
        match = _UIDVALIDITY.search(value) if isinstance(value, bytes) else None
        if match:
            return int(match.group())
    raise MailboxError("the server sent no UIDVALIDITY for the folder")


def _fetch(client: imaplib.IMAP4, uid: int) -> bytes | None:
    typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
    if typ != "OK":
        raise MailboxError(f"UID FETCH {uid} failed: {_text(data)}")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _mark(client: imaplib.IMAP4, account: MailAccount, uid: int) -> None:
    """Take a processed message out of the poll: move it, or flag it \\Seen."""
    if not account.processed_folder:
        _ok(client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)"), f"UID STORE {uid}")
        return
    target = _mailbox_name(account.processed_folder)
    if "MOVE" in client.capabilities:
        _ok(client.uid("MOVE", str(uid), target), f"UID MOVE {uid}")
        return
    _ok(client.uid("COPY", str(uid), target), f"UID COPY {uid}")
    _ok(client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen \\Deleted)"), f"UID STORE {uid}")
    if "UIDPLUS" in client.capabilities:
        _ok(client.uid("EXPUNGE", str(uid)), f"UID EXPUNGE {uid}")
    else:
        _ok(client.expunge(), "EXPUNGE")


def _ok(response: tuple[str, Sequence[object]], what: str) -> None:
    typ, data = response
    if typ != "OK":
        raise MailboxError(f"{what} failed: {_text(data)}")


def _text(data: Sequence[object] | None) -> str:
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in data or []]
    return " ".join(parts)[:500]


def _mailbox_name(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            chunk = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            encoded.append("&" + chunk.replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    quoted = "".join(encoded).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'


def _logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        _close(client)


def _close(client: imaplib.IMAP4) -> None:
    try:
        client.shutdown()
    except OSError:
        log.debug("Closing the IMAP connection failed", exc_info=True)
