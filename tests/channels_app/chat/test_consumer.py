"""``/ws/chat/`` through the whole ASGI application: token, Origin, frames, resume, flood and bad input."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from channels_app.chat import services
from channels_app.chat.consumers import CLOSE_FLOOD, CLOSE_ORIGIN, CLOSE_UNKNOWN_TOKEN
from channels_app.chat.models import ChatLine
from servicedesk.asgi import application
from servicedesk.core.loop_db import loop_db_close

from .helpers import SHOP, chat_agent, start, widget_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


@pytest.fixture(autouse=True, params=["loop", "thread"])
def lines_stored(request, settings) -> str:
    """Every test twice: visitors' lines stored from the event loop (the product's way with
    PostgreSQL, loop_line.py) and by the service on a thread (the other databases')."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "CHAT_LOOP_LINES": request.param == "loop"}
    return str(request.param)


def visitor(token: str, origin: str | None = SHOP) -> WebsocketCommunicator:
    headers = [(b"host", b"desk.example")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/ws/chat/?token={token}", headers=headers)


async def frames_until(ws: WebsocketCommunicator, predicate: Any, limit: int = 20) -> list[dict[str, Any]]:
    seen = []
    for _ in range(limit):
        frame = await ws.receive_json_from(timeout=5)
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"no matching frame in {seen}")


def run(scenario: Any) -> None:
    async def closing() -> None:
        try:
            await scenario()
        finally:
            # The loop's connections, before the loop ends (core/loop_db.py).
            await loop_db_close()

    async_to_sync(closing)()


@pytest.fixture
def chat() -> Any:
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    started = start(widget)
    return started, agent


def test_unknown_token_and_foreign_origin_are_refused_and_logged(chat, caplog):
    started, _agent = chat

    async def scenario() -> None:
        ws = visitor("not-a-token")
        connected, code = await ws.connect()
        assert not connected and code == CLOSE_UNKNOWN_TOKEN
        ws = visitor(started.token, origin="http://evil.example")
        connected, code = await ws.connect()
        assert not connected and code == CLOSE_ORIGIN
        ws = visitor(started.token, origin=None)
        connected, code = await ws.connect()
        assert not connected and code == CLOSE_ORIGIN
        # The desk's own host is allowed, on its own port only.
        ws = visitor(started.token, origin="http://desk.example:8080")
        connected, code = await ws.connect()
        assert not connected and code == CLOSE_ORIGIN
        ws = visitor(started.token, origin="http://desk.example")
        connected, _ = await ws.connect()
        assert connected
        await ws.disconnect()

    with caplog.at_level(logging.WARNING, logger="channels_app.chat"):
        run(scenario)
    assert "unknown or expired token" in caplog.text
    assert "origin http://evil.example is not allowed" in caplog.text


def test_resume_replays_every_line_once_and_a_message_comes_back_with_its_seq(chat):
    started, agent = chat
    conversation = started.conversation

    async def scenario() -> None:
        ws = visitor(started.token)
        connected, _ = await ws.connect()
        assert connected
        status = await ws.receive_json_from()
        assert status["type"] == "status" and status["status"] == "waiting" and status["position"] == 1
        await ws.send_json_to({"type": "resume", "after": 0})
        first = await ws.receive_json_from()
        assert (first["seq"], first["author"], first["text"]) == (1, "visitor", "Hello, my order is late")
        client_id = str(uuid.uuid4())
        await ws.send_json_to({"type": "message", "client_id": client_id, "text": "Anyone there?"})
        echo = await ws.receive_json_from()
        assert (echo["seq"], echo["client_id"], echo["author"]) == (2, client_id, "visitor")
        # The same client_id again: stored once, nothing new sent.
        await ws.send_json_to({"type": "message", "client_id": client_id, "text": "Anyone there?"})
        assert await ws.receive_nothing(timeout=0.3)
        await database_sync_to_async(services.chat_accept)(conversation_id=conversation.pk, agent=agent)
        frames = await frames_until(ws, lambda f: f["type"] == "status" and f["status"] == "active")
        joined = [f for f in frames if f["type"] == "message"]
        assert [f["seq"] for f in joined] == [3] and joined[0]["author"] == "system"
        assert "joined the chat" in joined[0]["text"]
        assert frames[-1]["agent"] == services.agent_display_name(agent)
        await database_sync_to_async(services.chat_agent_message)(
            conversation_id=conversation.pk, agent=agent, text="Hi, I'm Ann"
        )
        reply = await ws.receive_json_from(timeout=5)
        assert (reply["seq"], reply["author"], reply["text"]) == (4, "agent", "Hi, I'm Ann")
        await ws.disconnect()

        # A new socket resuming after 2 gets 3 and 4, once each.
        again = visitor(started.token)
        connected, _ = await again.connect()
        assert connected
        await again.receive_json_from()
        await again.send_json_to({"type": "resume", "after": 2})
        replay = [await again.receive_json_from(), await again.receive_json_from()]
        assert [f["seq"] for f in replay] == [3, 4]
        assert await again.receive_nothing(timeout=0.3)
        await again.disconnect()

    run(scenario)
    assert ChatLine.objects.filter(conversation=conversation).count() == 4


def test_typing_reaches_the_other_side(chat):
    started, agent = chat
    conversation = started.conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)

    async def scenario() -> None:
        ws = visitor(started.token)
        await ws.connect()
        await ws.receive_json_from()
        await database_sync_to_async(conversation.refresh_from_db)()
        await database_sync_to_async(services.typing_push)(conversation, author="agent")
        assert await ws.receive_json_from(timeout=5) == {"type": "typing", "author": "agent"}
        await ws.disconnect()

    run(scenario)


def test_bad_frames_get_an_error_frame_and_the_socket_stays(chat):
    started, _agent = chat

    async def scenario() -> None:
        ws = visitor(started.token)
        await ws.connect()
        await ws.receive_json_from()
        bad: list[Any] = [
            "not json",
            json.dumps([1, 2]),
            json.dumps({"type": "shout"}),
            json.dumps({"type": "message", "client_id": "nope", "text": "x"}),
            json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": 5}),
            json.dumps({"type": "resume", "after": -1}),
            "x" * 20000,
        ]
        for text in bad:
            await ws.send_to(text_data=text)
            frame = await ws.receive_json_from()
            assert frame["type"] == "error" and frame["code"] == "bad_frame", text[:40]
        refused_id = str(uuid.uuid4())
        await ws.send_json_to({"type": "message", "client_id": refused_id, "text": "   "})
        empty = await ws.receive_json_from()
        assert empty["type"] == "error" and empty["code"] == "invalid" and empty["field"] == "text"
        assert empty["client_id"] == refused_id
        await ws.send_json_to({"type": "message", "client_id": str(uuid.uuid4()), "text": "y" * 4001})
        long = await ws.receive_json_from()
        assert long["type"] == "error" and long["field"] == "text"
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_json_from() == {"type": "pong"}
        await ws.disconnect()

    run(scenario)
    assert ChatLine.objects.filter(conversation=started.conversation).count() == 1


def test_a_flood_is_answered_with_an_error_then_the_socket_closes(chat, caplog):
    started, _agent = chat

    async def scenario() -> None:
        ws = visitor(started.token)
        await ws.connect()
        await ws.receive_json_from()
        limited = 0
        closed = False
        for _ in range(80):
            await ws.send_json_to({"type": "typing"})
        for _ in range(80):
            try:
                frame = await ws.receive_output(timeout=2)
            except Exception:
                break
            if frame["type"] == "websocket.close":
                closed = frame.get("code") == CLOSE_FLOOD
                break
            if json.loads(frame["text"]).get("code") == "rate_limited":
                limited += 1
        assert limited >= 30 and closed

    with caplog.at_level(logging.WARNING, logger="channels_app.chat"):
        run(scenario)
    assert "flood limit" in caplog.text


def test_a_message_after_the_end_is_refused(chat):
    started, _agent = chat

    async def scenario() -> None:
        ws = visitor(started.token)
        await ws.connect()
        await ws.receive_json_from()
        await ws.send_json_to({"type": "end"})
        status = await frames_until(ws, lambda f: f["type"] == "status")
        assert status[-1]["status"] == "abandoned"
        await ws.send_json_to({"type": "message", "client_id": str(uuid.uuid4()), "text": "wait"})
        frame = await frames_until(ws, lambda f: f["type"] == "error")
        assert frame[-1]["code"] == "closed"
        await ws.disconnect()

    run(scenario)


def test_a_token_reaches_only_its_own_conversation(chat):
    started, _agent = chat
    other = start(started.conversation.widget, text="Someone else's secret")

    async def scenario() -> None:
        ws = visitor(started.token)
        await ws.connect()
        await ws.receive_json_from()
        await ws.send_json_to({"type": "resume", "after": 0})
        frames = await frames_until(ws, lambda f: f["type"] == "message")
        assert all("secret" not in f.get("text", "") for f in frames)
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)
    assert other.conversation.pk != started.conversation.pk


def test_with_the_layer_down_the_chat_still_moves_on_each_ping(chat, monkeypatch, caplog):
    started, agent = chat
    conversation = started.conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    layer = get_channel_layer()

    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the channel layer is down")

    monkeypatch.setattr(layer, "group_add", unreachable)

    async def scenario() -> None:
        ws = visitor(started.token)
        connected, _ = await ws.connect()
        assert connected
        assert (await ws.receive_json_from())["status"] == "active"
        await ws.send_json_to({"type": "resume", "after": 2})
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5)) == {"type": "pong"}  # the resume is done
        await database_sync_to_async(services.chat_agent_message)(
            conversation_id=conversation.pk, agent=agent, text="Here is your answer"
        )
        # No push arrives (the socket is in no group); the next ping reads the line from the database.
        assert await ws.receive_nothing(timeout=0.3)
        await ws.send_json_to({"type": "ping"})
        line = await ws.receive_json_from(timeout=5)
        assert (line["author"], line["text"]) == ("agent", "Here is your answer")
        assert (await ws.receive_json_from(timeout=5)) == {"type": "pong"}
        await ws.disconnect()

    with caplog.at_level(logging.WARNING, logger="channels_app.chat"):
        run(scenario)
    assert "channel layer is unreachable" in caplog.text


def test_a_push_lost_on_the_way_is_made_up_for_on_the_next_ping(chat, monkeypatch):
    started, agent = chat
    conversation = started.conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)

    async def scenario() -> None:
        ws = visitor(started.token)
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["status"] == "active"
        await ws.send_json_to({"type": "resume", "after": 2})
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5)) == {"type": "pong"}
        # The line is stored but its push never arrives (the layer delivers at most once).
        monkeypatch.setattr(services, "_push_visitor", lambda *args, **kwargs: None)
        await database_sync_to_async(services.chat_agent_message)(
            conversation_id=conversation.pk, agent=agent, text="Lost on the way"
        )
        assert await ws.receive_nothing(timeout=0.3)
        await ws.send_json_to({"type": "ping"})
        line = await ws.receive_json_from(timeout=5)
        assert (line["seq"], line["text"]) == (3, "Lost on the way")
        assert (await ws.receive_json_from(timeout=5)) == {"type": "pong"}
        # Nothing new: the next ping is only a pong.
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5)) == {"type": "pong"}
        await ws.disconnect()

    run(scenario)


def test_pings_record_a_waiting_visitor_each_time_and_an_active_one_at_most_once_a_minute(chat, monkeypatch):
    from channels_app.chat import consumers
    from channels_app.chat.models import ChatConversation

    started, agent = chat
    pk = started.conversation.pk
    clock = [1000.0]
    monkeypatch.setattr(consumers.time, "monotonic", lambda: clock[0])

    def seen_at() -> Any:
        return ChatConversation.objects.values_list("visitor_seen_at", flat=True).get(pk=pk)

    async def ping(ws: WebsocketCommunicator) -> None:
        clock[0] += 20
        await ws.send_json_to({"type": "ping"})
        frames = await frames_until(ws, lambda f: f["type"] == "pong")
        assert frames[-1] == {"type": "pong"}

    async def scenario() -> None:
        ws = visitor(started.token)
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["status"] == "waiting"
        before = await database_sync_to_async(seen_at)()
        await ping(ws)
        waiting_ping = await database_sync_to_async(seen_at)()
        assert waiting_ping > before
        await database_sync_to_async(services.chat_accept)(conversation_id=pk, agent=agent)
        await frames_until(ws, lambda f: f["type"] == "status" and f["status"] == "active")
        await ping(ws)  # 20 s after the last record
        await ping(ws)  # 40 s
        assert await database_sync_to_async(seen_at)() == waiting_ping
        await ping(ws)  # 60 s: recorded
        assert await database_sync_to_async(seen_at)() > waiting_ping
        await ws.disconnect()

    run(scenario)


def test_the_first_messages_client_id_sent_again_on_the_socket_is_the_first_line(chat):
    started, _agent = chat
    conversation = started.conversation
    first = ChatLine.objects.get(conversation=conversation, seq=1)

    async def scenario() -> None:
        ws = visitor(started.token)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await ws.send_json_to({"type": "resume", "after": 1})
        await ws.send_json_to({"type": "message", "client_id": str(first.client_id), "text": "Hello again"})
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)
    assert ChatLine.objects.filter(conversation=conversation).count() == 1
    assert conversation.ticket.messages.count() == 1


def test_with_redis_down_a_visitors_socket_opens_on_the_real_layer_and_pings_read_the_chat(chat, settings, caplog):
    from servicedesk.settings.channel_layers import redis_channel_layer

    started, agent = chat
    conversation = started.conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer("redis://127.0.0.1:1/0", prefix="down")}

    async def scenario() -> None:
        ws = visitor(started.token)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        assert (await ws.receive_json_from(timeout=10))["status"] == "active"
        await ws.send_json_to({"type": "resume", "after": 2})
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=10)) == {"type": "pong"}
        await database_sync_to_async(services.chat_agent_message)(
            conversation_id=conversation.pk, agent=agent, text="Still here"
        )
        await ws.send_json_to({"type": "ping"})
        line = await ws.receive_json_from(timeout=10)
        assert (line["author"], line["text"]) == ("agent", "Still here")
        assert (await ws.receive_json_from(timeout=10)) == {"type": "pong"}
        await ws.disconnect()

    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert "Redis is unreachable" in caplog.text
