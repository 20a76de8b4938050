"""The Redis channel layer: channels-redis's pub/sub layer, which lets a socket open while Redis is down.

Every consumer first asks the layer for a channel of its own; the pub/sub
layer subscribes to it on Redis there and then, so with Redis unreachable no
socket could open at all (a 500 on the handshake). Here the channel is made
in the process whatever Redis says: the socket opens, the failure is logged,
and the consumers go on without pushes (their group joins are guarded and
tried again on each ping; a visitor's ping reads the chat from the database).
Only the channel's own subscription is missing until the socket reconnects:
it carries direct replies between sockets (who else views a ticket), not the
groups' pushes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels_redis.pubsub import RedisPubSubChannelLayer

log = logging.getLogger(__name__)


class RedisLayer(RedisPubSubChannelLayer):
    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        try:
            await layer._subscribe_to_channel(channel)
        except Exception:
            log.warning("Channel %s made without its subscription: Redis is unreachable", channel, exc_info=True)
            layer.channels.setdefault(channel, asyncio.Queue())
        return channel
