"""The LMTP listener (RFC 2033) a mail server delivers to: ``manage.py lmtp_server``.

A delivery is stored once by ``email_ingest`` (source ``lmtp``), however many
recipients it names, and after the data every recipient gets the same reply:

- ``250`` when the mail is stored, a duplicate, or kept in the quarantine;
- ``451 4.3.0`` when the database, the raw-mail storage or the message broker
  is unavailable, or anything else fails on our side: the mail server keeps
  the mail and delivers it again later, and the second delivery stores it
  once. An outage of ours is never answered with a 5xx;
- ``552`` when the mail is larger than ``mta.inbound_max_bytes`` (the limit is
  announced as ``SIZE`` in the LHLO reply, so a mail server that reads it
  refuses such a mail before sending it).

The sessions run on one asyncio loop (aiosmtpd). Django's ORM is synchronous,
so each mail is stored in one of ``workers`` threads kept for that; each
thread has its own database connection and closes it around every mail as
Django does around a request (``close_old_connections``), so a restarted
PostgreSQL costs at most one 451 per kept connection and never leaves the
listener broken. Storing a mail is mostly Python work, which threads share
one CPU for: ``lmtp_serve(processes=N)`` forks N listeners that accept on
the one socket.

Stopping (``LmtpListener.stop``, SIGTERM for the command) stops accepting,
answers ``421`` to sessions between mails, lets the mails being received or
stored finish and get their replies (for ``grace`` seconds at most), then
closes the connections that are left and the database connections.
See docs/architecture.md, "The email channel".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session, syntax
from django.db import close_old_connections, connections

from channels_app.email.models import InboundEmail
from channels_app.email.mta import TEMPORARY_ERRORS, inbound_max_bytes
from channels_app.email.services import email_ingest
from servicedesk.core.health import broker_ok

log = logging.getLogger(__name__)

T = TypeVar("T")

TEMPFAIL_REPLY = "451 4.3.0 Temporary failure, try again later"
BROKER_DOWN_REPLY = "451 4.3.0 Temporary failure, try again later: the message broker is unreachable"
SHUTDOWN_REPLY = "421 4.3.2 Service shutting down, try again later"
BROKER_TRUSTED_SECONDS = 1.0
LISTEN_BACKLOG = 128


def _reply_text(text: str) -> str:
    """``text`` fit for a reply line: printable ASCII, one line, at most 200 characters."""
    cleaned = "".join(char if " " <= char <= "~" else "?" for char in text)
    return cleaned[:200]


def delivery_store(raw: bytes, *, broker_check: Callable[[], bool] = broker_ok) -> str:
    """Store one delivered mail; returns the reply every recipient gets.

    Runs in a database worker thread. Never raises: anything but a stored,
    duplicate or quarantined mail is a 451 with the cause in the log.
    """
    close_old_connections()
    try:
        if not broker_check():
            # The acknowledgement and notifications go through the broker: the
            # mail server keeps the mail until it is back (as for the pipe).
            log.warning("LMTP delivery deferred: the message broker is unreachable")
            return BROKER_DOWN_REPLY
        result = email_ingest(raw=raw, source=InboundEmail.Source.LMTP)
    except TEMPORARY_ERRORS as exc:
        log.warning("LMTP delivery deferred: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return TEMPFAIL_REPLY
    except Exception:
        log.exception("LMTP delivery deferred: storing the mail failed")
        return TEMPFAIL_REPLY
    finally:
        close_old_connections()
    detail = result.reason if result.reason else (result.reference or "-")
    return _reply_text(f"250 2.0.0 {result.outcome.value} {detail}")


class DatabaseWorkers:
    """Threads that run the synchronous database work of the listener, each
    with its own database connection, closed when the thread stops."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("At least one database worker is needed.")
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [threading.Thread(target=self._work, name=f"lmtp-db-{n}", daemon=True) for n in range(count)]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        future: Future[T] = Future()
        self._jobs.put((fn, args, future))
        return await asyncio.wrap_future(future)

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                fn, args, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the awaiting coroutine
                    future.set_exception(exc)
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Finish the jobs already queued, then end every thread."""
        for _thread in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


class LmtpHandler:
    """aiosmtpd's handler: hands the data of each delivery to ``delivery_store``."""

    def __init__(self, workers: DatabaseWorkers, store: Callable[[bytes], str] = delivery_store) -> None:
        self._workers = workers
        self._store = store

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook name)
        raw = envelope.original_content or b""
        try:
            reply = await self._workers.run(self._store, raw)
        except Exception:
            # aiosmtpd would answer an exception with a 500, once: a 451 per recipient instead.
            log.exception("LMTP delivery deferred: storing the mail failed")
            reply = TEMPFAIL_REPLY
        log.info(
            "LMTP delivery from %s for %d recipient(s), %d bytes: %s",
            session.peer,
            len(envelope.rcpt_tos),
            len(raw),
            reply,
        )
        return reply


class LmtpSession(LMTP):
    """One connection. LMTP replies to the data once per recipient: this
    repeats every reply given after ``354`` (ours, and aiosmtpd's ``552``)
    for each recipient. While the listener stops, a session between mails
    gets ``421`` and is closed."""

    def __init__(self, handler: LmtpHandler, *, listener: LmtpListener, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._listener = listener
        self._recipients = 0
        self._replies_per_answer = 0
        self._in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._listener.session_opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._listener.session_closed(self)
        super().connection_lost(error)

    @property
    def between_mails(self) -> bool:
        return not self._in_data

    def close_for_shutdown(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(SHUTDOWN_REPLY.encode() + b"\r\n")
            self.transport.close()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 (aiosmtpd command name)
        if self._listener.stopping:
            self.close_for_shutdown()
            return
        await super().smtp_MAIL(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 (aiosmtpd command name)
        self._in_data = True
        self._replies_per_answer = 0
        # Counted now: the envelope is reset before the replies are sent.
        self._recipients = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False
            self._replies_per_answer = 0
            self._listener.session_between_mails()
        if self._listener.stopping:
            self.close_for_shutdown()

    async def push(self, status: Any) -> None:
        if self._in_data and self._replies_per_answer == 0:
            text = status.decode() if isinstance(status, bytes) else str(status)
            if text.startswith("354"):
                # From here on, every reply answers the data: one per recipient.
                self._replies_per_answer = max(self._recipients, 1)
                await super().push(status)
                return
        if self._replies_per_answer > 1:
            line = (
                status
                if isinstance(status, bytes)
                else str(status).encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
            )
            await super().push(b"\r\n".join([line] * self._replies_per_answer))
            return
        await super().push(status)


class BrokerCheck:
    """``broker_ok``, trusted for ``BROKER_TRUSTED_SECONDS`` after the broker
    answered: one connection to it a second at most, not one per mail. While
    it does not answer, every mail checks again."""

    def __init__(self) -> None:
        self._trusted_until = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self._trusted_until:
            return True
        answered = broker_ok()
        if answered:
            self._trusted_until = now + BROKER_TRUSTED_SECONDS
        return answered


def listening_socket(*, host: str = "127.0.0.1", port: int = 8024, socket_path: str | None = None) -> socket.socket:
    """The bound, listening socket: TCP on ``host``:``port``, or a Unix socket at ``socket_path``
    (a socket file left there by a listener that did not stop cleanly is replaced)."""
    if socket_path:
        _stale_socket_remove(socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(socket_path)
    else:
        sock = socket.create_server((host, port), reuse_port=False)
    sock.listen(LISTEN_BACKLOG)
    return sock


class LmtpListener:
    """The listener on ``sock`` (``listening_socket``); one per process."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        workers: int = 1,
        hostname: str | None = None,
        max_bytes: int | None = None,
        grace: float = 30.0,
        store: Callable[[bytes], str] | None = None,
    ) -> None:
        self.sock = sock
        self.address = socket_address(sock)
        self.workers_count = workers
        self.hostname = hostname or socket.getfqdn()
        self.max_bytes = max_bytes if max_bytes is not None else inbound_max_bytes()
        self.grace = grace
        self.stopping = False
        self._store = store or functools.partial(delivery_store, broker_check=BrokerCheck())
        self._sessions: set[LmtpSession] = set()
        self._server: asyncio.AbstractServer | None = None
        self._workers: DatabaseWorkers | None = None
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = DatabaseWorkers(self.workers_count)
        self._idle = asyncio.Event()
        handler = LmtpHandler(self._workers, self._store)

        def session() -> LmtpSession:
            return LmtpSession(
                handler,
                listener=self,
                data_size_limit=self.max_bytes,
                enable_SMTPUTF8=True,
                hostname=self.hostname,
                ident="Service desk LMTP",
                loop=loop,
            )

        if self.sock.family == socket.AF_UNIX:
            self._server = await loop.create_unix_server(session, sock=self.sock)
        else:
            self._server = await loop.create_server(session, sock=self.sock)
        log.info(
            "LMTP listener on %s (%d database worker(s), largest mail %d bytes)",
            self.address,
            self.workers_count,
            self.max_bytes,
        )

    def session_opened(self, session: LmtpSession) -> None:
        self._sessions.add(session)

    def session_closed(self, session: LmtpSession) -> None:
        self._sessions.discard(session)
        self.session_between_mails()

    def session_between_mails(self) -> None:
        """Called when a session is done with a mail: the end of a graceful stop may be here."""
        if self.stopping and self._idle is not None and all(s.between_mails for s in self._sessions):
            self._idle.set()

    async def stop(self) -> None:
        """Stop gracefully: see the module's docstring. The socket is closed; a
        Unix socket's file is left to whoever made it (``lmtp_serve``)."""
        if self._server is None or self.stopping:
            return
        self.stopping = True
        assert self._idle is not None and self._workers is not None
        self._server.close()
        for session in list(self._sessions):
            if session.between_mails:
                session.close_for_shutdown()
        self.session_between_mails()
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=self.grace)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await asyncio.sleep(0)  # let the closed sessions end
        await asyncio.to_thread(self._workers.stop)
        log.info("LMTP listener on %s stopped", self.address)


async def _serve_until_signal(listener: LmtpListener, announce: Callable[[str], None] | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await listener.start()
    if announce:
        announce(f"LMTP listener on {listener.address}; SIGTERM stops it.")
    await stop.wait()
    if announce:
        announce("Stopping: finishing the mails in progress.")
    await listener.stop()


def lmtp_serve(
    sock: socket.socket,
    *,
    processes: int = 1,
    workers: int = 1,
    grace: float = 30.0,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve on ``sock`` until SIGTERM or SIGINT; the exit status.

    With ``processes`` above 1, that many processes (forked, each with its own
    loop, ``workers`` threads and database connections) accept on the one
    socket, so storing mail uses more than one CPU; this process forwards the
    stop to them and waits. Should one end by itself, the others are stopped
    and the status is 1, for the service manager to start it all again.
    """
    path = sock.getsockname() if sock.family == socket.AF_UNIX else None
    try:
        if processes <= 1:
            asyncio.run(_serve_until_signal(LmtpListener(sock, workers=workers, grace=grace), announce))
            status = 0
        else:
            status = _processes_serve(sock, processes=processes, workers=workers, grace=grace, announce=announce)
    finally:
        sock.close()
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if announce and status == 0:
        announce("Stopped.")
    return status


def _processes_serve(
    sock: socket.socket, *, processes: int, workers: int, grace: float, announce: Callable[[str], None] | None
) -> int:
    # Nothing may be shared across the fork but the socket: no database
    # connection is open here yet, and no thread has started.
    connections.close_all()
    children: set[int] = set()
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping and announce:
            announce("Stopping: finishing the mails in progress.")
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Held until each process has its own handlers: a stop arriving meanwhile waits, and is not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    for _n in range(processes):
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's exit handlers
            for signum in stop_signals:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            status = 1
            try:
                asyncio.run(_serve_until_signal(LmtpListener(sock, workers=workers, grace=grace), None))
                status = 0
            except BaseException:
                log.exception("LMTP listener process %d failed", os.getpid())
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children.add(pid)
    previous = {signum: signal.signal(signum, forward) for signum in stop_signals}
    if announce:
        announce(f"LMTP listener on {socket_address(sock)} ({processes} processes); SIGTERM stops it.")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    status = 0
    try:
        while children:
            pid, wait_status = os.waitpid(-1, 0)
            children.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)  # negative: the signal that ended it
            if not stopping:
                log.error("LMTP listener process %d ended by itself (exit status %d): stopping the others", pid, code)
                forward(signal.SIGTERM, None)
                status = 1
            elif code != 0:
                status = 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def socket_address(sock: socket.socket) -> str:
    """Where ``sock`` listens, as a mail server's transport names it (``inet:127.0.0.1:8024``, ``unix:/path``)."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"inet:{host}:{port}"


def _stale_socket_remove(path: str) -> None:
    """A socket file left by a listener that did not stop cleanly; anything else is left alone."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(mode):
        os.unlink(path)
