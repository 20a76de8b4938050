"""Fixtures for end-to-end tests through the real services.

- ``real_services``: PostgreSQL and Redis must be there; the tests fail (never
  skip) without them. ``./scripts/test`` provides both.
- ``smtp_server``: an aiosmtpd server on a free local port that keeps every
  mail it receives.
- ``celery_worker``: a real ``celery worker`` process, configured like the
  product (``servicedesk.settings.local``) but pointed at the test database,
  a Redis database of its own, a queue of its own and ``smtp_server``.
- ``celery_live``: this process enqueues to that worker instead of running
  tasks eagerly (as the test settings otherwise do).
"""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_REDIS_DB = 15


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Real services -------------------------------------------------------------


@pytest.fixture(scope="session")
def real_services() -> str:
    """PostgreSQL is the database and Redis answers; returns REDIS_URL."""
    import redis
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.fail(
            f"End-to-end tests need PostgreSQL, the database here is {engine}. "
            "Run ./scripts/test or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/servicedesk."
        )
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        pytest.fail("End-to-end tests need Redis: run ./scripts/test or set REDIS_URL=redis://127.0.0.1:6379/0.")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis does not answer at REDIS_URL={redis_url}: {exc}")
    return redis_url


@pytest.fixture(autouse=True)
def _real_services_required(real_services: str) -> None:
    """Every test in this folder runs against the real services."""


@pytest.fixture(scope="session")
def e2e_redis_url(real_services: str) -> str:
    """The same Redis server, a database of its own for the worker's broker and cache."""
    parts = urlsplit(real_services)
    return urlunsplit((parts.scheme, parts.netloc, f"/{E2E_REDIS_DB}", parts.query, parts.fragment))


# --- SMTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    connection: int = 0  # which connection it came on: 0 for the server's first, 1 for the next ...


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, and on which connection."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = _free_port()
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._connections: list[Any] = []
        keeper = self

        class CountingController(Controller):
            def factory(self) -> Any:
                protocol = super().factory()
                with keeper._lock:
                    keeper._connections.append(protocol)
                return protocol

        self._controller = CountingController(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook name)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(raw, policy=policy.default)
        with self._lock:
            connection = next(n for n, protocol in enumerate(self._connections) if protocol is server)
            self._mails.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, raw, connection))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()
        with self._lock:
            self._connections.clear()  # the one aiosmtpd opened to itself while starting

    @property
    def connections(self) -> int:
        """Connections the server was given since it started."""
        with self._lock:
            return len(self._connections)

    def stop(self) -> None:
        self._controller.stop()

    @property
    def mails(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._mails)

    def mails_for(self, reference: str) -> list[ReceivedMail]:
        """Mails about one ticket (our outbound mail names it in X-ServiceDesk-Ticket)."""
        return [mail for mail in self.mails if mail.message["X-ServiceDesk-Ticket"] == reference]

    def wait_for_ticket(self, reference: str, *, timeout: float = 60) -> ReceivedMail:
        found = wait_until(lambda: self.mails_for(reference), timeout=timeout, what=f"a mail about {reference}")
        return found[0]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


# --- Celery worker ----------------------------------------------------------------


class WorkerProcess:
    """A ``celery worker`` subprocess and its log."""

    def __init__(self, *, env: dict[str, str], queue: str, log_path: Path) -> None:
        self.queue = queue
        self.log_path = log_path
        self.name = f"{queue}@%h"
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "servicedesk",
                "worker",
                "--pool",
                "solo",
                "-l",
                "info",
                "-Q",
                queue,
                "-n",
                self.name,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 30) -> str:
        """The first log line containing ``text``; fails if the worker dies first."""

        def line() -> str | None:
            if self.process.poll() is not None:
                pytest.fail(f"The Celery worker exited ({self.process.returncode}):\n{self.log[-4000:]}")
            return next((ln for ln in self.log.splitlines() if text in ln), None)

        return wait_until(line, timeout=timeout, what=f"{text!r} in the worker log:\n{self.log[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the task at hand
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database this test session uses (test_<name>)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, smtp_server: SmtpServer, e2e_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A real worker on its own queue, sending mail to ``smtp_server``.

    The queue name is new for every run, so tasks left over from an earlier or
    concurrent run never reach this worker.
    """
    import redis
    from django.conf import settings
    from django.db import connection

    folder = tmp_path_factory.mktemp("celery-worker")
    queue = f"e2e-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "REDIS_URL": e2e_redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": "false",
        "EMAIL_TIMEOUT": "10",
        "SITE_URL": settings.SITE_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "SERVICEDESK_VAR_DIR": str(folder / "var"),
        "MEDIA_ROOT": str(folder / "media"),
        "PYTHONUNBUFFERED": "1",
        # What the worker's tasks enqueue (a webhook's attempts after its dispatch) comes back to it.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    worker = WorkerProcess(env=env, queue=queue, log_path=folder / "worker.log")
    try:
        worker.wait_for_log(" ready.", timeout=60)
        yield worker
    finally:
        worker.stop()
        client = redis.Redis.from_url(e2e_redis_url)
        leftovers = list(client.scan_iter(match=f"*{queue}*"))
        if leftovers:
            client.delete(*leftovers)


def _reset_broker_connections(app: Any) -> None:
    """Close the broker connections and forget the routing cached for the previous configuration."""
    from kombu import pools

    app._pool = None
    app.__dict__.pop("amqp", None)
    pools.reset()


@pytest.fixture
def celery_live(settings: Any, celery_worker: WorkerProcess, e2e_redis_url: str) -> Iterator[WorkerProcess]:
    """Tasks enqueued by this process go through Redis to ``celery_worker``.

    The Celery app read its configuration when it was first used, so changing
    Django settings is not enough: the app's own configuration is switched and
    its connections reset, and both are put back afterwards.
    """
    from servicedesk.celery import app

    keys = ("task_always_eager", "broker_url", "broker_transport_options", "task_default_queue")
    saved = {key: app.conf.get(key) for key in keys}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = e2e_redis_url
    app.conf["task_always_eager"] = False
    app.conf["broker_url"] = e2e_redis_url
    app.conf["broker_transport_options"] = {}
    app.conf["task_default_queue"] = celery_worker.queue
    _reset_broker_connections(app)
    try:
        yield celery_worker
    finally:
        for key, value in saved.items():
            app.conf[key] = value
        _reset_broker_connections(app)
