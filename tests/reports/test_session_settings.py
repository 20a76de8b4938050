"""The report's transaction settings on PostgreSQL: no JIT, more memory, and no failure when the pool is fixed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection, transaction

from reports.services import REPORT_TEMP_BUFFERS, REPORT_WORK_MEM, _planner_settings, report_compute


def _show(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_fresh_session_gets_the_report_memory_for_the_transaction_only(postgres_only):
    connection.close()  # the next statement opens a session that has not touched a temporary table
    default_work_mem = _show("work_mem")
    with transaction.atomic():
        _planner_settings()
        assert _show("jit") == "off"
        assert _show("work_mem") == REPORT_WORK_MEM
        assert _show("temp_buffers") == REPORT_TEMP_BUFFERS
    assert _show("work_mem") == default_work_mem
    # The next report in the same session sets the same pool again without error.
    with transaction.atomic():
        _planner_settings()
        assert _show("temp_buffers") == REPORT_TEMP_BUFFERS


@pytest.mark.django_db(transaction=True)
def test_a_session_that_used_temporary_tables_still_computes_reports(postgres_only, customer, queue):
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE touched (x integer)")
        cursor.execute("INSERT INTO touched VALUES (1)")
        cursor.execute("SELECT x FROM touched")
        fixed_pool = _show("temp_buffers")
    assert fixed_pool != REPORT_TEMP_BUFFERS
    with transaction.atomic():
        _planner_settings()  # PostgreSQL refuses the new pool size; the transaction goes on
        assert _show("work_mem") == REPORT_WORK_MEM
        assert _show("temp_buffers") == fixed_pool
    report = report_compute(start=date(2026, 3, 1), end=date(2026, 4, 1), as_of=datetime(2026, 4, 1, tzinfo=UTC))
    assert report["tickets"]["in_scope"] == 0
