"""A real SMTP server (aiosmtpd) on loopback that counts the connections it is given.

Each connection is one protocol instance made by the controller's factory; the
one aiosmtpd opens to itself while starting is not counted. The server keeps
every mail with the number of the connection it came on, counts NOOP and
QUIT, answers DATA with scripted replies when told to, can drop a connection
as soon as a mail's data is in (the client never hears whether it was taken),
and can close every open connection on request, as a server's idle timeout or
restart does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DROP = "drop"  # a scripted DATA reply: close the connection instead of answering


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    connection: int  # 0 for the first connection the server was given, 1 for the next ...
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    raw: bytes


class _CountedSmtp(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = threading.Event()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.closed.set()


class _Controller(Controller):
    def __init__(self, server: CountingSmtp, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.counter = server

    def factory(self) -> SMTP:
        protocol = _CountedSmtp(self.handler, **self.SMTP_kwargs)
        with self.counter.lock:
            self.counter.protocols.append(protocol)
        return protocol


class CountingSmtp:
    """The handler and its controller; ``start`` and ``stop`` it, or use the ``counting_smtp`` fixture."""

    def __init__(self, *, port: int | None = None, smtputf8: bool = False) -> None:
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.protocols: list[_CountedSmtp] = []
        self.received: list[Received] = []
        self.data_replies: list[str] = []  # answers to the next DATA commands ("" accepts), then 250
        self.rcpt_refused: set[str] = set()
        self.data_commands = 0
        self.noops = 0
        self.quits = 0
        self.running = False
        self.controller = _Controller(self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8)

    def start(self) -> CountingSmtp:
        self.controller.start()
        self.running = True
        with self.lock:
            self.protocols.clear()  # the connection aiosmtpd opened to itself while starting
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def connections(self) -> int:
        with self.lock:
            return len(self.protocols)

    def open_connections(self) -> int:
        with self.lock:
            return sum(1 for protocol in self.protocols if not protocol.closed.is_set())

    def close_connections(self) -> None:
        """Close every open connection from the server's side and wait until each is closed."""

        async def close() -> None:
            for protocol in self.protocols:
                if protocol.transport is not None:
                    protocol.transport.close()

        with self.lock:
            protocols = list(self.protocols)
        asyncio.run_coroutine_threadsafe(close(), self.controller.loop).result(timeout=5)
        for protocol in protocols:
            assert protocol.closed.wait(timeout=5), "the server did not close a connection"

    def _connection_of(self, server: Any) -> int:
        return next(n for n, protocol in enumerate(self.protocols) if protocol is server)

    # aiosmtpd hooks ---------------------------------------------------------------

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:  # noqa: N802
        with self.lock:
            self.noops += 1
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.quits += 1
        return "221 Bye"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:  # noqa: N802
        if address in self.rcpt_refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.data_commands += 1
            reply = self.data_replies.pop(0) if self.data_replies else ""
            if not reply:
                raw = envelope.original_content or envelope.content
                self.received.append(
                    Received(
                        self._connection_of(server),
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        list(envelope.mail_options),
                        raw if isinstance(raw, bytes) else raw.encode(),
                    )
                )
        if reply == DROP:
            server.transport.close()  # the data is in; the answer never leaves
            return "250 never heard"
        return reply or "250 Message accepted for delivery"


@pytest.fixture
def counting_smtp(settings: Any) -> Iterator[Any]:
    """``start(smtputf8=False, port=None)``: a counting server, with the settings pointing at it.

    The process's pooled SMTP connections are closed before and after, so a
    test counts only the connections it made.
    """
    from channels_app.email.smtp import connections_close

    started: list[CountingSmtp] = []

    def start(*, smtputf8: bool = False, port: int | None = None) -> CountingSmtp:
        server = CountingSmtp(port=port, smtputf8=smtputf8).start()
        started.append(server)
        settings.EMAIL_BACKEND = "channels_app.email.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 5
        return server

    connections_close()
    yield start
    connections_close()
    for server in started:
        server.stop()
