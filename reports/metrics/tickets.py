"""Ticket counts and durations of a cohort (METRICS.md sections 2 and 3), from the facts table.

Counts: ``in_scope`` (inbound, not merged away, not spam or deleted),
``outbound``, ``merged``, ``solved`` (in scope and solved at ``as_of``) and
``by_channel`` (in scope). Durations, over the in-scope tickets that have the
value, in minutes: first reply (creation to the first ``public_agent``
message), full resolution (creation to the last solve, tickets solved at
``as_of``) and requester wait (tickets solved at ``as_of``), each in business
time on the report's calendar and in calendar time. Median and p90 are taken
in the database with ROW_NUMBER over the ordered values: the median of an
even count is the mean of the two middle values, p90 the ceil(0.9 n)-th
smallest value.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from reports.metrics import group_key, minutes
from reports.metrics.facts import DIMENSIONS, Facts

# Figure name -> (business column, calendar column) of the facts table.
DURATIONS: dict[str, tuple[str, str]] = {
    "first_reply_minutes": ("frt_b", "frt_c"),
    "full_resolution_minutes": ("full_b", "full_c"),
    "requester_wait_minutes": ("rwt_b", "rwt_c"),
}

Grouped = dict[str | None, dict[str, dict[str, Any]]]


def _empty_summary() -> dict[str, Any]:
    return {"n": 0, "mean": None, "median": None, "p90": None}


def _dimension_selects(table: str, body: str, where: str = "", extra_group: str = "") -> str:
    parts = []
    for name, column in DIMENSIONS.items():
        label = name or ""
        group = ", ".join(filter(None, [column if name else "", extra_group]))
        parts.append(
            f"SELECT CAST('{label}' AS TEXT) AS dim, {column} AS k, {body} FROM {table}"
            + (f" WHERE {where}" if where else "")
            + (f" GROUP BY {group}" if group else "")
        )
    return "\nUNION ALL\n".join(parts)


def ticket_counts(facts: Facts) -> Grouped:
    """{breakdown: {key: {"in_scope", "outbound", "merged", "solved", "by_channel"}}}; breakdown None is the cohort."""
    body = (
        "COUNT(CASE WHEN scope = 'in' THEN 1 END), COUNT(CASE WHEN scope = 'outbound' THEN 1 END),"
        " COUNT(CASE WHEN scope = 'merged' THEN 1 END), COUNT(CASE WHEN scope = 'in' AND solved_now = 1 THEN 1 END)"
    )
    result: Grouped = {name: {} for name in DIMENSIONS}
    with connection.cursor() as cursor:
        cursor.execute(_dimension_selects(facts.table, body))
        for dim, key, in_scope, outbound, merged, solved in cursor.fetchall():
            result[dim or None][group_key(key)] = {
                "in_scope": in_scope, "outbound": outbound, "merged": merged, "solved": solved, "by_channel": {},
            }
        cursor.execute(_dimension_selects(facts.table, "channel, COUNT(*)", where="scope = 'in'", extra_group="channel"))
        for dim, key, channel, count in cursor.fetchall():
            result[dim or None][group_key(key)]["by_channel"][channel] = count
    for groups in result.values():
        for figures in groups.values():
            figures["by_channel"] = dict(sorted(figures["by_channel"].items()))
    return result


def ticket_durations(facts: Facts) -> Grouped:
    """{breakdown: {key: {figure: {"business": summary, "calendar": summary}}}} for the figures of DURATIONS."""
    values = []
    for name, column in DIMENSIONS.items():
        for business, calendar in DURATIONS.values():
            for metric in (business, calendar):
                values.append(
                    f"SELECT CAST('{name or ''}' AS TEXT) AS dim, {column} AS k, CAST('{metric}' AS TEXT) AS m,"
                    f" {metric} AS v FROM {facts.table} WHERE scope = 'in' AND {metric} IS NOT NULL"
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
    summaries: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for dim, key, metric, n, seconds, micros, middle_sum, middle_n, p90 in cursor.fetchall():
            total = int(seconds) * 1_000_000 + int(micros)
            summaries[(dim or None, group_key(key), metric)] = {
                "n": n,
                "mean": minutes(total, n),
                "median": minutes(int(middle_sum), middle_n),
                "p90": minutes(int(p90)),
            }
    result: Grouped = {name: {} for name in DIMENSIONS}
    for (dim, key, _metric) in summaries:
        result[dim].setdefault(key, {})
    for dim, groups in result.items():
        for key, figures in groups.items():
            for figure, (business, calendar) in DURATIONS.items():
                figures[figure] = {
                    "business": summaries.get((dim, key, business), _empty_summary()),
                    "calendar": summaries.get((dim, key, calendar), _empty_summary()),
                }
    return result


def tickets_handled(facts: Facts) -> int:
    """In-scope tickets with a public agent reply or a solve by ``as_of`` (the tickets of cost per contact)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {facts.table} WHERE scope = 'in'"
            " AND (first_reply_us IS NOT NULL OR last_solve_us IS NOT NULL)"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
