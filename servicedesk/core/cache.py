"""One Redis connection pool per process for the cache.

Django keeps a cache object per thread, and its Redis backend a connection
pool per cache object. The web server runs each request in a thread of its
own, so without sharing every request would open (and health-check) a new
Redis connection for its throttles and rate limits. ``SharedConnectionPool``
is named in ``CACHES[...]["OPTIONS"]["pool_class"]``: every cache object of
the process then borrows from the one pool for its URL and options. redis-py
pools are thread-safe and start afresh in a forked child.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis


class SharedConnectionPool(redis.ConnectionPool):
    _shared: ClassVar[dict[tuple[str, str], redis.ConnectionPool]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        key = (url, repr(sorted(kwargs.items(), key=lambda item: item[0])))
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
        return pool
