"""Fixed-window counters in Django's cache, shared by every rate limit of the site.

Each (scope, key) gets one counter per window, and the window's number is part
of the cache key: a window starts at a multiple of its length and lasts that
long whatever the traffic. On Redis, the cache used in production, one round
trip counts an attempt (INCR, and EXPIRE at the window's end), atomically, so
concurrent attempts are all counted. Elsewhere ``cache.add`` starts a
window's counter and ``cache.incr`` counts in it. Backends without a native
``incr`` (the file cache of the zero-setup install) rewrite the value with
their default timeout, so the counter's expiry is set again to the window's
end after every count.

When the cache cannot be reached the limits fail open: the attempt is allowed
and a warning is logged, so an outage of Redis never turns away a customer.
See docs/architecture.md, "Limits and outages".
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)


def clock() -> float:
    """Seconds since the epoch; the one clock of the limits (tests replace it)."""
    return time.time()


@dataclass(frozen=True)
class Count:
    """An attempt counted in its window: how many so far, and seconds until the window ends."""

    attempts: int
    retry_after: int


def cache_key(scope: str, key: str, *suffix: object) -> str:
    # Hashed: an email address or IPv6 address is not always a valid cache key.
    digest = hashlib.sha256(key.strip().lower().encode()).hexdigest()[:32]
    return ":".join(["rate", scope, digest, *(str(part) for part in suffix)])


def window_key(*, scope: str, key: str, window_seconds: int) -> tuple[str, int]:
    """The cache key of ``key``'s counter in the current window, and the seconds until that window ends."""
    window_seconds = max(1, int(window_seconds))
    now = clock()
    window = int(now // window_seconds)
    remaining = max(1, int((window + 1) * window_seconds - now + 0.999))
    return cache_key(scope, key, window_seconds, window), remaining


def rate_count(*, scope: str, key: str, window_seconds: int) -> Count | None:
    """Count one attempt for ``key`` in the current window of ``window_seconds``.

    None when the cache is unreachable (the caller lets the attempt through).
    """
    name, remaining = window_key(scope=scope, key=key, window_seconds=window_seconds)
    try:
        backend = caches[DEFAULT_CACHE_ALIAS]
        if isinstance(backend, RedisCache):
            return Count(attempts=_redis_count(backend, name, remaining), retry_after=remaining)
        if cache.add(name, 1, timeout=remaining):
            return Count(attempts=1, retry_after=remaining)
        try:
            attempts = int(cache.incr(name))
        except ValueError:
            # The counter expired between add and incr: this attempt opens it again.
            cache.add(name, 1, timeout=remaining)
            return Count(attempts=1, retry_after=remaining)
        cache.touch(name, timeout=remaining)
    except Exception:
        log.warning("Rate limit %s not counted: the cache is unreachable", scope, exc_info=True)
        return None
    return Count(attempts=attempts, retry_after=remaining)


# A redis-py client per connection pool: making one per call (as Django's cache does) sets up
# its table of some 250 reply handlers every time, which was most of a counted attempt's cost.
_CLIENTS: dict[int, Any] = {}


def _redis_client(backend: RedisCache) -> Any:
    """A client over the backend's (shared, thread-safe) connection pool, made once per pool."""
    # Django's Redis backend keeps its redis-py client factory in ``_cache``.
    factory = backend._cache  # type: ignore[attr-defined]
    pool = factory._get_connection_pool(write=True)
    client = _CLIENTS.get(id(pool))
    if client is None or client.connection_pool is not pool:
        client = _CLIENTS[id(pool)] = factory._client(connection_pool=pool)
    return client


def _redis_count(backend: RedisCache, name: str, seconds: int) -> int:
    """INCR and EXPIRE in one round trip; the counter is stored as Django's Redis cache stores an int."""
    key = backend.make_and_validate_key(name)
    pipe = _redis_client(backend).pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, seconds)
    attempts, _expiry_set = pipe.execute()
    return int(attempts)


def rate_peek(*, scope: str, key: str, window_seconds: int) -> Count:
    """The attempts counted for ``key`` in the current window, without counting one
    (0 when the cache is unreachable: the limits fail open)."""
    name, remaining = window_key(scope=scope, key=key, window_seconds=window_seconds)
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        try:
            # Django's Redis cache stores an int as its digits.
            raw = _redis_client(backend).get(backend.make_and_validate_key(name))
            attempts: object = int(raw) if raw else 0
        except Exception:
            log.warning("Cache read of %s failed: the cache is unreachable", name, exc_info=True)
            attempts = 0
    else:
        attempts = cache_get(name, 0)
    return Count(attempts=int(attempts) if isinstance(attempts, int) else 0, retry_after=remaining)


def cache_get(name: str, default: object = None) -> object:
    """``cache.get`` that answers ``default`` (and logs) when the cache is unreachable."""
    try:
        return cache.get(name, default)
    except Exception:
        log.warning("Cache read of %s failed: the cache is unreachable", name, exc_info=True)
        return default


def cache_set(name: str, value: object, *, timeout: int) -> None:
    """``cache.set`` that logs instead of failing when the cache is unreachable."""
    try:
        cache.set(name, value, timeout=max(1, int(timeout)))
    except Exception:
        log.warning("Cache write of %s failed: the cache is unreachable", name, exc_info=True)


def cache_delete(name: str) -> None:
    """``cache.delete`` that logs instead of failing when the cache is unreachable."""
    try:
        cache.delete(name)
    except Exception:
        log.warning("Cache delete of %s failed: the cache is unreachable", name, exc_info=True)


def rate_reset(*, scope: str, key: str, window_seconds: int) -> None:
    """Forget the attempts counted for ``key`` in the current window (logs when the cache is unreachable)."""
    window_seconds = max(1, int(window_seconds))
    cache_delete(cache_key(scope, key, window_seconds, int(clock() // window_seconds)))
