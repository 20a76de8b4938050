"""Snapshots under concurrency, on PostgreSQL: the same period computed at once leaves one row."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from django.db import connection, connections

from reports.models import Granularity, ReportSnapshot
from reports.snapshots import snapshot_compute
from tests.reports.delivery_helpers import calendar_make, ticket_opened

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency tests need PostgreSQL: set DATABASE_URL (scripts/test does).")


def test_concurrent_computations_of_a_period_leave_one_row(queue):
    calendar = calendar_make()
    ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    pks: list[int] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            snapshot = snapshot_compute(
                calendar=calendar,
                granularity=Granularity.DAY,
                start=date(2025, 10, 20),
                end=date(2025, 10, 21),
                as_of=datetime(2025, 11, 20, tzinfo=UTC),
            )
            pks.append(snapshot.pk)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ReportSnapshot.objects.count() == 1
    assert set(pks) == {ReportSnapshot.objects.get().pk}
    assert ReportSnapshot.objects.get().figures["tickets"]["in_scope"] == 1
