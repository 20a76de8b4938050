import shutil

import pytest

from tests.factories import AgentFactory, CustomerFactory, QueueFactory


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    yield
    shutil.rmtree(tmp_path / "media", ignore_errors=True)


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from servicedesk.core.process_cache import process_caches_clear

    cache.clear()
    # Each test's database starts afresh under the configuration this process cached.
    process_caches_clear()
    _phone_folds_forget()
    yield
    process_caches_clear()


# Thirty seconds into a minute, an hour's start and a day's middle: every window of the rate
# limits (a minute, an hour, a day) has time left, so a test's attempts never straddle two.
RATE_LIMIT_INSTANT = 1_800_000_030.0


@pytest.fixture(autouse=True)
def _rate_limit_clock(monkeypatch):
    """The rate limits' clock held at RATE_LIMIT_INSTANT for every test (the cache is cleared for
    each): a test that counts attempts in a fixed window read the real clock and failed when
    its attempts ran across the end of a minute. Tests of windows set the clock themselves."""
    from servicedesk.core import ratelimit

    monkeypatch.setattr(ratelimit, "clock", lambda: RATE_LIMIT_INSTANT)


def _phone_folds_forget() -> None:
    """The set of calls to fold and its flag (Redis, not the cache): an earlier test's would hold back this one's."""
    from django.conf import settings

    from channels_app.phone.services import fold_keys, fold_redis

    if settings.REDIS_URL:
        fold_redis().delete(*fold_keys())


@pytest.fixture
def postgres_only():
    """Concurrency tests need real row locks: they fail (never skip) without PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.fail("Concurrency tests need PostgreSQL: set DATABASE_URL (scripts/test does).")


@pytest.fixture
def queue(db):
    return QueueFactory(slug="support", name="Support")


@pytest.fixture
def agent(db, queue):
    return AgentFactory(username="ann", queues=[queue])


@pytest.fixture
def manager(db):
    return AgentFactory(username="max", role="manager")


@pytest.fixture
def customer(db):
    return CustomerFactory(name="Alice Byrne", email="alice@example.com")
