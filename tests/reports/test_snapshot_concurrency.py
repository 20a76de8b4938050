"""Snapshots under concurrency, on PostgreSQL: the same period computed at once leaves one row."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reports.models import Granularity, ReportSnapshot
from reports.snapshots import snapshot_compute
from tests.concurrency import run_at_once
from tests.reports.delivery_helpers import calendar_make, ticket_opened

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_concurrent_computations_of_a_period_leave_one_row(queue):
    calendar = calendar_make()
    ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC))

    def compute(_i: int) -> int:
        snapshot = snapshot_compute(
            calendar=calendar,
            granularity=Granularity.DAY,
            start=date(2025, 10, 20),
            end=date(2025, 10, 21),
            as_of=datetime(2025, 11, 20, tzinfo=UTC),
        )
        return snapshot.pk

    pks = run_at_once(4, compute)
    assert ReportSnapshot.objects.count() == 1
    assert set(pks) == {ReportSnapshot.objects.get().pk}
    assert ReportSnapshot.objects.get().figures["tickets"]["in_scope"] == 1
