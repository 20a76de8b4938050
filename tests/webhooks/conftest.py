"""A real HTTP receiver on 127.0.0.1, endpoints pointing at it, and the end-to-end fixtures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from servicedesk.webhooks.services import webhook_endpoint_create
from tests.api.conftest import customer_api, customer_user  # noqa: F401 (a customer's sign-in and API client)
from tests.e2e.conftest import (  # noqa: F401 (fixtures of the end-to-end test)
    celery_live,
    celery_worker,
    e2e_redis_url,
    real_services,
    smtp_server,
)
from tests.factories import AgentFactory

SECRET_HEADER = "Servicedesk-Signature"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the server got, and what it answers next: a list of (status, headers, body), then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.answers.extend([(status, headers or {}, body)] * times)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status, headers, answer = receiver.answers.pop(0) if receiver.answers else (200, {}, b"ok")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _serve() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    yield from _serve()


@pytest.fixture
def admin(db):  # type: ignore[no-untyped-def]
    return AgentFactory(username="ada", role="admin")


@pytest.fixture
def endpoint_for(admin):  # type: ignore[no-untyped-def]
    """``endpoint_for(url, types, private=True)``: an endpoint an admin added, with its secret."""

    def make(url: str, types: list[str] | None = None, *, private: bool = True):  # type: ignore[no-untyped-def]
        return webhook_endpoint_create(
            actor=admin,
            url=url,
            event_types=types or ["ticket.created", "ticket.updated", "ticket.solved", "message.created"],
            allow_private_addresses=private,
        )

    return make
