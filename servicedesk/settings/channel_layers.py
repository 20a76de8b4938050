"""The Redis channel layer's configuration, in one place for the settings and the tests.

channels-redis's pub/sub layer (``live/redis_layer.py``, which lets a socket
open while Redis is down): a push is one PUBLISH, and each web process
holds one subscribing connection per Redis that hands every message to the
sockets of its groups. A push reaches the processes connected at that
moment, at most once; the database is the truth, so a push lost in a blip of
Redis is made up for when a client pings or reconnects (docs/architecture.md,
"Live updates"). The layer's list-based sibling (``channels_redis.core``)
took four round trips per message received, one message at a time per
process: with a thousand chats it, not the database, was where lines waited
(docs/performance.md, "Live chat").
"""

from __future__ import annotations

from typing import Any


def redis_channel_layer(url: str, *, prefix: str) -> dict[str, Any]:
    """``CHANNEL_LAYERS["default"]`` for the Redis at ``url``; ``prefix`` keeps sites on one Redis apart."""
    return {
        "BACKEND": "servicedesk.live.redis_layer.RedisLayer",
        "CONFIG": {
            # An unreachable or stalled Redis is noticed within seconds; the change is committed anyway.
            "hosts": [{"address": url, "socket_connect_timeout": 2, "socket_timeout": 5, "socket_keepalive": True}],
            "prefix": prefix,
        },
    }
