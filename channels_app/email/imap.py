"""Poll one IMAP mailbox into the desk: fetch, store, process, then acknowledge.

A poll drains the folder: it searches for the waiting mail once, then works
through the UIDs found in batches (``SERVICEDESK_EMAIL["IMAP_POLL_BATCH"]``),
and searches again for what arrived meanwhile, until nothing is waiting or its
time budget (``IMAP_POLL_SECONDS``) is spent. The budget is checked after each
message, so every poll takes at least one, and it stops with everything taken
so far marked; the next poll continues with the rest. Per batch:

1. ``UID FETCH <batch> (UID FLAGS RFC822.SIZE)``: drops what another poller
   took meanwhile and sizes the rest;
2. ``UID FETCH <group> (BODY.PEEK[])`` for groups of up to
   ``FETCH_MAX_MESSAGES`` messages and ``FETCH_MAX_BYTES`` bytes -- PEEK, so
   reading alone never sets \\Seen;
3. ``email_ingest`` stores each raw mail and processes it, in transactions
   of ``IMAP_COMMIT_BATCH`` mails (one disk flush for many), each mail in a
   savepoint of its own so a duplicate or a quarantined mail costs the others
   nothing;
4. only then the group's stored messages are marked \\Seen, or moved to the
   processed folder, in one command.

A crash before 3 commits leaves the messages of that transaction unseen and
unstored: the next poll fetches them again. A crash between 3 and 4 leaves it unseen too: the next poll fetches it
again and ``email_ingest`` answers ``duplicate`` (keyed by
``imap:<account>:<UIDVALIDITY>:<UID>``, by the raw bytes' hash and by the
Message-ID), after which it is marked. A database failure stops the poll
after marking the messages of the group committed before it; the rest (the
failed one's transaction included) stay unmarked. A new UIDVALIDITY (a rebuilt mailbox) makes new keys,
and the raw hash and Message-ID still recognise the mail. Two pollers of one
mailbox at once race on those unique keys and store each mail once; the
task's lock only saves the duplicate work.

The connection is TLS (IMAPS) or STARTTLS with the certificate verified
against the system trust store or ``SERVICEDESK_EMAIL["IMAP_CA_FILE"]``. When
STARTTLS is not offered or fails, the poll stops before the login: there is no
plaintext fallback. docs/architecture.md ("The email channel") has the whole
picture, with IMAP IDLE (``channels_app/email/idle.py``).
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.services import IngestOutcome, email_ingest
from servicedesk.core.secrets import CredentialUnreadable

log = logging.getLogger(__name__)

# Seconds a network operation may block before the poll gives up.
TIMEOUT = 60
# Defaults of SERVICEDESK_EMAIL["IMAP_POLL_SECONDS"] and ["IMAP_POLL_BATCH"]:
# a poll's time budget stays under the minute between beat runs and far under
# the poll lock (tasks.POLL_LOCK_SECONDS).
POLL_SECONDS = 50.0
POLL_BATCH = 500
# Default of SERVICEDESK_EMAIL["IMAP_COMMIT_BATCH"]: mails stored per transaction.
COMMIT_BATCH = 50
# One body fetch takes at most this many messages and, by their sizes, bytes
# (a larger message comes alone): few round trips, bounded memory.
FETCH_MAX_MESSAGES = 100
FETCH_MAX_BYTES = 8 * 1024 * 1024

_UIDVALIDITY = re.compile(rb"\d+")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")


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
    # Stopped by the time budget: mail may still be waiting for the next poll.
    budget_spent: bool = False
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        counts = (
            f"{self.account}: fetched {self.fetched}, stored {self.stored}, duplicates {self.duplicates}, "
            f"quarantined {self.quarantined}, marked {self.marked}"
        )
        if self.budget_spent:
            counts += "; time budget spent, the rest waits for the next poll"
        return f"{counts}; error: {self.error}" if self.error else counts


class _Budget:
    """The poll's time budget on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def spent(self) -> bool:
        return time.monotonic() >= self._deadline


def mailbox_poll(*, account: MailAccount) -> PollReport:
    """Take the waiting mail of one account into the desk, until none waits or the time budget is spent.

    Mail server and TLS failures end the poll with ``report.error`` set and
    recorded on the account (``last_error``); messages not yet marked stay in
    the mailbox for the next poll. A database failure (OperationalError,
    InterfaceError) is recorded too when possible and raised, so a task or
    command can report a temporary failure. ``report.budget_spent`` tells that
    the time budget ended the poll. Safe to run twice or concurrently.
    """
    report = PollReport(account=account.name)
    budget = _Budget(_email_setting("IMAP_POLL_SECONDS", POLL_SECONDS))
    try:
        client = mailbox_connect(account)
    except (MailboxError, imaplib.IMAP4.error, ssl.SSLError, OSError) as exc:
        report.error = describe_error(exc)
        mailbox_poll_record(account=account, error=report.error)
        return report
    try:
        _poll(client, account, report, budget)
    except (MailboxError, imaplib.IMAP4.error, ssl.SSLError, OSError) as exc:
        report.error = describe_error(exc)
    except (OperationalError, InterfaceError) as exc:
        report.error = describe_error(exc)
        _record_quietly(account, report.error)
        raise
    finally:
        mailbox_logout(client)
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


def describe_error(exc: BaseException) -> str:
    """One line naming the error, as recorded in ``MailAccount.last_error``."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}".splitlines()[0][:2000]


def _email_setting(name: str, default: float) -> float:
    value = getattr(settings, "SERVICEDESK_EMAIL", {}).get(name)
    return default if value is None else float(value)


def _ssl_context() -> ssl.SSLContext:
    ca_file = getattr(settings, "SERVICEDESK_EMAIL", {}).get("IMAP_CA_FILE") or None
    return ssl.create_default_context(cafile=ca_file)


def mailbox_connect(account: MailAccount) -> imaplib.IMAP4:
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
        _capabilities_refresh(client)
    except BaseException:
        _close(client)
        raise
    return client


def _capabilities_refresh(client: imaplib.IMAP4) -> None:
    """Replace the greeting's capabilities with those after login (MOVE, UIDPLUS, IDLE come only then).

    Taken from the login answer's CAPABILITY code when the server sent one,
    else asked for.
    """
    _, data = client.response("CAPABILITY")
    if not data or data[-1] is None:
        typ, data = client.capability()
        if typ != "OK":
            raise MailboxError(f"CAPABILITY failed: {_text(data)}")
    line = data[-1]
    if isinstance(line, bytes):
        client.capabilities = tuple(line.decode("ascii", "replace").upper().split())


def mailbox_select(client: imaplib.IMAP4, account: MailAccount) -> int:
    """Open the account's folder; returns its UIDVALIDITY."""
    typ, data = client.select(mailbox_name(account.folder))
    if typ != "OK":
        raise MailboxError(f"cannot open folder {account.folder!r}: {_text(data)}")
    return _uidvalidity(client)


def _poll(client: imaplib.IMAP4, account: MailAccount, report: PollReport, budget: _Budget) -> None:
    report.uidvalidity = mailbox_select(client, account)
    batch_size = max(1, int(_email_setting("IMAP_POLL_BATCH", POLL_BATCH)))
    after = 0
    while True:
        uids = _search(client, account, after=after)
        if not uids:
            return
        for start in range(0, len(uids), batch_size):
            for group in _groups(_waiting(client, account, uids[start : start + batch_size])):
                _take(client, account, report, group, budget)
                if report.fetched and budget.spent():
                    report.budget_spent = True
                    return
        # Search again: mail that arrived during this round is waiting too.
        after = uids[-1]


def _search(client: imaplib.IMAP4, account: MailAccount, *, after: int) -> list[int]:
    """UIDs above ``after`` still waiting, ascending."""
    # With a processed folder every message still here is waiting; without
    # one, the \Seen flag is the mark.
    criteria = ["UNDELETED" if account.processed_folder else "UNSEEN"]
    if after:
        criteria[:0] = ["UID", f"{after + 1}:*"]
    typ, data = client.uid("SEARCH", *criteria)
    if typ != "OK":
        raise MailboxError(f"UID SEARCH failed: {_text(data)}")
    # "n:*" matches the highest UID even when it is below n.
    return sorted({int(uid) for line in data if isinstance(line, bytes) for uid in line.split() if int(uid) > after})


def _waiting(client: imaplib.IMAP4, account: MailAccount, uids: list[int]) -> list[tuple[int, int]]:
    """(UID, size) of the messages among ``uids`` still unmarked: another poller may have taken some."""
    typ, data = client.uid("FETCH", _uid_set(uids), "(UID FLAGS RFC822.SIZE)")
    if typ != "OK":
        raise MailboxError(f"UID FETCH of flags failed: {_text(data)}")
    marks = {b"\\deleted"} if account.processed_folder else {b"\\seen", b"\\deleted"}
    wanted = set(uids)
    sizes: dict[int, int] = {}
    for line in data:
        # Flag changes another session made arrive here too, without a size.
        head = line[0] if isinstance(line, tuple) else line
        if not isinstance(head, bytes):
            continue
        uid, size, flags = _UID.search(head), _SIZE.search(head), _FLAGS.search(head)
        if uid is None or size is None or int(uid.group(1)) not in wanted:
            continue
        if flags is not None and marks & {flag.lower() for flag in flags.group(1).split()}:
            continue
        sizes[int(uid.group(1))] = int(size.group(1))
    return sorted(sizes.items())


def _groups(waiting: list[tuple[int, int]]) -> Iterator[list[int]]:
    """Consecutive groups of UIDs for one body fetch each: FETCH_MAX_MESSAGES and FETCH_MAX_BYTES at most."""
    group: list[int] = []
    total = 0
    for uid, size in waiting:
        if group and (len(group) >= FETCH_MAX_MESSAGES or total + size > FETCH_MAX_BYTES):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def _take(client: imaplib.IMAP4, account: MailAccount, report: PollReport, group: list[int], budget: _Budget) -> None:
    """Fetch and store one group, then mark what was stored; stops early when the budget is spent.

    The group's mails are stored in transactions of ``IMAP_COMMIT_BATCH``
    mails (each mail in a savepoint of its own): one commit, one disk flush,
    for many mails. Only committed mails are counted and marked.
    """
    bodies = _fetch(client, group)
    waiting = [uid for uid in group if uid in bodies]  # the others were expunged by another client
    per_commit = max(1, int(_email_setting("IMAP_COMMIT_BATCH", COMMIT_BATCH)))
    taken: list[int] = []
    try:
        while waiting:
            chunk, tally, spent = waiting[:per_commit], PollReport(account=report.account), False
            done: list[int] = []
            with transaction.atomic():
                for uid in chunk:
                    tally.fetched += 1
                    result = email_ingest(
                        raw=bodies[uid],
                        source=InboundEmail.Source.IMAP,
                        source_key=f"imap:{account.pk}:{report.uidvalidity}:{uid}",
                        account=account,
                    )
                    if result.outcome is IngestOutcome.STORED:
                        tally.stored += 1
                    elif result.outcome is IngestOutcome.DUPLICATE:
                        tally.duplicates += 1
                    else:
                        tally.quarantined += 1
                    done.append(uid)
                    if budget.spent():
                        spent = True
                        break
            taken.extend(done)
            report.fetched += tally.fetched
            report.stored += tally.stored
            report.duplicates += tally.duplicates
            report.quarantined += tally.quarantined
            waiting = [] if spent else waiting[len(chunk) :]
    except Exception:
        # What was committed before the failure is marked; the rest waits.
        _mark_quietly(client, account, report, taken)
        raise
    if taken:
        _mark(client, account, taken)
        report.marked += len(taken)


def _uidvalidity(client: imaplib.IMAP4) -> int:
    _, values = client.response("UIDVALIDITY")
    for value in values or []:
        match = _UIDVALIDITY.search(value) if isinstance(value, bytes) else None
        if match:
            return int(match.group())
    raise MailboxError("the server sent no UIDVALIDITY for the folder")


def _fetch(client: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    """UID -> raw message of those among ``uids`` the server still has."""
    typ, data = client.uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
    if typ != "OK":
        raise MailboxError(f"UID FETCH {_uid_set(uids)} failed: {_text(data)}")
    wanted = set(uids)
    bodies: dict[int, bytes] = {}
    for index, item in enumerate(data):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)):
            continue
        # The UID comes before the literal or, with some servers, after it.
        match = _UID.search(item[0])
        if match is None and index + 1 < len(data) and isinstance(data[index + 1], bytes):
            match = _UID.search(data[index + 1])
        if match is not None and int(match.group(1)) in wanted:
            bodies[int(match.group(1))] = item[1]
    return bodies


def _mark(client: imaplib.IMAP4, account: MailAccount, uids: list[int]) -> None:
    """Take processed messages out of the poll: move them, or flag them \\Seen."""
    uid_set = _uid_set(uids)
    if not account.processed_folder:
        _ok(client.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Seen)"), f"UID STORE {uid_set}")
        return
    target = mailbox_name(account.processed_folder)
    if "MOVE" in client.capabilities:
        _ok(client.uid("MOVE", uid_set, target), f"UID MOVE {uid_set}")
        return
    _ok(client.uid("COPY", uid_set, target), f"UID COPY {uid_set}")
    _ok(client.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Seen \\Deleted)"), f"UID STORE {uid_set}")
    if "UIDPLUS" in client.capabilities:
        _ok(client.uid("EXPUNGE", uid_set), f"UID EXPUNGE {uid_set}")
    else:
        _ok(client.expunge(), "EXPUNGE")


def _mark_quietly(client: imaplib.IMAP4, account: MailAccount, report: PollReport, uids: list[int]) -> None:
    if not uids:
        return
    try:
        _mark(client, account, uids)
    except (MailboxError, imaplib.IMAP4.error, ssl.SSLError, OSError):
        log.warning("Could not mark %d stored messages of %s; the next poll does", len(uids), account.name)
        return
    report.marked += len(uids)


def _uid_set(uids: list[int]) -> str:
    """Ascending UIDs as an IMAP sequence set with ranges: 1:3,7,9:10."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(parts)


def _ok(response: tuple[str, Sequence[object]], what: str) -> None:
    typ, data = response
    if typ != "OK":
        raise MailboxError(f"{what} failed: {_text(data)}")


def _text(data: Sequence[object] | None) -> str:
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in data or []]
    return " ".join(parts)[:500]


def mailbox_name(name: str) -> str:
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


def mailbox_logout(client: imaplib.IMAP4) -> None:
    """LOGOUT, or close the connection when the server does not answer."""
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        _close(client)


def _close(client: imaplib.IMAP4) -> None:
    try:
        client.shutdown()
    except OSError:
        log.debug("Closing the IMAP connection failed", exc_info=True)
