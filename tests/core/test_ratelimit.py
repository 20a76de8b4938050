"""Fixed-window counters: a window lasts its whole length on every cache backend, and an
unreachable cache lets attempts through."""

import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import caches

from servicedesk.core import ratelimit

UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@pytest.fixture
def clock(monkeypatch):
    now = [1_080_000.0]  # a multiple of 60, 900 and 3600: windows start here
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


def attempts(key: str, *, window_seconds: int = 60, scope: str = "ip") -> int:
    counted = ratelimit.rate_count(scope=scope, key=key, window_seconds=window_seconds)
    assert counted is not None
    return counted.attempts


def test_counts_within_a_window_and_starts_over_in_the_next(clock):
    counted = [attempts("192.0.2.1") for _ in range(3)]
    other = attempts("192.0.2.2")
    other_scope = attempts("192.0.2.1", scope="email")
    clock[0] += 60
    next_window = attempts("192.0.2.1")

    assert (counted, other, other_scope, next_window) == ([1, 2, 3], 1, 1, 1)


def test_the_count_says_when_its_window_ends(clock):
    clock[0] += 45

    counted = ratelimit.rate_count(scope="ip", key="192.0.2.1", window_seconds=60)

    assert counted == ratelimit.Count(attempts=1, retry_after=15)


def test_email_keys_ignore_case_and_spaces():
    attempts("Jane@Example.com", scope="email")

    assert attempts(" jane@example.com ", scope="email") == 2


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.filebased.FileBasedCache",  # the zero-setup cache (settings without REDIS_URL)
        "django.core.cache.backends.locmem.LocMemCache",
    ],
)
def test_an_hour_window_holds_its_whole_hour_however_quiet_it_gets(settings, tmp_path, clock, monkeypatch, backend):
    # The backends' expiry reads time.time(); it follows the same clock here.
    monkeypatch.setattr("django.core.cache.backends.filebased.time.time", lambda: clock[0])
    monkeypatch.setattr("django.core.cache.backends.locmem.time.time", lambda: clock[0])
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": str(tmp_path / "cache")}}
    caches["default"].clear()

    first = [attempts("192.0.2.1", window_seconds=3600) for _ in range(2)]
    clock[0] += 3000  # 50 quiet minutes: longer than any default cache timeout (300 s)
    third = attempts("192.0.2.1", window_seconds=3600)
    clock[0] += 590  # 59 min 50 s into the window
    fourth = attempts("192.0.2.1", window_seconds=3600)
    clock[0] += 10  # the next window
    fresh = attempts("192.0.2.1", window_seconds=3600)

    assert (first, third, fourth, fresh) == ([1, 2], 3, 4, 1)


@pytest.fixture
def redis_cache(settings):
    """The production cache, Redis, with keys of this test's own (they expire with their window)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"test-web-{uuid.uuid4().hex}",
        }
    }


def test_concurrent_attempts_are_all_counted_on_redis(redis_cache):
    # INCR counts atomically: no count is lost under concurrency.
    key = str(uuid.uuid4())

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: attempts(key), range(40)))

    assert sorted(counts) == list(range(1, 41))


def test_an_unreachable_cache_lets_the_attempt_through_with_a_warning(settings, caplog):
    settings.CACHES = UNREACHABLE_REDIS

    with caplog.at_level(logging.WARNING, logger="servicedesk.core.ratelimit"):
        counted = ratelimit.rate_count(scope="ip", key="192.0.2.1", window_seconds=60)

    assert counted is None
    assert [record.getMessage() for record in caplog.records] == ["Rate limit ip not counted: the cache is unreachable"]


def test_on_redis_the_counter_lives_until_its_window_ends_and_reads_back_as_a_number(redis_cache, clock):
    clock[0] += 45
    key = str(uuid.uuid4())

    counted = [ratelimit.rate_count(scope="ip", key=key, window_seconds=60) for _ in range(3)]
    peeked = ratelimit.rate_peek(scope="ip", key=key, window_seconds=60)
    backend = caches["default"]
    name = backend.make_and_validate_key(ratelimit.cache_key("ip", key, 60, int(clock[0] // 60)))
    ttl = backend._cache.get_client(name).ttl(name)

    assert counted == [ratelimit.Count(attempts=n, retry_after=15) for n in (1, 2, 3)]
    assert peeked.attempts == 3
    assert 0 < ttl <= 15
