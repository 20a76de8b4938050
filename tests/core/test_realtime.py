"""``realtime_publish``: after commit, never raising, never waiting for the layer; through real Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.db import transaction

from servicedesk.core import realtime
from servicedesk.core.realtime import realtime_flush, realtime_publish
from servicedesk.settings.channel_layers import redis_channel_layer


@pytest.fixture
def redis_layer(monkeypatch):
    """channels-redis on the test Redis, as the servers use it (servicedesk/settings/channel_layers.py)."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        pytest.fail("These tests need Redis: set REDIS_URL (scripts/test does).")
    config = redis_channel_layer(url, prefix=f"t{uuid.uuid4().hex[:8]}")["CONFIG"]
    layer = RedisPubSubChannelLayer(**config)
    monkeypatch.setattr("channels.layers.get_channel_layer", lambda *args, **kwargs: layer)
    return layer


def _listen(layer: RedisPubSubChannelLayer, group: str, count: int) -> tuple[list[dict], threading.Thread]:
    """Join ``group`` with a new channel and collect ``count`` messages, on a loop of its own."""
    received: list[dict] = []
    joined = threading.Event()

    async def listen() -> None:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        joined.set()
        for _ in range(count):
            received.append(await asyncio.wait_for(layer.receive(channel), timeout=10))

    thread = threading.Thread(target=lambda: asyncio.run(listen()))
    thread.start()
    assert joined.wait(10)
    return received, thread


@pytest.mark.django_db(transaction=True)
def test_pushes_from_plain_code_reach_a_listener_after_commit_only(redis_layer):
    group = f"desk.test.{uuid.uuid4().hex[:8]}"
    received, thread = _listen(redis_layer, group, 3)

    with transaction.atomic():
        realtime_publish(group=group, kind="ticket.changed", data={"tickets": [[1, 10]]})
        assert realtime_flush(2)  # nothing handed over before the commit
        with transaction.atomic():
            pass
    for n in (2, 3):
        realtime_publish(group=group, kind="ticket.changed", data={"tickets": [[n, 10 + n]]})
    try:
        with transaction.atomic():
            realtime_publish(group=group, kind="ticket.changed", data={"tickets": [[99, 99]]})
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass

    assert realtime_flush(10)
    thread.join(15)
    assert [m["tickets"][0][0] for m in received] == [1, 2, 3]
    assert all(m["type"] == "ticket.changed" for m in received)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_layer_is_logged_and_the_caller_goes_on(monkeypatch, caplog):
    dead = RedisPubSubChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 1}])
    monkeypatch.setattr("channels.layers.get_channel_layer", lambda *args, **kwargs: dead)
    with caplog.at_level(logging.WARNING, logger="servicedesk.core.realtime"):
        with transaction.atomic():
            realtime_publish(group="desk.queue.1", kind="ticket.changed", data={"tickets": [[1, 1]]})
        assert realtime_flush(10)
    assert "Could not push ticket.changed to desk.queue.1" in caplog.text


def test_a_bad_group_name_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match="invalid group name"):
        realtime_publish(group="desk queue/1", kind="ticket.changed", data={})


def test_pushes_beyond_the_waiting_limit_are_dropped_with_a_warning(monkeypatch, caplog):
    release = threading.Event()

    class Stuck:
        async def group_send(self, group: str, message: dict) -> None:
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)

    sender = realtime._Sender()
    monkeypatch.setattr(sender, "MAX_WAITING", 3)
    with caplog.at_level(logging.WARNING, logger="servicedesk.core.realtime"):
        for _ in range(5):
            sender.submit(Stuck(), "g", {"type": "x"})
        assert not sender.wait(0.2)
        release.set()
        assert sender.wait(10)
    assert "1 pushes dropped" in caplog.text
    assert sender._dropped == 2


def test_the_tests_in_memory_layer_is_sent_on_the_callers_loop():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    group = f"desk.test.{uuid.uuid4().hex[:8]}"

    async def scenario() -> dict:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        from channels.db import database_sync_to_async

        await database_sync_to_async(realtime._send)(group, {"type": "ticket.changed", "tickets": []})
        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    assert async_to_sync(scenario)() == {"type": "ticket.changed", "tickets": []}
