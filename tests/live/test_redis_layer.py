"""The Redis channel layer (``live/redis_layer.py``): pushes through real Redis, and sockets that open while it is down."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from servicedesk.live.redis_layer import RedisLayer
from servicedesk.settings.channel_layers import redis_channel_layer


def layer_for(url: str) -> RedisLayer:
    config = redis_channel_layer(url, prefix=f"t{uuid.uuid4().hex[:8]}")
    assert config["BACKEND"] == "servicedesk.live.redis_layer.RedisLayer"
    return RedisLayer(**config["CONFIG"])


def test_a_group_push_reaches_the_channels_of_the_group_through_redis():
    layer = layer_for(settings.REDIS_URL)

    async def scenario() -> None:
        inside, outside = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("desk.user.7", inside)
        await layer.group_send("desk.user.7", {"type": "chat.changed", "conversation": 3})
        assert await asyncio.wait_for(layer.receive(inside), timeout=5) == {"type": "chat.changed", "conversation": 3}
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(outside), timeout=0.3)
        await layer.flush()

    async_to_sync(scenario)()


def test_with_redis_down_a_channel_is_still_made_and_the_failure_logged(caplog):
    layer = layer_for("redis://127.0.0.1:1/0")

    async def scenario() -> None:
        channel = await layer.new_channel()
        assert channel.startswith(layer._get_layer().prefix + "specific.")
        # Nothing arrives, and waiting for it does not fail.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=0.3)
        # Joining a group still fails loudly: the consumers guard it and try again on a ping.
        with pytest.raises(Exception):  # noqa: B017 - redis-py's connection error
            await layer.group_add("desk.user.7", channel)

    with caplog.at_level(logging.WARNING, logger="servicedesk.live.redis_layer"):
        async_to_sync(scenario)()
    assert "made without its subscription: Redis is unreachable" in caplog.text


def test_a_channel_made_while_redis_was_down_is_subscribed_by_the_first_group_join_that_reaches_it(monkeypatch, caplog):
    layer = layer_for(settings.REDIS_URL)

    async def scenario() -> None:
        loop_layer = layer._get_layer()

        async def unreachable(channel: str) -> None:
            raise ConnectionError("Redis is unreachable")

        with monkeypatch.context() as patch:
            patch.setattr(loop_layer, "_subscribe_to_channel", unreachable)
            channel = await layer.new_channel()
        # A direct message has nowhere to go yet (nothing subscribed to the channel on Redis).
        await layer.send(channel, {"type": "presence.here", "ticket": 1})
        assert layer._get_layer().channels[channel].empty()
        # Redis is back: the consumer's next join also subscribes the channel itself.
        await layer.group_add("desk.user.7", channel)
        await layer.send(channel, {"type": "presence.here", "ticket": 2})
        assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "presence.here", "ticket": 2}
        await layer.group_send("desk.user.7", {"type": "chat.changed", "conversation": 3})
        assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "chat.changed", "conversation": 3}
        await layer.flush()

    with caplog.at_level(logging.INFO, logger="servicedesk.live.redis_layer"):
        async_to_sync(scenario)()
    assert "subscribed: Redis is reachable again" in caplog.text
