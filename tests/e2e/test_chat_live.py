"""Live chat across real processes: two web servers sharing Redis, a server killed mid-chat, the offline path.

A visitor on one server and an agent on the other talk through the Redis
layer; a server killed mid-chat loses nothing, since the visitor resumes from
the database on the other one with every message exactly once; with nobody
online the chat becomes an offline ticket, acknowledged by the real worker
over real SMTP.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import uuid
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from websockets.sync.client import ClientConnection, connect

from channels_app.chat.models import ChatConversation, ChatLine, ChatStatus
from servicedesk.tickets.models import Message
from tests.channels_app.chat.helpers import SHOP, chat_agent, widget_make
from tests.e2e.test_live_desk import desk_socket, frames_until, serve, stop, two_servers  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def call(port: int, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> tuple[int, Any]:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    client.request(method, path, body=json.dumps(body or {}), headers={"Content-Type": "application/json", **headers})
    response = client.getresponse()
    raw = response.read()
    client.close()
    return response.status, (json.loads(raw) if raw else None)


def visitor_socket(port: int, token: str) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{port}/ws/chat/?token={token}",
        origin=SHOP,  # type: ignore[arg-type]
        open_timeout=20,
    )


def lines_until(ws: ClientConnection, wanted: Any, *, timeout: float = 30) -> list[dict[str, Any]]:
    return frames_until(ws, wanted, timeout=timeout)


def test_visitor_on_one_server_agent_on_the_other_and_a_server_killed_mid_chat(two_servers):  # noqa: F811
    (server_a, port_a, _), (_, port_b, _) = two_servers
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    token = Token.objects.create(user=agent).key
    auth = {"Authorization": f"Token {token}"}

    agent_ws = desk_socket(port_b, agent)
    assert json.loads(agent_ws.recv(timeout=20))["type"] == "hello"

    # The visitor starts on server A; the offer reaches the agent on server B through Redis.
    status, started = call(
        port_a,
        "POST",
        "/api/v1/chat/conversations/",
        {"name": "Vera", "email": "vera@example.com", "text": "Hello from A", "client_id": str(uuid.uuid4())},
        Origin=SHOP,
    )
    assert status == 201 and started["status"] == "waiting", started
    pk = started["id"]
    offer = frames_until(agent_ws, lambda f: f.get("type") == "chat" and f.get("event") == "offer")[-1]
    assert offer["conversation"] == pk

    visitor = visitor_socket(port_a, started["visitor_token"])
    assert json.loads(visitor.recv(timeout=20))["status"] == "waiting"
    visitor.send(json.dumps({"type": "resume", "after": 0}))
    assert json.loads(visitor.recv(timeout=20))["seq"] == 1

    assert call(port_b, "POST", f"/api/v1/chat/conversations/{pk}/accept/", **auth)[0] == 200
    frames = lines_until(visitor, lambda f: f.get("type") == "status" and f["status"] == "active")
    assert frames[-1]["agent"] == "Ann"
    assert (
        call(port_b, "POST", f"/api/v1/chat/conversations/{pk}/messages/", {"text": "Hi, Ann here"}, **auth)[0] == 201
    )
    reply = lines_until(visitor, lambda f: f.get("author") == "agent")[-1]
    assert reply["text"] == "Hi, Ann here"
    seen = reply["seq"]

    # The visitor's message on A reaches the agent's socket on B.
    first_id = str(uuid.uuid4())
    visitor.send(json.dumps({"type": "message", "client_id": first_id, "text": "My order 1234"}))
    echo = lines_until(visitor, lambda f: f.get("client_id") == first_id)[-1]
    seen = echo["seq"]
    changed = frames_until(agent_ws, lambda f: f.get("type") == "chat" and f.get("event") == "changed")[-1]
    assert changed["conversation"] == pk

    # Server A dies with a message of the visitor's in flight and the agent writing on B.
    in_flight = str(uuid.uuid4())
    visitor.send(json.dumps({"type": "message", "client_id": in_flight, "text": "Are you still there?"}))
    server_a.send_signal(signal.SIGKILL)
    server_a.wait(timeout=10)
    for text in ("Yes, still here", "Your refund is on its way"):
        assert call(port_b, "POST", f"/api/v1/chat/conversations/{pk}/messages/", {"text": text}, **auth)[0] == 201
    visitor.close()

    # The visitor reconnects to B, resumes after the last line it saw, and resends what it had no echo for.
    visitor = visitor_socket(port_b, started["visitor_token"])
    assert json.loads(visitor.recv(timeout=20))["type"] == "status"
    visitor.send(json.dumps({"type": "resume", "after": seen}))
    visitor.send(json.dumps({"type": "message", "client_id": in_flight, "text": "Are you still there?"}))
    received: dict[int, dict[str, Any]] = {}
    stored = ChatConversation.objects.get(pk=pk)

    def all_in() -> bool:
        texts = {f["text"] for f in received.values()}
        return {"Are you still there?", "Yes, still here", "Your refund is on its way"} <= texts

    import time

    deadline = time.monotonic() + 30
    while not all_in() and time.monotonic() < deadline:
        try:
            frame = json.loads(visitor.recv(timeout=2))
        except TimeoutError:
            continue
        if frame.get("type") == "message":
            assert frame["seq"] > seen
            received.setdefault(frame["seq"], frame)
    # Nothing more comes: no line twice.
    with pytest.raises(TimeoutError):
        while True:
            frame = json.loads(visitor.recv(timeout=1))
            assert frame.get("type") != "message" or frame["seq"] not in received, frame
    visitor.close()
    agent_ws.close()

    stored.refresh_from_db()
    texts = [f["text"] for _, f in sorted(received.items())]
    assert texts.count("Are you still there?") == 1
    assert "Yes, still here" in texts and "Your refund is on its way" in texts
    lines = list(ChatLine.objects.filter(conversation_id=pk).order_by("seq"))
    assert [line.seq for line in lines] == list(range(1, stored.last_seq + 1))
    assert len({line.client_id for line in lines if line.client_id}) == len([li for li in lines if li.client_id])
    assert Message.objects.filter(ticket=stored.ticket, text="Are you still there?").count() == 1
    # The visitor's token, in the socket's query string, is in no server's log.
    logs = "".join(log.read_text(errors="replace") for _, _, log in two_servers)
    assert "token=[hidden]" in logs
    assert started["visitor_token"] not in logs


def test_with_nobody_online_the_chat_is_an_offline_ticket_acknowledged_over_smtp(celery_live, smtp_server):
    widget = widget_make()
    client = APIClient()
    response = client.post(
        "/api/v1/chat/conversations/",
        {
            "name": "Olga",
            "email": "olga@example.com",
            "text": "Are you open on Sunday?",
            "client_id": str(uuid.uuid4()),
        },
        format="json",
        HTTP_ORIGIN=SHOP,
    )
    assert response.status_code == 201 and response.json()["status"] == ChatStatus.OFFLINE
    reference = response.json()["ticket"]
    mail = smtp_server.wait_for_ticket(reference)
    assert mail.rcpt_tos == ["olga@example.com"]
    assert reference in str(mail.message["Subject"])
    conversation = ChatConversation.objects.get(pk=response.json()["id"])
    assert conversation.session_id is None and conversation.ticket.channel == "chat"
    assert widget.queue_id == conversation.queue_id


def test_without_redis_an_offer_made_by_the_beat_reaches_the_agent(tmp_path):
    """The zero-setup layer: the tick (run by the beat, here another process) offers a chat to an agent
    whose desk socket is on the web server."""
    import sys

    from tests.e2e.conftest import REPO_ROOT
    from tests.e2e.test_live_desk import serve_without_redis

    server, port, env = serve_without_redis(tmp_path)
    try:
        widget = widget_make()
        agent = chat_agent(widget.queue, username="ann")
        agent_ws = desk_socket(port, agent)
        assert json.loads(agent_ws.recv(timeout=20))["type"] == "hello"
        from tests.channels_app.chat.helpers import start

        # Started here (this test process has no layer of the server's): nobody is told yet.
        conversation = start(widget).conversation
        ChatConversation.objects.filter(pk=conversation.pk).update(offered_to=None, offer_expires_at=None)
        tick = "from channels_app.chat.routing import chat_tick; print(chat_tick())"
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", tick],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        )
        assert "'offered': 1" in done.stdout, done.stdout + done.stderr
        offer = frames_until(agent_ws, lambda f: f.get("type") == "chat" and f.get("event") == "offer")[-1]
        assert offer["conversation"] == conversation.pk
        agent_ws.close()
    finally:
        stop(server)


def test_a_server_stopped_with_chats_open_and_closing_exits_at_once(tmp_path, e2e_redis_url):
    # Each socket's consumer waits on the Redis layer; a stopping server cancels those waits and
    # exits, whether the sockets are still open or closing (the teardown of the test above also
    # stops a server that held a resumed chat).
    import time

    from tests.channels_app.chat.helpers import start

    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann", capacity=20)
    for attempt in range(2):
        tokens = [start(widget, email=f"v{attempt}{n}@example.com").token for n in range(12)]
        server, port, log = serve(tmp_path, f"stop{attempt}", redis_url=e2e_redis_url)
        sockets: list[ClientConnection] = []
        try:
            desk = desk_socket(port, agent)
            sockets.append(desk)
            assert json.loads(desk.recv(timeout=20))["type"] == "hello"
            for n, token in enumerate(tokens):
                ws = visitor_socket(port, token)
                sockets.append(ws)
                assert json.loads(ws.recv(timeout=20))["type"] == "status"
                ws.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": f"Line {n}"}))
            for ws in sockets[1::2]:
                ws.close()
            server.send_signal(signal.SIGTERM)
            started_at = time.monotonic()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"The server did not exit within 10 s of SIGTERM:\n{log.read_text()[-2000:]}")
            assert time.monotonic() - started_at < 10
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            for ws in sockets:
                ws.close()
