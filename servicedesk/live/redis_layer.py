"""The Redis channel layer: channels-redis's pub/sub layer, which lets a socket open while Redis is down.

Every consumer first asks the layer for a channel of its own; the pub/sub
layer subscribes to it on Redis there and then, so with Redis unreachable no
socket could open at all (a 500 on the handshake). Here the channel is made
in the process whatever Redis says: the socket opens, the failure is logged,
and the consumers go on without pushes (their group joins are guarded and
tried again on each ping; a visitor's ping reads the chat from the database).
The channel's own subscription (direct replies between sockets: who else
views a ticket) is made by the first group join that reaches Redis again,
which the consumers try on each ping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

log = logging.getLogger(__name__)


class RedisLayer(RedisPubSubChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Channels made while Redis was down, not yet subscribed to.
        self._unsubscribed: set[str] = set()

    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        try:
            await layer._subscribe_to_channel(channel)
        except Exception:
            log.warning("Channel %s made without its subscription: Redis is unreachable", channel, exc_info=True)
            layer.channels.setdefault(channel, asyncio.Queue())
            self._unsubscribed.add(channel)
        return channel

    async def group_add(self, group: str, channel: str) -> None:
        layer = self._get_layer()
        await layer.group_add(group, channel)
        if channel in self._unsubscribed:
            # Redis answers again: the channel's own subscription, onto the queue its socket reads.
            await layer._get_shard(channel).subscribe(channel)
            self._unsubscribed.discard(channel)
            log.info("Channel %s subscribed: Redis is reachable again", channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self._unsubscribed.discard(channel)
        await self._get_layer().group_discard(group, channel)
