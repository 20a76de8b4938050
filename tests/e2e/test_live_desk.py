"""Live updates across real processes: two web servers, a Celery worker, Redis, and the server-less layer.

A change made through one server, or by the worker, reaches an agent's
WebSocket on the other server; a server killed mid-stream loses nothing, as
the client catches up from the database on another one. Without Redis the
SQLite layer carries a change made by another process the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.sync.client import ClientConnection, connect

from channels_app.email.models import InboundEmail
from channels_app.email.services import email_ingest
from servicedesk.tickets.models import Message, Queue, Ticket, TicketEvent
from tests.e2e.conftest import REPO_ROOT, _database_url, _free_port, wait_until
from tests.factories import AgentFactory, QueueFactory

pytestmark = pytest.mark.django_db(transaction=True)


def desk_env(tmp_path: Path, *, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a desk process on the test database: Redis when given, else the server-less layer."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "SERVICEDESK_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": _database_url(connection.settings_dict),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def serve(
    tmp_path: Path, name: str, *, redis_url: str | None, port: int | None = None, **extra: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """A desk web server in a process of its own (on ``port``, e.g. to start one again, else a free one)."""
    port = port or _free_port()
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    env = desk_env(tmp_path, redis_url=redis_url, **extra)
    log = folder / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "servicedesk.serve", "--port", str(port), "--no-access-log"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        if server.poll() is not None:
            pytest.fail(f"The server exited:\n{log.read_text()[-3000:]}")
        try:
            import urllib.request

            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
        except OSError:
            return False
        return True

    wait_until(up, timeout=60, what=f"web server {name}")
    return server, port, log


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=20)


def desk_socket(port: int, user: Any) -> ClientConnection:
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    # Closed by the test (ws.close()), also when it fails: the server is stopped after it.
    return connect(
        f"ws://127.0.0.1:{port}/ws/desk/",
        additional_headers={"Cookie": cookie},
        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        open_timeout=20,
        legacy=True,
    )


def frames_until(ws: ClientConnection, wanted: Any, *, timeout: float = 30) -> list[dict[str, Any]]:
    """Frames received until one for which ``wanted(frame)`` is true (that one last)."""
    import time

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"No such frame within {timeout} s; got {seen}")
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        seen.append(frame)
        if wanted(frame):
            return seen


def names(ticket_id: int) -> Any:
    return lambda frame: frame.get("type") == "changed" and ticket_id in {t["id"] for t in frame["tickets"]}


def mail(n: str) -> bytes:
    return (
        f"From: Vera Holm <vera-{n[:8]}@example.com>\r\nTo: support@servicedesk.example\r\nSubject: Live {n}\r\n"
        f"Message-ID: <{n}@example.com>\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer is on fire.\r\n"
    ).encode()


@pytest.fixture
def two_servers(tmp_path: Path, e2e_redis_url: str) -> Iterator[list[tuple[subprocess.Popen[bytes], int, Path]]]:
    servers = [serve(tmp_path, name, redis_url=e2e_redis_url) for name in ("a", "b")]
    try:
        yield servers
    finally:
        for server, _, _ in servers:
            stop(server)


def test_changes_from_the_other_server_and_from_the_worker_reach_the_agent_and_survive_a_killed_server(
    two_servers, celery_live, smtp_server
):
    (server_a, port_a, _), (_, port_b, _) = two_servers
    QueueFactory(slug="support", name="Support")  # the intake's default queue
    agent = AgentFactory(username="ann", queues=list(Queue.objects.all()))
    token = Token.objects.create(user=agent).key

    ws = desk_socket(port_a, agent)
    hello = json.loads(ws.recv(timeout=20))
    assert hello["type"] == "hello"

    # 1. A mail stored here: its acknowledgement is delivered by the real worker,
    # whose delivery event is pushed through Redis to server A.
    result = email_ingest(raw=mail(uuid.uuid4().hex), source=InboundEmail.Source.PIPE)
    ticket = Ticket.objects.get(reference=result.reference)
    smtp_server.wait_for_ticket(ticket.reference)
    frames = frames_until(ws, names(ticket.pk))
    delivery = TicketEvent.objects.get(ticket=ticket, kind=TicketEvent.Kind.DELIVERY)
    assert frames[-1]["cursor"] >= delivery.pk
    assert Message.objects.get(ticket=ticket, purpose=Message.Purpose.ACKNOWLEDGEMENT).delivery_status == "sent"

    # 2. A change made through server B reaches the agent on server A.
    import http.client

    def patch(port: int, body: dict[str, str]) -> int:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        client.request(
            "PATCH",
            f"/api/v1/tickets/{ticket.reference}/",
            body=json.dumps(body),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        status = client.getresponse().status
        client.close()
        return status

    assert patch(port_b, {"priority": "high"}) == 200
    frames = frames_until(ws, names(ticket.pk))
    cursor = frames[-1]["cursor"]
    assert cursor == TicketEvent.objects.filter(ticket=ticket).latest("pk").pk

    # 3. Server A dies; a change is made meanwhile; the agent reconnects to B and catches up.
    server_a.send_signal(signal.SIGKILL)
    server_a.wait(timeout=10)
    assert patch(port_b, {"priority": "urgent"}) == 200
    latest = TicketEvent.objects.filter(ticket=ticket).latest("pk").pk
    ws.close()
    ws = desk_socket(port_b, agent)
    assert json.loads(ws.recv(timeout=20))["type"] == "hello"
    ws.send(json.dumps({"type": "resume", "after": cursor}))
    caught_up = frames_until(ws, lambda frame: frame.get("type") == "changed")[-1]
    assert caught_up["tickets"] == [{"id": ticket.pk, "reference": ticket.reference, "event": latest}]
    assert caught_up["more"] is False
    ws.close()


def serve_without_redis(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    """A desk process on the zero-setup layer (a SQLite file, its tables made first), and its environment
    for the other processes that are to share the layer."""
    env = desk_env(tmp_path, redis_url=None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "channel_layer", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    server, port, _ = serve(tmp_path, "a", redis_url=None)
    return server, port, env


def test_without_redis_a_change_made_by_another_process_reaches_the_agent(tmp_path):
    """The zero-setup layer (a SQLite file) joins the web server and any other process of the desk."""
    server, port, env = serve_without_redis(tmp_path)
    try:
        queue = QueueFactory(slug="support", name="Support")
        agent = AgentFactory(username="ann", queues=[queue])
        from tests.factories import CustomerFactory, ticket_make

        ticket = ticket_make(queue=queue, customer=CustomerFactory())
        ws = desk_socket(port, agent)
        assert json.loads(ws.recv(timeout=20))["type"] == "hello"
        # Another process of the desk (as the worker or beat would) changes the ticket.
        change = (
            "from servicedesk.tickets.models import Ticket;"
            "from servicedesk.tickets.events import Actor;"
            "from servicedesk.tickets.services.tickets import ticket_priority_change;"
            f"ticket_priority_change(ticket=Ticket.objects.get(pk={ticket.pk}), priority='high',"
            " actor=Actor.system(source='test'))"
        )
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", change], cwd=REPO_ROOT, env=env, check=True, timeout=120
        )
        frames = frames_until(ws, names(ticket.pk))
        assert frames[-1]["cursor"] == TicketEvent.objects.filter(ticket=ticket).latest("pk").pk
        ws.close()
    finally:
        stop(server)


def test_a_notice_stored_by_the_worker_rings_the_agents_bell_on_the_server(tmp_path, e2e_redis_url, celery_live):
    """The bell's push (``notifications.changed``) goes from the Celery worker through Redis to the
    web server, whose consumer reads the count from the database."""
    from servicedesk.notifications.models import Notification
    from servicedesk.notifications.tasks import customer_message_notify_task
    from servicedesk.tickets.services.replies import ticket_note_create
    from tests.factories import CustomerFactory, ticket_make

    server, port, _ = serve(tmp_path, "a", redis_url=e2e_redis_url)
    try:
        queue = QueueFactory(slug="support", name="Support")
        ann = AgentFactory(username="ann", queues=[queue])
        ticket = ticket_make(queue=queue, customer=CustomerFactory(), assignee=ann)
        message = ticket_note_create(ticket=ticket, author=None, text="The printer is on fire again.")
        ws = desk_socket(port, ann)
        assert json.loads(ws.recv(timeout=20))["type"] == "hello"

        customer_message_notify_task.delay(message.pk)
        frames = frames_until(ws, lambda frame: frame.get("type") == "bell")
        assert frames[-1] == {"type": "bell", "unread": 1}
        assert Notification.objects.get(user=ann).key == f"message:{message.pk}"
        ws.close()
    finally:
        stop(server)
