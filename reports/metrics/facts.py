"""One row per ticket of a report's cohort: the facts every ticket figure is aggregated from.

``ticket_facts`` runs one SQL statement (identical text on PostgreSQL and
SQLite apart from the few functions of ``reports.sql``) that writes a
temporary table with, per ticket created in the period and by ``as_of``:

* ``scope``: ``in`` (counted by every service metric), ``outbound``,
  ``merged`` (merged into another ticket by ``as_of``) or ``excluded`` (spam,
  deleted), METRICS.md section 2;
* the breakdown keys at ``as_of``: channel, queue slug, assignee email (``""``
  unassigned), priority, organization tier (``""`` without one);
* the status at ``as_of``, durations in microseconds on the report's calendar
  (``*_b``) and in calendar time (``*_c``): first reply, full resolution and
  requester wait (the last two only for tickets solved at ``as_of``);
* the SLA state of each target at ``as_of`` (section 4; NULL when the ticket
  has no policy snapshot or its policy sets no such target for the priority).

The status history is the ``status`` TicketEvents after creation as ``new``,
ordered by (instant, id); events and messages after ``as_of`` are ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from reports.sql import business_at_sql, epoch_us_sql, greatest_sql, json_key_text_sql, json_text_sql
from servicedesk.accounts.models import User
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.models import Customer, Message, Organization, Queue, Ticket, TicketEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Breakdown name -> column of the facts table; None is the whole cohort.
DIMENSIONS: dict[str | None, str] = {
    None: "CAST('' AS TEXT)",
    "channel": "channel",
    "queue": "queue_key",
    "agent": "agent_key",
    "priority": "priority_key",
    "tier": "tier_key",
}

SOLVED = "('solved', 'closed')"
WAITING = "('new', 'open', 'on_hold')"


def epoch_us(instant: datetime) -> int:
    """Microseconds since 1970 UTC of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; an aware datetime is required")
    return (instant - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Facts:
    """The temporary table of one computation and the instant it describes."""

    table: str
    as_of: datetime


def _facts_sql(vendor: str) -> str:
    t, e, m = Ticket._meta.db_table, TicketEvent._meta.db_table, Message._meta.db_table
    q, u = Queue._meta.db_table, User._meta.db_table
    cu, o = Customer._meta.db_table, Organization._meta.db_table
    p, st = SlaPolicy._meta.db_table, SlaTarget._meta.db_table

    def ep(x: str) -> str:
        return epoch_us_sql(x, vendor)

    def b_rep(x: str) -> str:
        return business_at_sql(x, "%(report_key)s", vendor)

    def b_pol(x: str) -> str:
        return business_at_sql(x, "(%(key_prefix)s || CAST(c.sla_calendar_id AS VARCHAR(20)))", vendor)

    def last_after(kind: str, alias: str) -> str:
        """The ``after`` text of the ticket's last ``kind`` event at or before as_of."""
        return (
            f"(SELECT {json_text_sql('v.after', vendor)} FROM {e} v WHERE v.ticket_id = {alias}.id"
            f" AND v.kind = '{kind}' AND v.at <= %(as_of)s ORDER BY v.at DESC, v.id DESC LIMIT 1)"
        )

    def has_event(kind: str, alias: str) -> str:
        return f"EXISTS (SELECT 1 FROM {e} v WHERE v.ticket_id = {alias}.id AND v.kind = '{kind}' AND v.at <= %(as_of)s)"

    def priority_at(instant_us: str) -> str:
        return (
            f"COALESCE((SELECT {json_text_sql('v.after', vendor)} FROM {e} v WHERE v.ticket_id = s.id"
            f" AND v.kind = 'priority' AND v.at <= %(as_of)s AND {ep('v.at')} <= {instant_us}"
            f" ORDER BY v.at DESC, v.id DESC LIMIT 1), s.created_priority)"
        )

    def value_at(kind: str, created_key: str, current: str) -> str:
        # The last change by as_of; before any change, the value recorded at creation.
        return (
            f"CASE WHEN {has_event(kind, 'c')} THEN {last_after(kind, 'c')}"
            f" WHEN c.created_event_id IS NOT NULL THEN {json_key_text_sql('c.created_after', created_key, vendor)}"
            f" ELSE {current} END"
        )

    def pol_elapsed(start_us: str, end_us: str, hours: str) -> str:
        return (
            f"(CASE WHEN {hours} = 'business' THEN "
            f"{greatest_sql(f'{b_pol(end_us)} - {b_pol(start_us)}', '0', vendor)}"
            f" ELSE {end_us} - {start_us} END)"
        )

    # status_facts keeps every column of cohort beside the ticket's status
    # aggregates, so that no later step joins two derived row sets: without
    # statistics on them, PostgreSQL may plan such a join as a nested loop,
    # quadratic in the cohort.
    cohort_columns = ", ".join(
        f"c.{column}"
        for column in (
            "id", "channel", "initiator", "is_spam", "is_deleted", "customer_id", "sla_policy_id", "sla_calendar_id",
            "current_priority", "current_queue", "current_assignee", "created_event_id", "created_after", "created_us",
        )
    )
    frt_target = "(CAST(c.fr_minutes AS BIGINT) * 60000000)"
    res_target = "(CAST(c.res_minutes AS BIGINT) * 60000000)"
    return f"""
WITH cohort AS (
  SELECT t.id, t.channel, t.initiator, t.is_spam, t.is_deleted, t.customer_id, t.sla_policy_id,
         COALESCE(t.sla_calendar_id, p.calendar_id) AS sla_calendar_id,
         t.priority AS current_priority, q.slug AS current_queue, t.assignee_id AS current_assignee,
         ce.id AS created_event_id, ce.after AS created_after,
         {ep('t.created_at')} AS created_us
  FROM {t} t
  JOIN {q} q ON q.id = t.queue_id
  LEFT JOIN {p} p ON p.id = t.sla_policy_id
  LEFT JOIN {e} ce ON ce.ticket_id = t.id AND ce.kind = 'created'
  WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.created_at <= %(as_of)s
),
hist AS (
  SELECT c.id AS ticket_id, c.created_us AS at_us, 0 AS seq, CAST('new' AS TEXT) AS status FROM cohort c
  UNION ALL
  SELECT e.ticket_id, {ep('e.at')}, e.id, {json_text_sql('e.after', vendor)}
  FROM {e} e JOIN cohort c ON c.id = e.ticket_id
  WHERE e.kind = 'status' AND e.at <= %(as_of)s
),
seq AS (
  SELECT ticket_id, at_us, status,
         LAG(status) OVER w AS prev_status,
         COALESCE(LEAD(at_us) OVER w, %(as_of_us)s) AS next_us,
         ROW_NUMBER() OVER (PARTITION BY ticket_id ORDER BY at_us DESC, seq DESC) AS rn_desc
  FROM hist
  WINDOW w AS (PARTITION BY ticket_id ORDER BY at_us, seq)
),
status_facts AS (
  SELECT {cohort_columns},
         MAX(CASE WHEN sq.rn_desc = 1 THEN sq.status END) AS status_now,
         MAX(CASE WHEN sq.status IN {SOLVED} AND (sq.prev_status IS NULL OR sq.prev_status NOT IN {SOLVED})
             THEN sq.at_us END) AS last_solve_us,
         SUM(CASE WHEN sq.status IN {WAITING} THEN sq.next_us - sq.at_us ELSE 0 END) AS rwt_c,
         SUM(CASE WHEN sq.status IN {WAITING} THEN {b_rep('sq.next_us')} - {b_rep('sq.at_us')} ELSE 0 END) AS rwt_b,
         SUM(CASE WHEN sq.status IN {WAITING} THEN {b_pol('sq.next_us')} - {b_pol('sq.at_us')} ELSE 0 END) AS rwt_pol
  FROM seq sq JOIN cohort c ON c.id = sq.ticket_id
  GROUP BY {cohort_columns}
),
base AS (
  SELECT c.id, c.channel, c.created_us, c.sla_policy_id, c.sla_calendar_id,
         CASE WHEN c.is_spam OR c.is_deleted THEN 'excluded'
              WHEN c.initiator = 'outbound' THEN 'outbound'
              WHEN {has_event('merged', 'c')} THEN 'merged'
              ELSE 'in' END AS scope,
         COALESCE(CASE WHEN c.created_event_id IS NOT NULL
                       THEN {json_key_text_sql('c.created_after', 'priority', vendor)} END,
                  c.current_priority) AS created_priority,
         COALESCE({value_at('queue', 'queue', 'c.current_queue')}, '') AS queue_key,
         COALESCE((SELECT uu.email FROM {u} uu WHERE uu.id =
             CAST({value_at('assignee', 'assignee', 'CAST(c.current_assignee AS TEXT)')} AS INTEGER)), '') AS agent_key,
         COALESCE((SELECT oo.tier FROM {cu} cc JOIN {o} oo ON oo.id = cc.organization_id
                   WHERE cc.id = c.customer_id), '') AS tier_key,
         c.status_now, c.last_solve_us, c.rwt_c, c.rwt_b, c.rwt_pol,
         CASE WHEN c.status_now IN {SOLVED} THEN 1 ELSE 0 END AS solved_now,
         (SELECT {ep('MIN(m.created_at)')} FROM {m} m
          WHERE m.ticket_id = c.id AND m.kind = 'public_agent' AND m.created_at <= %(as_of)s) AS first_reply_us
  FROM status_facts c
),
prio AS (
  SELECT s.*,
         {priority_at('%(as_of_us)s')} AS priority_key,
         {priority_at('s.first_reply_us')} AS reply_priority,
         {priority_at('s.last_solve_us')} AS solve_priority
  FROM base s
),
sla AS (
  SELECT c.*,
         fr.first_reply_minutes AS fr_minutes, fr.hours AS fr_hours,
         rs.resolution_minutes AS res_minutes, rs.hours AS res_hours
  FROM prio c
  LEFT JOIN {st} fr ON fr.policy_id = c.sla_policy_id
       AND fr.priority = CASE WHEN c.first_reply_us IS NOT NULL THEN c.reply_priority ELSE c.priority_key END
  LEFT JOIN {st} rs ON rs.policy_id = c.sla_policy_id
       AND rs.priority = CASE WHEN c.solved_now = 1 THEN c.solve_priority ELSE c.priority_key END
)
SELECT c.id, c.scope, c.channel, c.queue_key, c.agent_key, c.priority_key, c.tier_key, c.solved_now,
       c.first_reply_us, c.last_solve_us,
       CASE WHEN c.first_reply_us IS NOT NULL
            THEN {greatest_sql(f"{b_rep('c.first_reply_us')} - {b_rep('c.created_us')}", '0', vendor)} END AS frt_b,
       c.first_reply_us - c.created_us AS frt_c,
       CASE WHEN c.solved_now = 1
            THEN {greatest_sql(f"{b_rep('c.last_solve_us')} - {b_rep('c.created_us')}", '0', vendor)} END AS full_b,
       CASE WHEN c.solved_now = 1 THEN c.last_solve_us - c.created_us END AS full_c,
       CASE WHEN c.solved_now = 1 THEN c.rwt_b END AS rwt_b,
       CASE WHEN c.solved_now = 1 THEN c.rwt_c END AS rwt_c,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.fr_minutes IS NULL THEN NULL
            WHEN c.first_reply_us IS NOT NULL THEN
                 CASE WHEN {pol_elapsed('c.created_us', 'c.first_reply_us', 'c.fr_hours')} <= {frt_target}
                      THEN 'achieved' ELSE 'breached' END
            WHEN c.solved_now = 1 THEN 'cancelled'
            WHEN {pol_elapsed('c.created_us', '(%(as_of_us)s - 1)', 'c.fr_hours')} >= {frt_target}
                 THEN 'breached'
            ELSE 'active' END AS fr_state,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.res_minutes IS NULL THEN NULL
            WHEN (CASE WHEN c.res_hours = 'business' THEN c.rwt_pol ELSE c.rwt_c END)
                 > {res_target} THEN 'breached'
            WHEN c.solved_now = 1 THEN 'achieved'
            WHEN c.status_now = 'pending' THEN 'paused'
            ELSE 'active' END AS res_state
FROM sla c
"""


@contextmanager
def ticket_facts(
    *, start_utc: datetime, end_utc: datetime, as_of: datetime, report_key: str, key_prefix: str
) -> Iterator[Facts]:
    """Write the facts of the tickets created in [start_utc, end_utc) and by ``as_of``; yield their table.

    ``report_key`` names the materialised intervals of the report's calendar;
    a policy calendar's are under ``key_prefix`` followed by its id. The table
    is dropped when the block ends. Run inside the transaction that holds the
    intervals.
    """
    vendor = connection.vendor
    table = f"report_facts_{uuid.uuid4().hex[:16]}"
    ops = connection.ops
    params: dict[str, Any] = {
        "start": ops.adapt_datetimefield_value(start_utc),
        "end": ops.adapt_datetimefield_value(end_utc),
        "as_of": ops.adapt_datetimefield_value(as_of),
        "as_of_us": epoch_us(as_of),
        "report_key": report_key,
        "key_prefix": key_prefix,
    }
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {table} AS {_facts_sql(vendor)}", params)
    # On error the enclosing transaction's rollback removes the table.
    yield Facts(table=table, as_of=as_of)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")
