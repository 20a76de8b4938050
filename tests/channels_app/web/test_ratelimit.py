import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from channels_app.web import ratelimit


def test_counts_within_a_window_and_starts_over_in_the_next(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])

    counted = [ratelimit.rate_count(scope="ip", key="192.0.2.1", window_seconds=60) for _ in range(3)]
    other = ratelimit.rate_count(scope="ip", key="192.0.2.2", window_seconds=60)
    other_scope = ratelimit.rate_count(scope="email", key="192.0.2.1", window_seconds=60)
    now[0] += 60
    next_window = ratelimit.rate_count(scope="ip", key="192.0.2.1", window_seconds=60)

    assert (counted, other, other_scope, next_window) == ([1, 2, 3], 1, 1, 1)


def test_email_keys_ignore_case_and_spaces():
    ratelimit.rate_count(scope="email", key="Jane@Example.com", window_seconds=60)

    assert ratelimit.rate_count(scope="email", key=" jane@example.com ", window_seconds=60) == 2


def test_limits_from_settings(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBFORM_RATE_PER_IP": 2, "WEBFORM_RATE_PER_EMAIL": 3}

    results = [ratelimit.webform_rate_exceeded(client_ip="192.0.2.9", email=f"p{n}@example.com") for n in range(3)]
    by_email = [ratelimit.webform_rate_exceeded(client_ip=f"192.0.2.{n}", email="same@example.com") for n in range(4)]

    assert results == [False, False, True]
    assert by_email == [False, False, False, True]


def test_concurrent_submissions_are_all_counted_on_redis(settings):
    # Redis is the production cache; add + incr must not lose a count under concurrency.
    # The keys carry a unique prefix and expire with the window.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"test-web-{uuid.uuid4().hex}",
        }
    }
    key = str(uuid.uuid4())

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: ratelimit.rate_count(scope="ip", key=key, window_seconds=60), range(40)))

    assert sorted(counts) == list(range(1, 41))
