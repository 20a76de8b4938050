"""Quality figures: one-touch, first-contact resolution, reopens and satisfaction.

docs/metrics.md#in-scope, #reopen, #one-touch, #fcr and #csat define
them. Every figure is evaluated at ``as_of`` from the ticket's timeline: status
history from the ``status`` TicketEvents (a ticket starts in ``new``),
replies from ``public_agent`` messages, ratings from their own instant; never
from the current ``Ticket.status`` or ``updated_at``, and never from the clock.

``quality_figures`` computes them set-based over a report's working tables
(``reports.metrics.facts``: the cohort's events and public messages by
``as_of``), so that no figure costs a lookup per ticket; only the
repeat-contact test reads beyond the cohort, for the tickets that pass every
other FCR condition. The per-ticket values are summed per breakdown key at
``as_of`` (the facts' keys, as for the ticket and SLA figures) for the whole
cohort and every breakdown. Only integer sums reach Python, which divides
them (``RESULTS``): rates are fractions rounded half-up to 4 decimals
(``None`` without a denominator), the mean score has 2 decimals. The SQL is
the same on SQLite and PostgreSQL, and so are the results.

The tests hold it to a second, independent implementation of the same
definitions written with the ORM, one correlated subquery per condition
(``tests/reports/quality_reference.py``): every scenario of
``tests/reports/test_quality.py`` is checked against both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connections

from reports.metrics import group_key, rate
from reports.metrics.facts import DIMENSIONS, Facts, grouped_select, sql_list
from reports.sql import epoch_us_sql
from servicedesk.core.epoch import from_epoch_us
from servicedesk.tickets.models import Customer, Rating, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES

Figures = dict[str, Any]

SOLVED = sorted(SOLVED_STATUSES)
UNSOLVED = sorted(UNSOLVED_STATUSES)
FCR_WINDOW_HOURS = 168

_MEAN = Decimal("0.01")


# The figures: sums over each ticket's values (``SUMS``; a value has one name
# across the figures, so a report computes them all in one row per ticket)
# and the figures from the sums (``RESULTS``).

SUMS: dict[str, dict[str, str]] = {
    "one_touch": {
        "solved": "{solved}",
        "one": "CASE WHEN {solved} = 1 AND {replies} = 1 THEN 1 ELSE 0 END",
        "few": "CASE WHEN {solved} = 1 AND {replies} <= 1 THEN 1 ELSE 0 END",
    },
    "fcr": {"eligible": "{fcr_eligible}", "success": "{fcr_success}"},
    "reopen": {
        "solved": "{solved}",
        "tickets": "CASE WHEN {solved} = 1 AND {reopens} >= 1 THEN 1 ELSE 0 END",
        "total": "{reopens}",
    },
    "csat": {
        "rated": "CASE WHEN {score} IS NULL THEN 0 ELSE 1 END",
        "satisfied": "CASE WHEN {score} >= 4 THEN 1 ELSE 0 END",
        "points": "COALESCE({score}, 0)",
    },
}
FIGURES = tuple(SUMS)


def _one_touch_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "count": totals["one"],
        "solved": totals["solved"],
        "rate": rate(totals["one"], totals["solved"]),
        "fewer_than_two": rate(totals["few"], totals["solved"]),
    }


def _reopen_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "tickets": totals["tickets"],
        "solved": totals["solved"],
        "rate": rate(totals["tickets"], totals["solved"]),
        "total": totals["total"],
    }


def _csat_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    mean = None
    if totals["rated"]:
        mean = float((Decimal(totals["points"]) / Decimal(totals["rated"])).quantize(_MEAN, rounding=ROUND_HALF_UP))
    return {
        "satisfied": totals["satisfied"],
        "rated": totals["rated"],
        "rate": rate(totals["satisfied"], totals["rated"]),
        "mean": mean,
    }


def _fcr_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "success": totals["success"],
        "eligible": totals["eligible"],
        "rate": rate(totals["success"], totals["eligible"]),
        "window_hours": window_hours,
    }


RESULTS: dict[str, Callable[[Mapping[str, int], int], Figures]] = {
    "one_touch": _one_touch_result,
    "fcr": _fcr_result,
    "reopen": _reopen_result,
    "csat": _csat_result,
}


# A report: every figure, for the whole cohort and each breakdown, in one query.

ReportFigures = dict[str, dict[str | None, dict[str, Figures]]]


def quality_empty(*, window_hours: int = FCR_WINDOW_HOURS) -> dict[str, Figures]:
    """The quality figures of a group without in-scope tickets: zero counts, null rates."""
    return {figure: RESULTS[figure](dict.fromkeys(SUMS[figure], 0), window_hours) for figure in FIGURES}


def _quality_rows_sql(facts: Facts, window_hours: int, vendor: str, flagged: str) -> tuple[str, str]:
    """One row per in-scope ticket of the facts: its breakdown keys and the values SUMS reads.

    Set-based over the facts' working tables of events and messages. The
    repeat-contact test (docs/metrics.md#repeat-contact) looks beyond the cohort,
    only for the tickets that pass every other condition of an FCR success:
    each such ticket is paired with the other inbound, non-spam tickets of
    the same person (the root customer and the records merged into it), and
    a pair is a repeat when it is about the same issue and created in
    (first reply, first solve + W], or when the other ticket was merged into
    this one and created or merged in that window.
    """
    t, e, cu, ra = Ticket._meta.db_table, TicketEvent._meta.db_table, Customer._meta.db_table, Rating._meta.db_table
    solved, unsolved = sql_list(SOLVED), sql_list(UNSOLVED)
    window_us = window_hours * 3_600_000_000
    keys = ", ".join(f"f.{column}" for name, column in DIMENSIONS.items() if name)

    def ep(expr: str) -> str:
        return epoch_us_sql(expr, vendor)

    # Built from the models' and the facts' table names and constants; instants are parameters.
    first = f"""
WITH rated AS (
  SELECT ticket_id, score FROM (
    SELECT r.ticket_id, r.score, ROW_NUMBER() OVER (PARTITION BY r.ticket_id ORDER BY r.at DESC, r.id DESC) AS rn
    FROM {facts.table} f JOIN {ra} r ON r.ticket_id = f.id
    WHERE f.scope = 'in' AND r.at <= %(as_of)s AND r.ticket_id >= %(first_id)s AND r.ticket_id <= %(last_id)s
  ) ranked WHERE rn = 1
),
base AS (
  SELECT f.id, {keys}, f.solved_now AS solved, f.replies, f.reopens, f.first_solve_us, f.first_reply_us, rt.score,
         f.replies_by_solve, f.late_message,
         COALESCE(cc.merged_into_id, c.customer_id) AS root, c.topic_id, c.same_issue_as_id
  FROM {facts.table} f
  JOIN {facts.cohort} c ON c.id = f.id
  LEFT JOIN {cu} cc ON cc.id = c.customer_id
  LEFT JOIN rated rt ON rt.ticket_id = f.id
  WHERE f.scope = 'in'
),
reopened AS (
  SELECT DISTINCT b.id
  FROM base b JOIN {facts.events} v ON v.ticket_id = b.id
  WHERE v.kind = 'status' AND v.before_text IN {solved} AND v.after_text IN {unsolved}
    AND v.at_us > b.first_solve_us AND v.at_us <= b.first_solve_us + {window_us}
),
counted AS (
  SELECT b.*, CASE WHEN r.id IS NULL THEN 0 ELSE 1 END AS reopened_in_window
  FROM base b LEFT JOIN reopened r ON r.id = b.id
),
flagged AS (
  SELECT q.*,
         CASE WHEN q.first_solve_us <= %(as_of_us)s - {window_us} AND q.replies_by_solve >= 1
              THEN 1 ELSE 0 END AS fcr_eligible
  FROM counted q
)
SELECT * FROM flagged
"""  # noqa: S608
    # The second statement reads the first one's rows (``flagged``), with statistics on PostgreSQL.
    final = f"""
WITH candidates AS (
  SELECT id, root, topic_id, same_issue_as_id, first_reply_us, first_solve_us FROM {flagged} WHERE {CANDIDATE}
),
people AS (
  SELECT q.id AS qid, q.topic_id AS q_topic, q.same_issue_as_id AS q_same, q.first_reply_us, q.first_solve_us,
         q.root AS customer_id
  FROM candidates q
  UNION ALL
  SELECT q.id, q.topic_id, q.same_issue_as_id, q.first_reply_us, q.first_solve_us, cx.id
  FROM candidates q JOIN {cu} cx ON cx.merged_into_id = q.root
),
pairs AS (
  SELECT pe.qid, pe.q_topic, pe.q_same, pe.first_reply_us, pe.first_solve_us,
         x.id AS xid, x.topic_id, x.same_issue_as_id, {ep("x.created_at")} AS created_us
  FROM people pe JOIN {t} x ON x.customer_id = pe.customer_id
  WHERE x.initiator = 'inbound' AND x.is_spam = {_false(vendor)} AND x.id <> pe.qid
    AND x.created_at >= %(pairs_from)s AND x.created_at <= %(pairs_until)s
),
merged_in AS (
  SELECT pe.qid, pe.first_reply_us, pe.first_solve_us, x.id AS xid, {ep("x.created_at")} AS created_us
  FROM people pe JOIN {t} x ON x.merged_into_id = pe.qid AND x.customer_id = pe.customer_id
  WHERE x.initiator = 'inbound' AND x.is_spam = {_false(vendor)} AND x.id <> pe.qid
    AND x.merged_into_id >= %(first_id)s AND x.merged_into_id <= %(last_id)s
),
merges AS (
  SELECT p.qid, p.created_us, p.first_reply_us, p.first_solve_us, {ep("v.at")} AS merged_us
  FROM merged_in p JOIN {e} v ON v.ticket_id = p.xid
  WHERE v.kind = 'merged' AND v.at <= %(as_of)s
),
repeats AS (
  SELECT qid FROM pairs
  WHERE (topic_id = q_topic OR same_issue_as_id = qid OR xid = q_same)
    AND created_us > first_reply_us AND created_us <= first_solve_us + {window_us}
  UNION
  SELECT qid FROM merges
  WHERE (created_us > first_reply_us AND created_us <= first_solve_us + {window_us})
     OR (merged_us > first_reply_us AND merged_us <= first_solve_us + {window_us})
)
SELECT q.*,
       CASE WHEN cd.id IS NOT NULL AND r.qid IS NULL THEN 1 ELSE 0 END AS fcr_success
FROM {flagged} q
LEFT JOIN candidates cd ON cd.id = q.id
LEFT JOIN repeats r ON r.qid = q.id
"""  # noqa: S608
    return first, final


# A ticket that passes every FCR condition but the repeat-contact test.
CANDIDATE = "fcr_eligible = 1 AND replies_by_solve = 1 AND late_message = 0 AND reopened_in_window = 0"


def _pairs_bounds(cursor: Any, flagged: str, window_hours: int) -> tuple[datetime | None, datetime | None]:
    """The creation instants between which a repeat contact of any candidate can lie.

    A repeat (other than a merged ticket, which is found by its merge) is
    created after the candidate's first reply and by its first solve plus the
    window: bounds on the creation index, so only that stretch of the tickets
    is read. None without candidates.
    """
    cursor.execute(f"SELECT MIN(first_reply_us), MAX(first_solve_us) FROM {flagged} WHERE {CANDIDATE}")  # noqa: S608
    first_reply_us, first_solve_us = cursor.fetchone()
    if first_reply_us is None or first_solve_us is None:
        return None, None
    return (
        from_epoch_us(int(first_reply_us)),
        from_epoch_us(int(first_solve_us)) + timedelta(hours=window_hours),
    )


def _false(vendor: str) -> str:
    return "false" if vendor == "postgresql" else "0"


def quality_figures(facts: Facts, *, window_hours: int = FCR_WINDOW_HOURS) -> ReportFigures:
    """{figure: {breakdown: {key: figures}}} for the in-scope tickets of a report's facts table.

    The cohort is the facts' ``in`` scope, and the groups are the facts'
    breakdown keys at ``as_of`` (``DIMENSIONS``; breakdown None is the whole
    cohort, under the key ``""``), so the quality figures count the same
    tickets in the same groups as the ticket and SLA figures. The per-ticket
    values are those of the figure functions above (the same definitions),
    computed from the facts' working tables of events and messages, then
    summed per group of every breakdown; two statements.
    """
    connection = connections["default"]
    vendor = connection.vendor
    rows = f"{facts.table}_q"
    values = {name: name for name in ("solved", "replies", "reopens", "score", "fcr_eligible", "fcr_success")}
    summed = ", ".join(
        f"COALESCE(SUM({template.format(**values)}), 0)" for figure in FIGURES for template in SUMS[figure].values()
    )
    params = {
        "as_of": connection.ops.adapt_datetimefield_value(facts.as_of),
        "as_of_us": facts.as_of_us,
        "first_id": facts.first_id,
        "last_id": facts.last_id,
    }
    flagged = f"{rows}_f"
    first, final = _quality_rows_sql(facts, window_hours, vendor, flagged)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {flagged} AS {first}", params)
        if vendor == "postgresql":
            cursor.execute(f"ANALYZE {flagged}")
        pairs_from, pairs_until = _pairs_bounds(cursor, flagged, window_hours)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {rows} AS {final}",
            {
                "as_of": params["as_of"],
                "first_id": params["first_id"],
                "last_id": params["last_id"],
                "pairs_from": connection.ops.adapt_datetimefield_value(pairs_from),
                "pairs_until": connection.ops.adapt_datetimefield_value(pairs_until),
            },
        )
        # Built from constants: the breakdown columns of DIMENSIONS and the sums of SUMS.
        cursor.execute(grouped_select(rows, summed, vendor=vendor))
        fetched = cursor.fetchall()
        cursor.execute(f"DROP TABLE {rows}")
        cursor.execute(f"DROP TABLE {flagged}")
    result: ReportFigures = {figure: {name: {} for name in DIMENSIONS} for figure in FIGURES}
    for dim, key, *numbers in fetched:
        numbers_iter = iter(int(number) for number in numbers)
        for figure in FIGURES:
            totals = {name: next(numbers_iter) for name in SUMS[figure]}
            result[figure][dim or None][group_key(key)] = RESULTS[figure](totals, window_hours)
    return result
