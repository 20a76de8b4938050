"""``live/threads.py``: the sockets' database work on the thread pool, and consumers without Channels' per-message sweep."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from servicedesk.live.threads import in_thread
from tests.factories import AgentFactory, QueueFactory
from tests.live.test_desk_stream import cookie_for, desk, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_calls_run_side_by_side_on_the_pool_and_leave_no_connection_open():
    started = threading.Barrier(2, timeout=5)

    @in_thread
    def work() -> tuple[int, bool]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # Both calls are inside at once: not one after the other on a single thread.
        started.wait()
        return threading.get_ident(), connection.connection is not None

    @in_thread
    def still_open() -> bool:
        return connection.connection is not None

    async def scenario() -> list[Any]:
        import asyncio

        both = await asyncio.gather(work(), work())
        return [both, await still_open()]

    (first, second), left_open = async_to_sync(scenario)()
    assert first[0] != second[0] and first[1] and second[1]
    assert left_open is False


def test_a_socket_hands_its_frames_to_their_handlers_without_channels_connection_sweep(monkeypatch):
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    swept: list[int] = []

    async def sweep() -> None:
        swept.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", sweep)

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["type"] == "hello"
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await ws.disconnect()

    run(scenario)
    assert swept == []
