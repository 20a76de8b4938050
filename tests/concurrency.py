"""Running work in parallel transactions, for the PostgreSQL concurrency tests.

A module uses it with::

    pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

(the ``postgres_only`` fixture is in tests/conftest.py) and calls ``run_at_once``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_at_once(n: int, fn: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Call ``fn(0)`` .. ``fn(n - 1)`` in ``n`` threads released together; their results, in order.

    Each thread has its own database connection, closed when it ends. Any
    exception in a thread fails the test (never swallowed).
    """
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert errors == []
    return results
