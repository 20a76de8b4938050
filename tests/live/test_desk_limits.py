"""``/ws/desk/`` against abuse: the flood limit per connection, malformed frames, and the heartbeat to routing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from servicedesk.live import flood
from servicedesk.live.consumers import CLOSE_FLOODING
from servicedesk.live.frames import MAX_FRAME_BYTES
from servicedesk.routing import services as routing_services
from tests.factories import AgentFactory, QueueFactory
from tests.live.test_desk_stream import cookie_for, desk, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


@pytest.fixture
def frozen(monkeypatch) -> list[float]:
    """The flood limit's clock, moved by hand: no token comes back unless the test says so."""
    now = [5000.0]
    monkeypatch.setattr(flood, "clock", lambda: now[0])
    return now


@pytest.fixture
def cookie() -> bytes:
    return cookie_for(AgentFactory(username="ann", queues=[QueueFactory(slug="support")]))


async def connected(cookie: bytes) -> Any:
    ws = desk(cookie)
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from())["type"] == "hello"
    return ws


def test_a_burst_is_served_then_frames_are_refused_until_tokens_come_back(cookie, frozen, caplog):
    async def scenario() -> None:
        ws = await connected(cookie)
        for _ in range(flood.BURST):
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from())["type"] == "pong"
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_json_from() == {
            "type": "error",
            "code": "rate_limited",
            "message": "too many frames: slow down",
        }
        # Half a second later five tokens are back (ten a second), and no more.
        frozen[0] += 0.5
        for _ in range(5):
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from())["type"] == "pong"
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["code"] == "rate_limited"
        await ws.disconnect()

    with caplog.at_level(logging.INFO, logger="servicedesk.live"):
        run(scenario)
    assert caplog.text.count("(rate_limited): too many frames: slow down") == 2


def test_a_connection_that_keeps_flooding_is_closed_with_4429(cookie, frozen, caplog):
    async def scenario() -> None:
        ws = await connected(cookie)
        for _ in range(flood.BURST):
            await ws.send_json_to({"type": "ping"})
        for _ in range(flood.BURST):
            assert (await ws.receive_json_from())["type"] == "pong"
        for _ in range(flood.TOLERANCE):
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from())["code"] == "rate_limited"
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_FLOODING}
        await ws.wait()

    with caplog.at_level(logging.INFO, logger="servicedesk.live"):
        run(scenario)
    assert "kept sending over the flood limit" in caplog.text


def test_refusals_are_forgiven_with_time(cookie, frozen):
    """A page that once sent too much is not closed for it a minute later."""

    async def round_one_short_of_closing(ws: Any) -> list[str]:
        answers = []
        for _ in range(flood.BURST + flood.TOLERANCE):
            await ws.send_json_to({"type": "ping"})
            frame = await ws.receive_json_from()
            answers.append(frame.get("code", frame["type"]))
        return answers

    async def scenario() -> None:
        ws = await connected(cookie)
        expected = ["pong"] * flood.BURST + ["rate_limited"] * flood.TOLERANCE
        assert await round_one_short_of_closing(ws) == expected
        # A minute later the tolerance is whole again: the same round closes nothing.
        frozen[0] += 60
        assert await round_one_short_of_closing(ws) == expected
        frozen[0] += 1
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"view"', "not a JSON object"),
        ('{"type": "subscribe", "queue": 1}', "unknown frame type"),
        ('{"ticket": "SD-1"}', "unknown frame type"),
        ('{"type": "view"}', "view needs 'ticket', a ticket reference"),
        ('{"type": "view", "ticket": 12}', "view needs 'ticket', a ticket reference"),
        ('{"type": "typing", "ticket": "' + "S" * 65 + '"}', "typing needs 'ticket', a ticket reference"),
        (json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_BYTES}), f"frame larger than {MAX_FRAME_BYTES} bytes"),
        # Under the limit in characters, over it in bytes.
        (json.dumps({"type": "ping", "pad": "票" * 1400}, ensure_ascii=False), "frame larger than 4096 bytes"),
        (b"\x00\x01", "binary frames are not accepted"),
    ],
)
def test_a_malformed_frame_is_answered_bad_frame_and_logged_with_its_reason(cookie, frame, reason, caplog):
    async def scenario() -> None:
        ws = await connected(cookie)
        if isinstance(frame, bytes):
            await ws.send_to(bytes_data=frame)
        else:
            await ws.send_to(text_data=frame)
        assert await ws.receive_json_from() == {"type": "error", "code": "bad_frame", "message": reason}
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    with caplog.at_level(logging.INFO, logger="servicedesk.live"):
        run(scenario)
    assert f"(bad_frame): {reason}" in caplog.text


def test_a_frame_of_exactly_4_kib_is_taken(cookie):
    frame = json.dumps({"type": "ping", "pad": ""})
    frame = frame[:-2] + "x" * (MAX_FRAME_BYTES - len(frame)) + '"}'
    assert len(frame.encode()) == MAX_FRAME_BYTES

    async def scenario() -> None:
        ws = await connected(cookie)
        await ws.send_to(text_data=frame)
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    run(scenario)


def test_the_heartbeat_goes_to_routing_on_connect_and_on_every_ping(monkeypatch):
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    beats: list[int] = []
    monkeypatch.setattr(routing_services, "agent_heartbeat", lambda *, user_id: beats.append(user_id), raising=False)

    async def scenario() -> None:
        ws = await connected(cookie)
        assert beats == [ann.pk]
        for _ in range(2):
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from())["type"] == "pong"
        assert beats == [ann.pk] * 3
        # Other frames are no heartbeat.
        await ws.send_json_to({"type": "resume", "after": 0})
        await ws.receive_json_from()
        assert beats == [ann.pk] * 3
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize("how", ["missing", "failing"])
def test_without_a_working_heartbeat_the_stream_still_works(monkeypatch, cookie, how, caplog):
    if how == "missing":
        monkeypatch.delattr(routing_services, "agent_heartbeat", raising=False)
    else:

        def failing(*, user_id: int) -> None:
            raise RuntimeError("routing is down")

        monkeypatch.setattr(routing_services, "agent_heartbeat", failing, raising=False)

    async def scenario() -> None:
        ws = await connected(cookie)
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    with caplog.at_level(logging.WARNING, logger="servicedesk.live"):
        run(scenario)
    assert ("RuntimeError: routing is down" in caplog.text) is (how == "failing")
