"""core/process_cache.py: configuration kept per process, dropped when it changes anywhere."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from servicedesk.core import process_cache
from servicedesk.core.process_cache import ProcessCached
from servicedesk.tickets.config import queue_by_slug
from servicedesk.tickets.models import Queue

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(process_cache.time, "monotonic", clock)
    return clock


@pytest.fixture
def counted():
    loads: list[int] = []

    def loader() -> int:
        loads.append(len(loads) + 1)
        return len(loads)

    entry = ProcessCached("test.counted", loader, depends_on=[])
    yield entry, loads
    process_cache._registry.remove(entry)


def test_the_value_is_read_once_and_kept(counted, clock):
    entry, loads = counted
    assert [entry.get() for _ in range(5)] == [1, 1, 1, 1, 1]
    clock.now += process_cache.CHECK_SECONDS + 0.1
    assert entry.get() == 1 and loads == [1]


def test_another_process_changing_the_token_reloads_after_the_check_interval(counted, clock):
    entry, loads = counted
    assert entry.get() == 1
    cache.set("process-cache:test.counted", "changed elsewhere", None)
    assert entry.get() == 1  # not checked again within the interval
    clock.now += process_cache.CHECK_SECONDS + 0.1
    assert entry.get() == 2 and entry.get() == 2 and loads == [1, 2]


def test_a_value_older_than_the_maximum_age_is_read_again(counted, clock):
    entry, _loads = counted
    assert entry.get() == 1
    clock.now += process_cache.MAX_AGE_SECONDS + 1
    assert entry.get() == 2


def test_with_the_shared_cache_unreachable_every_read_is_fresh(counted, clock, monkeypatch):
    entry, _loads = counted

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(process_cache.cache, "get", down)
    assert [entry.get(), entry.get(), entry.get()] == [1, 2, 3]


def test_a_saved_queue_is_seen_at_once_in_this_process_and_elsewhere_after_commit(
    clock, django_capture_on_commit_callbacks
):
    Queue.objects.create(slug="billing", name="Billing")
    assert queue_by_slug("billing") is not None and queue_by_slug("sales") is None
    token = cache.get("process-cache:tickets.catalogue")

    with django_capture_on_commit_callbacks(execute=True):
        Queue.objects.create(slug="sales", name="Sales")

    assert queue_by_slug("sales") is not None
    assert cache.get("process-cache:tickets.catalogue") not in (None, token)
