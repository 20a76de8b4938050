"""core/cache.py: every thread's cache object borrows from the process's one Redis connection pool."""

from __future__ import annotations

import threading

import pytest
import redis
from django.core.cache import caches

from servicedesk.core.cache import SharedConnectionPool
from servicedesk.settings import base as base_settings


@pytest.fixture
def redis_cache(settings) -> str:
    """The product's Redis cache as configured with REDIS_URL (the tests otherwise use memory)."""
    configured = base_settings.CACHES["default"]
    if not configured["BACKEND"].endswith("RedisCache"):
        pytest.fail(
            f"This test needs Redis: run ./scripts/test or set REDIS_URL (the cache is {configured['BACKEND']})."
        )
    settings.CACHES = {"default": {**configured, "KEY_PREFIX": "sd-test-cache"}}
    return str(configured["LOCATION"])


def _connections(url: str) -> int:
    return int(redis.Redis.from_url(url).info("clients")["connected_clients"])


def test_requests_in_many_threads_share_a_few_redis_connections(redis_cache):
    caches["default"].set("shared-pool-probe", 1)
    before = _connections(redis_cache)
    values: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def request() -> None:
        # A thread of its own has a cache object of its own, as each request of the web server does.
        start.wait()
        value = caches["default"].get("shared-pool-probe")
        with lock:
            values.append(value)

    for _round in range(5):
        threads = [threading.Thread(target=request) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert values == [1] * 20
    # At most one connection per concurrent request, not one per thread.
    assert _connections(redis_cache) - before <= 4


def test_one_pool_per_url_and_options():
    first = SharedConnectionPool.from_url("redis://127.0.0.1:6379/9", socket_timeout=1)
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/9", socket_timeout=1) is first
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/9", socket_timeout=2) is not first
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/8", socket_timeout=1) is not first
