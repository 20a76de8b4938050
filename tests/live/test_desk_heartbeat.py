"""An open ``/ws/desk/`` socket keeps the agent present: the server beats for it, whatever the browser's timers do."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from servicedesk.live import consumers
from servicedesk.routing import services as routing_services
from tests.factories import AgentFactory, QueueFactory
from tests.live.test_desk_stream import cookie_for, desk, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


def test_the_server_beats_while_the_socket_is_open_and_stops_when_it_closes(monkeypatch):
    agent = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    beats: list[int] = []
    monkeypatch.setattr(consumers, "HEARTBEAT_EVERY", 0.1)
    monkeypatch.setattr(routing_services, "agent_heartbeat", lambda *, user_id, at=None: beats.append(user_id))
    cookie = cookie_for(agent)

    async def scenario() -> None:
        ws = desk(cookie)
        connected, _ = await ws.connect()
        assert connected
        assert (await ws.receive_json_from())["type"] == "hello"
        # No frame from the browser at all (a background tab): the server still beats.
        await asyncio.sleep(0.75)
        assert len(beats) >= 4
        await ws.disconnect()
        after_close = len(beats)
        await asyncio.sleep(0.4)
        assert len(beats) == after_close

    run(scenario)
    assert set(beats) == {agent.pk}
