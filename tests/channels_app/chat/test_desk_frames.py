"""Chat frames on the agents' ``/ws/desk/``: offers and changes reach the agent, checked by the chat access rule."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from channels_app.chat import services
from servicedesk.core.realtime import realtime_publish
from servicedesk.live.pushes import user_group
from tests.factories import AgentFactory, QueueFactory
from tests.live.test_desk_stream import cookie_for, desk, run

from .helpers import chat_agent, start, widget_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


async def chat_frames_until(ws, wanted: dict) -> list[dict]:  # type: ignore[no-untyped-def]
    """The chat frames received until ``wanted`` (ticket frames of the same change are skipped)."""
    seen: list[dict] = []
    for _ in range(10):
        frame = await ws.receive_json_from(timeout=5)
        if frame["type"] == "chat":
            seen.append(frame)
        if frame == wanted:
            return seen
    raise AssertionError(f"{wanted} not among {seen}")


def test_the_offered_agent_hears_the_offer_and_the_visitors_lines():
    widget = widget_make()
    ann = chat_agent(widget.queue, username="ann")
    cookie = cookie_for(ann)

    async def scenario() -> None:
        ws = desk(cookie)
        connected, _ = await ws.connect()
        assert connected
        assert (await ws.receive_json_from())["type"] == "hello"
        started = await database_sync_to_async(start)(widget)
        pk = started.conversation.pk
        frames = await chat_frames_until(ws, {"type": "chat", "event": "offer", "conversation": pk})
        assert {"type": "chat", "event": "queue", "conversation": pk} in frames
        await database_sync_to_async(services.chat_accept)(conversation_id=pk, agent=ann)
        await chat_frames_until(ws, {"type": "chat", "event": "changed", "conversation": pk})
        # Whatever the accept pushed (the ticket's assignee, the chat) has arrived.
        while not await ws.receive_nothing(timeout=0.3):
            await ws.receive_json_from()
        await database_sync_to_async(services.chat_visitor_message)(
            conversation_id=pk, client_id=uuid.uuid4(), text="Hello?"
        )
        line = [await ws.receive_json_from(timeout=5)]
        while not await ws.receive_nothing(timeout=0.3):
            line.append(await ws.receive_json_from())
        # A chat line is the chat's news: no "ticket changed" to every desk of the queue.
        assert line == [{"type": "chat", "event": "changed", "conversation": pk}]
        await ws.disconnect()

    run(scenario)


def test_a_push_about_a_chat_the_agent_may_not_see_is_never_sent():
    widget = widget_make()
    chat_agent(widget.queue, username="ann")
    outsider = AgentFactory(username="olaf", queues=[QueueFactory(slug="other")])
    started = start(widget)
    cookie = cookie_for(outsider)

    async def scenario() -> None:
        ws = desk(cookie)
        connected, _ = await ws.connect()
        assert connected
        await ws.receive_json_from()
        for kind in ("chat.offer", "chat.changed", "chat.typing", "chat.queue"):
            await database_sync_to_async(realtime_publish)(
                group=user_group(outsider.pk), kind=kind, data={"conversation": started.conversation.pk}
            )
        # Not even the chat's id reaches an agent of another queue.
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run(scenario)
