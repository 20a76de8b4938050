"""One scan with GROUPING SETS (PostgreSQL) gives the same rows as one SELECT per breakdown (UNION ALL)."""

from __future__ import annotations

import pytest
from django.db import connection

from reports.metrics.facts import DIMENSIONS, grouped_select

pytestmark = pytest.mark.django_db

ROWS = [
    # channel, queue_key, agent_key, priority_key, tier_key, scope, solved_now
    ("email", "support", "ann@x", "high", "gold", "in", 1),
    ("email", "support", "", "normal", "", "in", 0),
    ("chat", "billing", "bob@x", "normal", "gold", "in", 1),
    ("chat", None, "bob@x", "low", "", "outbound", 0),
    ("web", "support", "ann@x", "urgent", "silver", "in", 1),
]


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return sorted(cursor.fetchall(), key=repr)


def test_grouping_sets_equal_one_select_per_breakdown(postgres_only):
    assert [name for name in DIMENSIONS if name] == ["channel", "queue", "agent", "priority", "tier"]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE grouped_rows (channel TEXT, queue_key TEXT, agent_key TEXT, priority_key TEXT,"
            " tier_key TEXT, scope TEXT, solved_now INTEGER)"
        )
        cursor.executemany("INSERT INTO grouped_rows VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS)
    body = "COUNT(CASE WHEN scope = 'in' THEN 1 END), SUM(solved_now)"
    one_scan = _rows(grouped_select("grouped_rows", body, vendor="postgresql"))
    assert one_scan == _rows(grouped_select("grouped_rows", body, vendor="sqlite"))
    # Worked by hand: the whole table, and the queue breakdown with its NULL key.
    assert ("", "", 4, 3) in one_scan
    assert [row for row in one_scan if row[0] == "queue"] == sorted(
        [("queue", "support", 3, 2), ("queue", "billing", 1, 1), ("queue", None, 0, 0)], key=repr
    )
    # A column grouped in every breakdown as well, also when it is a breakdown column itself.
    by_channel = _rows(
        grouped_select(
            "grouped_rows", "channel, COUNT(*)", where="scope = 'in'", extra_group="channel", vendor="postgresql"
        )
    )
    assert by_channel == _rows(
        grouped_select(
            "grouped_rows", "channel, COUNT(*)", where="scope = 'in'", extra_group="channel", vendor="sqlite"
        )
    )
    assert [row for row in by_channel if row[0] == "channel"] == sorted(
        [("channel", "chat", "chat", 1), ("channel", "email", "email", 2), ("channel", "web", "web", 1)], key=repr
    )
    assert [row for row in by_channel if row[0] == ""] == sorted(
        [("", "", "chat", 1), ("", "", "email", 2), ("", "", "web", 1)], key=repr
    )
