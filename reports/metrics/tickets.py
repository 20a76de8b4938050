"""Ticket counts and durations of a cohort (docs/metrics.md#in-scope and #ticket-metrics), from the facts table.

Counts: ``in_scope`` (inbound, not merged away, not spam or deleted),
``outbound``, ``merged``, ``solved`` (in scope and solved at ``as_of``) and
``by_channel`` (in scope). Durations, over the in-scope tickets that have the
value, in minutes: first reply (creation to the first ``public_agent``
message), full resolution (creation to the last solve, tickets solved at
``as_of``) and requester wait (tickets solved at ``as_of``), each in business
time on the report's calendar and in calendar time. Median and p90 are picked
in the database from the ordered values by integer rank: the median of an
even count is the mean of the two middle values, p90 the ceil(0.9 n)-th
smallest value. PostgreSQL and SQLite get there by different SQL (sorted
arrays, ROW_NUMBER) to the same integers.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from reports.metrics import group_key, minutes
from reports.metrics.facts import DIMENSIONS, Facts, grouped_select, grouping_sets

# Figure name -> (business column, calendar column) of the facts table.
DURATIONS: dict[str, tuple[str, str]] = {
    "first_reply_minutes": ("first_reply_business_us", "first_reply_calendar_us"),
    "full_resolution_minutes": ("full_resolution_business_us", "full_resolution_calendar_us"),
    "requester_wait_minutes": ("requester_wait_business_us", "requester_wait_calendar_us"),
}

Grouped = dict[str | None, dict[str, dict[str, Any]]]


def _empty_summary() -> dict[str, Any]:
    return {"n": 0, "mean": None, "median": None, "p90": None}


def ticket_counts(facts: Facts) -> Grouped:
    """{breakdown: {key: {"in_scope", "outbound", "merged", "solved", "by_channel"}}}; breakdown None is the cohort."""
    body = (
        "COUNT(CASE WHEN scope = 'in' THEN 1 END), COUNT(CASE WHEN scope = 'outbound' THEN 1 END),"
        " COUNT(CASE WHEN scope = 'merged' THEN 1 END), COUNT(CASE WHEN scope = 'in' AND solved_now = 1 THEN 1 END)"
    )
    result: Grouped = {name: {} for name in DIMENSIONS}
    with connection.cursor() as cursor:
        cursor.execute(grouped_select(facts.table, body))
        for dim, key, in_scope, outbound, merged, solved in cursor.fetchall():
            result[dim or None][group_key(key)] = {
                "in_scope": in_scope,
                "outbound": outbound,
                "merged": merged,
                "solved": solved,
                "by_channel": {},
            }
        cursor.execute(grouped_select(facts.table, "channel, COUNT(*)", where="scope = 'in'", extra_group="channel"))
        for dim, key, channel, count in cursor.fetchall():
            result[dim or None][group_key(key)]["by_channel"][channel] = count
    for groups in result.values():
        for figures in groups.values():
            figures["by_channel"] = dict(sorted(figures["by_channel"].items()))
    return result


def ticket_durations(facts: Facts) -> Grouped:
    """{breakdown: {key: {figure: {"business": summary, "calendar": summary}}}} for the figures of DURATIONS.

    A breakdown key appears when one of its in-scope tickets has one of the durations.
    """
    by_vendor = _durations_by_arrays if connection.vendor == "postgresql" else _durations_by_ranks
    rows = by_vendor(facts.table)
    summaries: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    for dim_name, key_value, metric, n, total, middle_sum, middle_n, p90 in rows:
        summaries[(dim_name or None, group_key(key_value), metric)] = {
            "n": n,
            "mean": minutes(total, n),
            "median": minutes(middle_sum, middle_n),
            "p90": minutes(p90),
        }
    result: Grouped = {name: {} for name in DIMENSIONS}
    for dim, key, _metric in summaries:
        result[dim].setdefault(key, {})
    for dim, groups in result.items():
        for key, figures in groups.items():
            for figure, (business, calendar) in DURATIONS.items():
                figures[figure] = {
                    "business": summaries.get((dim, key, business), _empty_summary()),
                    "calendar": summaries.get((dim, key, calendar), _empty_summary()),
                }
    return result


# One summary of a metric in a group: (breakdown, key, metric column, n, sum,
# sum of the middle values, how many middle values (1 or 2), p90 value), all
# in exact integer microseconds; only for n > 0.
_SummaryRow = tuple[str, Any, str, int, int, int, int, int]


def _metric_columns() -> list[str]:
    return [column for pair in DURATIONS.values() for column in pair]


def _durations_by_arrays(table: str) -> list[_SummaryRow]:
    """PostgreSQL: one scan grouped by every breakdown at once, each metric's values as a sorted array.

    The ranked rows of ``_durations_by_ranks`` are one per value, breakdown and
    metric (3.3 million for 100,000 tickets), sorted together on text keys
    and spilled to disk: 15 s. Here ``GROUPING SETS`` sorts the narrow rows
    once per breakdown and each group's values once per metric (in memory
    for a month's cohort), and the ranks are array indexes: the middle values
    at (n + 1) / 2 and (n + 2) / 2, p90 at (9 n + 9) / 10, 1-based, in integer
    arithmetic. Not ``percentile_disc``: its rank is ceil(fraction * n) in
    double precision, which needs a rounding argument for p90, and no
    fraction gives the upper middle value, (n + 2) / 2.

    The requester wait columns may be NUMERIC (sums of BIGINT microseconds):
    whole numbers, so the cast to BIGINT is exact, and BIGINT sorts faster.
    SUM of BIGINT is an exact NUMERIC.
    """
    metrics = _metric_columns()
    aliases, dim, key, sets = grouping_sets()
    narrow = ", ".join([aliases] + [f"CAST({metric} AS BIGINT) AS v{i}" for i, metric in enumerate(metrics)])
    aggregates = ", ".join(
        f"COUNT(v{i}) AS n{i}, SUM(v{i}) AS s{i}, ARRAY_AGG(v{i} ORDER BY v{i}) FILTER (WHERE v{i} IS NOT NULL) AS a{i}"
        for i in range(len(metrics))
    )
    picks = ", ".join(
        f"n{i}, s{i}, a{i}[(n{i} + 1) / 2], a{i}[(n{i} + 2) / 2], a{i}[(9 * n{i} + 9) / 10]"
        for i in range(len(metrics))
    )
    sql = f"""
SELECT dim, k, {picks}
FROM (
  SELECT {dim} AS dim, {key} AS k, {aggregates}
  FROM (SELECT {narrow} FROM {table} WHERE scope = 'in') f
  GROUP BY GROUPING SETS ({sets})
) g
"""
    rows: list[_SummaryRow] = []
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for dim_name, key_value, *figures in cursor.fetchall():
            for i, metric in enumerate(metrics):
                n, total, low, high, p90 = figures[5 * i : 5 * i + 5]
                if n:
                    middle = (int(low), 1) if n % 2 else (int(low) + int(high), 2)
                    rows.append((dim_name, key_value, metric, n, int(total), *middle, int(p90)))
    return rows


def _durations_by_ranks(table: str) -> list[_SummaryRow]:
    """SQLite (development and small tests): every metric of every breakdown ranked with ROW_NUMBER.

    Seconds and microsecond remainders are summed apart: SQLite's SUM of
    integers fails past 2**63. The cast keeps v an integer on PostgreSQL too,
    where the branches would otherwise unite as NUMERIC and v / 1000000 would
    keep a fraction.
    """
    values = []
    for name, column in DIMENSIONS.items():
        for metric in _metric_columns():
            values.append(
                f"SELECT CAST('{name or ''}' AS TEXT) AS dim, {column} AS k, CAST('{metric}' AS TEXT) AS m,"
                f" CAST({metric} AS BIGINT) AS v FROM {table} WHERE scope = 'in' AND {metric} IS NOT NULL"
            )
    union = "\nUNION ALL\n".join(values)
    middle = "(rn = (n + 1) / 2 OR rn = (n + 2) / 2)"
    sql = f"""
WITH vals AS ({union}),
ranked AS (
  SELECT dim, k, m, v,
         ROW_NUMBER() OVER (PARTITION BY dim, k, m ORDER BY v) AS rn,
         COUNT(*) OVER (PARTITION BY dim, k, m) AS n
  FROM vals
)
SELECT dim, k, m, COUNT(*), SUM(v / 1000000), SUM(v % 1000000),
       SUM(CASE WHEN {middle} THEN v ELSE 0 END), COUNT(CASE WHEN {middle} THEN 1 END),
       MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN v END)
FROM ranked GROUP BY dim, k, m
"""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [
            (dim, key, metric, n, int(seconds) * 1_000_000 + int(micros), int(middle_sum), middle_n, int(p90))
            for dim, key, metric, n, seconds, micros, middle_sum, middle_n, p90 in cursor.fetchall()
        ]


def tickets_handled(facts: Facts) -> int:
    """In-scope tickets with a public agent reply or a solve by ``as_of`` (the tickets of cost per contact)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {facts.table} WHERE scope = 'in'"
            " AND (first_reply_us IS NOT NULL OR last_solve_us IS NOT NULL)"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
