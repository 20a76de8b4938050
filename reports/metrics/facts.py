"""One row per ticket of a report's cohort: the facts every ticket figure is aggregated from.

``ticket_facts`` writes, with a few set-based SQL statements (identical text
on PostgreSQL and SQLite apart from the few functions of ``reports.sql``), a
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
  has no policy snapshot or its policy sets no such target for the priority);
* for the quality figures: the instants of the first reply, the first and the
  last solve, the numbers of public replies (in all and by the first solve)
  and of reopens by ``as_of``, and whether the customer wrote between the
  first reply and the first solve (``late_message``: the customer's last
  message by the first solve is later than the first reply).

The status history is the ``status`` TicketEvents after creation as ``new``,
ordered by (instant, id); events and messages after ``as_of`` are ignored.

How: the cohort's tickets and their events up to ``as_of`` are copied once
into working tables, and their public messages summed per ticket in one pass;
the reads are bounded to the cohort's ticket-id range (index ranges, not
whole tables). Everything else is joins, window functions and grouping over
those tables, never a lookup per ticket and figure. Business time B(t) is
computed for the distinct (calendar, instant) points at once: the points and
the calendar's intervals are sorted together, and each point carries the
last interval starting at or before it (``reports.sql``). The working tables
of the cohort, its events and its message sums stay until the block ends,
for the quality figures (``reports.metrics.quality``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from reports.sql import INTERVAL_TABLE, epoch_us_sql, greatest_sql, json_key_text_sql, json_text_sql, least_sql
from servicedesk.accounts.models import User
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.models import Customer, Message, Organization, Queue, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES, Status

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

def grouping_sets(extra_group: str = "") -> tuple[str, str, str, str]:
    """The parts of a PostgreSQL ``GROUPING SETS`` query over every breakdown of DIMENSIONS.

    (aliases, dim, key, sets): the breakdown columns as ``k<j>`` for the inner
    SELECT; the breakdown's name and its key value as expressions (``''`` and
    the whole-table key for the empty set); the grouping sets, ``()`` and each
    ``(k<j>)``, with ``extra_group`` added to every one.
    """
    breakdowns = [(name, column) for name, column in DIMENSIONS.items() if name]
    aliases = ", ".join(f"{column} AS k{j}" for j, (_name, column) in enumerate(breakdowns))
    dim = " ".join(f"WHEN GROUPING(k{j}) = 0 THEN '{name}'" for j, (name, _c) in enumerate(breakdowns))
    key = " ".join(f"WHEN GROUPING(k{j}) = 0 THEN CAST(k{j} AS TEXT)" for j in range(len(breakdowns)))
    extra = [extra_group] if extra_group else []
    sets = ", ".join(
        "(" + ", ".join(group) + ")" for group in [extra] + [[f"k{j}", *extra] for j in range(len(breakdowns))]
    )
    return aliases, f"CASE {dim} ELSE '' END", f"CASE {key} ELSE {DIMENSIONS[None]} END", sets


def grouped_select(table: str, body: str, *, where: str = "", extra_group: str = "", vendor: str = "") -> str:
    """SELECT dim, k, <body> over ``table`` for the whole table and each breakdown of DIMENSIONS.

    ``dim`` is the breakdown's name (``''`` for the whole table), ``k`` its key
    value. ``extra_group``: a column grouped in every breakdown as well (the
    body may select it). On PostgreSQL one scan with ``GROUPING SETS`` (each
    breakdown column under an alias ``k<j>``, so that ``GROUPING`` tells the
    sets apart even when ``extra_group`` is a breakdown column too);
    elsewhere one SELECT per breakdown joined by UNION ALL. Same rows.
    """
    filtered = f" WHERE {where}" if where else ""
    if (vendor or connection.vendor) == "postgresql":
        aliases, dim, key, sets = grouping_sets(extra_group)
        return (
            f"SELECT {dim} AS dim, {key} AS k, {body}"
            f" FROM (SELECT *, {aliases} FROM {table}{filtered}) f GROUP BY GROUPING SETS ({sets})"
        )
    parts = []
    for name, column in DIMENSIONS.items():
        group = ", ".join(filter(None, [column if name else "", extra_group]))
        parts.append(
            f"SELECT CAST('{name or ''}' AS TEXT) AS dim, {column} AS k, {body} FROM {table}{filtered}"
            + (f" GROUP BY {group}" if group else "")
        )
    return "\nUNION ALL\n".join(parts)


def sql_list(values: Iterable[str]) -> str:
    """A parenthesised SQL list of string constants, sorted: ``('a', 'b')``."""
    return "(" + ", ".join(f"'{value}'" for value in sorted(values)) + ")"


SOLVED = sql_list(SOLVED_STATUSES)
UNSOLVED = sql_list(UNSOLVED_STATUSES)
WAITING = sql_list({Status.NEW, Status.OPEN, Status.ON_HOLD})


def epoch_us(instant: datetime) -> int:
    """Microseconds since 1970 UTC of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; an aware datetime is required")
    return (instant - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Facts:
    """The temporary tables of one computation and the instant it describes.

    ``table``: one row per ticket (the facts). ``events``: the cohort's
    status, priority, queue, assignee and merged events by ``as_of``
    (ticket_id, kind, id, at_us, val, bval: the ``after`` text, and the
    ``before`` text of status events).
    ``messages``: per ticket with public messages by ``as_of``: ticket_id,
    first_reply_us, replies, replies_by_solve, enduser_by_solve_us. ``cohort``: the cohort's ticket columns (id, customer_id, topic_id,
    same_issue_as_id, ...). ``first_id`` and ``last_id``: the cohort's lowest
    and highest ticket ids (None without tickets), to bound other reads.
    """

    table: str
    as_of: datetime
    events: str = ""
    messages: str = ""
    cohort: str = ""
    first_id: int | None = None
    last_id: int | None = None

    @property
    def as_of_us(self) -> int:
        return epoch_us(self.as_of)


EVENT_KINDS = "('status', 'priority', 'queue', 'assignee', 'merged')"


def _statements(vendor: str, x: str, shared: frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """(working table, SELECT) in order; ``x`` is the prefix of the working tables' names.

    ``shared``: ids of policy calendars with the report calendar's hours, numbered 0 like it.
    """
    t, e, m = Ticket._meta.db_table, TicketEvent._meta.db_table, Message._meta.db_table
    q, u = Queue._meta.db_table, User._meta.db_table
    cu, o = Customer._meta.db_table, Organization._meta.db_table
    p, st = SlaPolicy._meta.db_table, SlaTarget._meta.db_table
    ci = INTERVAL_TABLE
    c_, e_, m_, i_, b_, s_ = (f"{x}_{n}" for n in ("c", "e", "m", "i", "b", "s"))

    def ep(expr: str) -> str:
        return epoch_us_sql(expr, vendor)

    def greatest(a: str, b: str) -> str:
        return greatest_sql(a, b, vendor)

    def b_at(alias: str) -> str:
        """B(t) of a join on the points table (0 for an instant before every interval, or without intervals)."""
        return f"COALESCE({alias}.b, 0)"

    def b_join(alias: str, cal: str, instant: str) -> str:
        return f"LEFT JOIN {b_} {alias} ON {alias}.cal = {cal} AND {alias}.t = {instant}"

    def pol_b_join(alias: str, cal: str, instant: str) -> str:
        """B(t) on a policy calendar other than 0 (calendar 0's is the report's, joined already)."""
        return f"LEFT JOIN (SELECT cal, t, b FROM {b_} WHERE cal <> 0) {alias} ON {alias}.cal = {cal} AND {alias}.t = {instant}"

    def pol_b_at(alias: str, cal: str, report_b: str) -> str:
        return f"(CASE WHEN {cal} = 0 THEN {report_b} ELSE {b_at(alias)} END)"

    # Calendars by number: 0 is the report's (and that of a policy calendar
    # with the same hours, whose business time is the same), a policy calendar its id.
    rep = "0"
    policy_calendar = "COALESCE(t.sla_calendar_id, pp.calendar_id)"
    if shared:
        ids = ", ".join(str(int(pk)) for pk in sorted(shared))
        policy_calendar = f"CASE WHEN {policy_calendar} IN ({ids}) THEN 0 ELSE {policy_calendar} END"
    pol = "c.pol_cal"
    clipped = least_sql(greatest_sql("ci.t - ci.start_us", "0", vendor), "ci.end_us - ci.start_us", vendor)
    solved, unsolved, waiting = SOLVED, UNSOLVED, WAITING
    frt_target = "(CAST(c.fr_minutes AS BIGINT) * 60000000)"
    res_target = "(CAST(c.res_minutes AS BIGINT) * 60000000)"

    def pol_elapsed(start_b: str, end_b: str, start_us: str, end_us: str, hours: str) -> str:
        return f"(CASE WHEN {hours} = 'business' THEN {greatest(f'{end_b} - {start_b}', '0')} ELSE {end_us} - {start_us} END)"

    return [
        # The cohort: the ticket's columns and what its ``created`` event recorded.
        (c_, f"""
SELECT t.id, t.channel, t.initiator, t.is_spam, t.is_deleted, t.customer_id, t.topic_id, t.same_issue_as_id,
       t.sla_policy_id, {policy_calendar} AS pol_cal,
       t.priority AS current_priority, qq.slug AS current_queue, t.assignee_id AS current_assignee,
       CASE WHEN ce.id IS NULL THEN 0 ELSE 1 END AS has_created,
       {json_key_text_sql('ce.after', 'priority', vendor)} AS created_priority,
       {json_key_text_sql('ce.after', 'queue', vendor)} AS created_queue,
       {json_key_text_sql('ce.after', 'assignee', vendor)} AS created_assignee,
       {ep('t.created_at')} AS created_us
FROM {t} t
JOIN {q} qq ON qq.id = t.queue_id
LEFT JOIN {p} pp ON pp.id = t.sla_policy_id
LEFT JOIN {e} ce ON ce.ticket_id = t.id AND ce.kind = 'created'
     AND ce.ticket_id >= %(first_id)s AND ce.ticket_id <= %(last_id)s
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.created_at <= %(as_of)s
"""),
        (e_, f"""
SELECT ev.ticket_id, ev.kind, ev.id, {ep('ev.at')} AS at_us,
       {json_text_sql('ev.after', vendor)} AS val,
       CASE WHEN ev.kind = 'status' THEN {json_text_sql('ev.before', vendor)} END AS bval
FROM {c_} c JOIN {e} ev ON ev.ticket_id = c.id
WHERE ev.kind IN {EVENT_KINDS} AND ev.at <= %(as_of)s AND ev.ticket_id >= %(first_id)s AND ev.ticket_id <= %(last_id)s
"""),
        # Per ticket with public messages by as_of: the first reply, the
        # number of replies, those by the first solve, and the customer's last
        # message by the first solve (one pass over the messages).
        (m_, f"""
WITH first_solve AS (
  SELECT ticket_id, MIN(at_us) AS first_solve_us FROM {e_}
  WHERE kind = 'status' AND bval IN {unsolved} AND val IN {solved} GROUP BY ticket_id
),
public AS (
  SELECT mm.ticket_id, mm.kind, {ep('mm.created_at')} AS at_us
  FROM {c_} c JOIN {m} mm ON mm.ticket_id = c.id
  WHERE mm.kind IN ('public_agent', 'public_enduser') AND mm.created_at <= %(as_of)s
    AND mm.ticket_id >= %(first_id)s AND mm.ticket_id <= %(last_id)s
)
SELECT pm.ticket_id,
       MIN(CASE WHEN pm.kind = 'public_agent' THEN pm.at_us END) AS first_reply_us,
       COUNT(CASE WHEN pm.kind = 'public_agent' THEN 1 END) AS replies,
       COUNT(CASE WHEN pm.kind = 'public_agent' AND pm.at_us <= fs.first_solve_us THEN 1 END) AS replies_by_solve,
       MAX(CASE WHEN pm.kind = 'public_enduser' AND pm.at_us <= fs.first_solve_us THEN pm.at_us END)
           AS enduser_by_solve_us
FROM public pm LEFT JOIN first_solve fs ON fs.ticket_id = pm.ticket_id
GROUP BY pm.ticket_id
"""),
        # This computation's calendar intervals, by calendar number.
        (i_, f"""
SELECT CASE WHEN calendar_key = %(report_key)s THEN 0
            ELSE CAST(substr(calendar_key, %(prefix_end)s) AS INTEGER) END AS cal,
       start_us, end_us, cum_before_us
FROM {ci} WHERE calendar_key LIKE %(key_like)s
"""),
        # B(t) of every (calendar, instant) whose business time a figure needs
        # (a policy calendar numbered 0 needs no more points than the report's):
        # the last interval starting at or before it. A
        # calendar's intervals do not overlap, so their starts, ends and open
        # time before them all grow together: the running maximum of each is
        # the last interval's.
        (b_, f"""
WITH points AS (
  SELECT {rep} AS cal, created_us AS t FROM {c_}
  UNION SELECT {rep}, at_us FROM {e_} WHERE kind = 'status'
  UNION SELECT {rep}, %(as_of_us)s
  UNION SELECT {rep}, first_reply_us FROM {m_} WHERE first_reply_us IS NOT NULL
  UNION SELECT {pol}, c.created_us FROM {c_} c WHERE {pol} IS NOT NULL AND {pol} <> 0
  UNION SELECT {pol}, ev.at_us FROM {e_} ev JOIN {c_} c ON c.id = ev.ticket_id
        WHERE ev.kind = 'status' AND {pol} IS NOT NULL AND {pol} <> 0
  UNION SELECT {pol}, mm.first_reply_us FROM {m_} mm JOIN {c_} c ON c.id = mm.ticket_id
        WHERE mm.first_reply_us IS NOT NULL AND {pol} IS NOT NULL AND {pol} <> 0
  UNION SELECT DISTINCT {pol}, %(as_of_us)s FROM {c_} c WHERE {pol} IS NOT NULL AND {pol} <> 0
  UNION SELECT DISTINCT {pol}, %(as_of_us)s - 1 FROM {c_} c WHERE {pol} IS NOT NULL
),
merged AS (
  SELECT cal, t, 1 AS is_point, CAST(NULL AS BIGINT) AS end_us, CAST(NULL AS BIGINT) AS cum_before_us FROM points
  UNION ALL
  SELECT cal, start_us, 0, end_us, cum_before_us FROM {i_}
),
carried AS (
  SELECT cal, t, is_point,
         MAX(CASE WHEN is_point = 0 THEN t END) OVER w AS start_us,
         MAX(end_us) OVER w AS end_us,
         MAX(cum_before_us) OVER w AS cum_before_us
  FROM merged
  WINDOW w AS (PARTITION BY cal ORDER BY t, is_point ROWS UNBOUNDED PRECEDING)
)
SELECT ci.cal, ci.t, COALESCE(ci.cum_before_us + {clipped}, 0) AS b
FROM carried ci
WHERE ci.is_point = 1
"""),
        # Per ticket, from the status history (creation as ``new``, then each
        # status event, ordered by instant and id; a row lasts until the next
        # row's instant, or as_of): the status now, the last solve, the waiting
        # time (B at the next row by LEAD), reopens and the first solve. B at
        # creation is the first row's; B at the last solve is the largest B of
        # the solve rows (B never decreases).
        (s_, f"""
WITH hist AS (
  SELECT c.id AS ticket_id, c.created_us AS at_us, 0 AS seq, CAST('new' AS TEXT) AS status,
         CAST(NULL AS TEXT) AS before_status FROM {c_} c
  UNION ALL
  SELECT ticket_id, at_us, id, val, bval FROM {e_} WHERE kind = 'status'
),
timed AS (
  SELECT h.ticket_id, h.at_us, h.seq, h.status, h.before_status, {pol} AS pol_cal,
         {b_at('r1')} AS rep_b, {pol_b_at('p1', pol, b_at('r1'))} AS pol_b
  FROM hist h
  JOIN {c_} c ON c.id = h.ticket_id
  {b_join('r1', rep, 'h.at_us')}
  {pol_b_join('p1', pol, 'h.at_us')}
),
spans AS (
  SELECT timed.*,
         LAG(status) OVER w AS prev_status,
         COALESCE(LEAD(at_us) OVER w, %(as_of_us)s) AS next_us,
         CASE WHEN LEAD(at_us) OVER w IS NULL THEN 1 ELSE 0 END AS is_last,
         LEAD(rep_b) OVER w AS rep_next_b, LEAD(pol_b) OVER w AS pol_next_b
  FROM timed
  WINDOW w AS (PARTITION BY ticket_id ORDER BY at_us, seq)
),
at_as_of AS (SELECT cal, b FROM {b_} WHERE t = %(as_of_us)s)
SELECT h.ticket_id,
       MAX(CASE WHEN h.is_last = 1 THEN h.status END) AS status_now,
       MAX(CASE WHEN h.status IN {solved} AND (h.prev_status IS NULL OR h.prev_status NOT IN {solved})
           THEN h.at_us END) AS last_solve_us,
       SUM(CASE WHEN h.status IN {waiting} THEN h.next_us - h.at_us ELSE 0 END) AS rwt_c,
       SUM(CASE WHEN h.status IN {waiting}
           THEN COALESCE(h.rep_next_b, (SELECT b FROM at_as_of WHERE cal = {rep}), 0) - h.rep_b ELSE 0 END) AS rwt_b,
       SUM(CASE WHEN h.status IN {waiting} THEN COALESCE(h.pol_next_b, pa.b, 0) - h.pol_b ELSE 0 END) AS rwt_pol,
       MAX(CASE WHEN h.seq = 0 THEN h.rep_b END) AS rep_created_b,
       MAX(CASE WHEN h.seq = 0 THEN h.pol_b END) AS pol_created_b,
       MAX(CASE WHEN h.status IN {solved} AND (h.prev_status IS NULL OR h.prev_status NOT IN {solved})
           THEN h.rep_b END) AS rep_solve_b,
       COUNT(CASE WHEN h.before_status IN {solved} AND h.status IN {unsolved} THEN 1 END) AS reopens,
       MIN(CASE WHEN h.before_status IN {unsolved} AND h.status IN {solved} THEN h.at_us END) AS first_solve_us
FROM spans h
LEFT JOIN at_as_of pa ON pa.cal = h.pol_cal
GROUP BY h.ticket_id
"""),
        # The facts: the breakdown keys at as_of, the first reply; then the
        # priorities at the fulfilment instants, SLA terms and states, durations.
        (x, f"""
WITH latest AS (
  SELECT ticket_id, kind, val FROM (
    SELECT ticket_id, kind, val,
           ROW_NUMBER() OVER (PARTITION BY ticket_id, kind ORDER BY at_us DESC, id DESC) AS rn
    FROM {e_} WHERE kind IN ('queue', 'assignee', 'priority')
  ) ranked WHERE rn = 1
),
keyed AS (
  SELECT ticket_id,
         MAX(CASE WHEN kind = 'queue' THEN 1 ELSE 0 END) AS has_queue,
         MAX(CASE WHEN kind = 'queue' THEN val END) AS queue_val,
         MAX(CASE WHEN kind = 'assignee' THEN 1 ELSE 0 END) AS has_assignee,
         MAX(CASE WHEN kind = 'assignee' THEN val END) AS assignee_val,
         MAX(CASE WHEN kind = 'priority' THEN val END) AS priority_val
  FROM latest GROUP BY ticket_id
),
merged AS (SELECT DISTINCT ticket_id FROM {e_} WHERE kind = 'merged'),
keys AS (
  SELECT c.*, s.status_now, s.last_solve_us, s.rwt_c, s.rwt_b, s.rwt_pol, fr.first_reply_us, kd.priority_val,
         s.rep_created_b, s.pol_created_b, s.rep_solve_b, s.reopens, s.first_solve_us, COALESCE(fr.replies, 0) AS replies,
         COALESCE(fr.replies_by_solve, 0) AS replies_by_solve,
         CASE WHEN fr.enduser_by_solve_us > fr.first_reply_us THEN 1 ELSE 0 END AS late_message,
         CASE WHEN c.is_spam OR c.is_deleted THEN 'excluded'
              WHEN c.initiator = 'outbound' THEN 'outbound'
              WHEN mg.ticket_id IS NOT NULL THEN 'merged'
              ELSE 'in' END AS scope,
         COALESCE(CASE WHEN c.has_created = 1 THEN c.created_priority END, c.current_priority) AS created_priority_key,
         COALESCE(CASE WHEN kd.has_queue = 1 THEN kd.queue_val
                       WHEN c.has_created = 1 THEN c.created_queue
                       ELSE c.current_queue END, '') AS queue_key,
         CASE WHEN kd.has_assignee = 1 THEN kd.assignee_val
              WHEN c.has_created = 1 THEN c.created_assignee
              ELSE CAST(c.current_assignee AS TEXT) END AS assignee_val,
         COALESCE(oo.tier, '') AS tier_key,
         CASE WHEN s.status_now IN {solved} THEN 1 ELSE 0 END AS solved_now
  FROM {c_} c
  JOIN {s_} s ON s.ticket_id = c.id
  LEFT JOIN keyed kd ON kd.ticket_id = c.id
  LEFT JOIN merged mg ON mg.ticket_id = c.id
  LEFT JOIN {m_} fr ON fr.ticket_id = c.id
  LEFT JOIN {cu} cc ON cc.id = c.customer_id
  LEFT JOIN {o} oo ON oo.id = cc.organization_id
),
base AS (
  SELECT k.*, COALESCE(uu.email, '') AS agent_key, COALESCE(k.priority_val, k.created_priority_key) AS priority_key
  FROM keys k LEFT JOIN {u} uu ON uu.id = CAST(k.assignee_val AS INTEGER)
),
before_as_of AS (SELECT cal, b FROM {b_} WHERE t = %(as_of_us)s - 1),
prio_at AS (
  SELECT ticket_id, which, val FROM (
    SELECT k.id AS ticket_id, w.which, pe.val,
           ROW_NUMBER() OVER (PARTITION BY k.id, w.which ORDER BY pe.at_us DESC, pe.id DESC) AS rn
    FROM base k
    JOIN (SELECT 'reply' AS which UNION ALL SELECT 'solve') w ON 1 = 1
    JOIN {e_} pe ON pe.ticket_id = k.id AND pe.kind = 'priority'
         AND pe.at_us <= CASE WHEN w.which = 'reply' THEN k.first_reply_us ELSE k.last_solve_us END
  ) ranked WHERE rn = 1
),
prio AS (
  SELECT k.*,
         COALESCE(pr.val, k.created_priority_key) AS reply_priority,
         COALESCE(ps.val, k.created_priority_key) AS solve_priority
  FROM base k
  LEFT JOIN prio_at pr ON pr.ticket_id = k.id AND pr.which = 'reply'
  LEFT JOIN prio_at ps ON ps.ticket_id = k.id AND ps.which = 'solve'
),
sla AS (
  SELECT k.*,
         fr.first_reply_minutes AS fr_minutes, fr.hours AS fr_hours,
         rs.resolution_minutes AS res_minutes, rs.hours AS res_hours,
         {b_at('rf')} AS rep_reply_b, {pol_b_at('pf', 'k.pol_cal', b_at('rf'))} AS pol_reply_b,
         {b_at('pa')} AS pol_before_as_of_b
  FROM prio k
  LEFT JOIN {st} fr ON fr.policy_id = k.sla_policy_id
       AND fr.priority = CASE WHEN k.first_reply_us IS NOT NULL THEN k.reply_priority ELSE k.priority_key END
  LEFT JOIN {st} rs ON rs.policy_id = k.sla_policy_id
       AND rs.priority = CASE WHEN k.solved_now = 1 THEN k.solve_priority ELSE k.priority_key END
  {b_join('rf', rep, 'k.first_reply_us')}
  {pol_b_join('pf', 'k.pol_cal', 'k.first_reply_us')}
  LEFT JOIN before_as_of pa ON pa.cal = k.pol_cal
)
SELECT c.id, c.scope, c.channel, c.queue_key, c.agent_key, c.priority_key, c.tier_key, c.solved_now,
       c.first_reply_us, c.last_solve_us, c.first_solve_us, c.replies, c.reopens, c.replies_by_solve, c.late_message,
       CASE WHEN c.first_reply_us IS NOT NULL THEN {greatest('c.rep_reply_b - c.rep_created_b', '0')} END AS frt_b,
       c.first_reply_us - c.created_us AS frt_c,
       CASE WHEN c.solved_now = 1 THEN {greatest('c.rep_solve_b - c.rep_created_b', '0')} END AS full_b,
       CASE WHEN c.solved_now = 1 THEN c.last_solve_us - c.created_us END AS full_c,
       CASE WHEN c.solved_now = 1 THEN c.rwt_b END AS rwt_b,
       CASE WHEN c.solved_now = 1 THEN c.rwt_c END AS rwt_c,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.fr_minutes IS NULL THEN NULL
            WHEN c.first_reply_us IS NOT NULL THEN
                 CASE WHEN {pol_elapsed('c.pol_created_b', 'c.pol_reply_b', 'c.created_us', 'c.first_reply_us', 'c.fr_hours')}
                           <= {frt_target}
                      THEN 'achieved' ELSE 'breached' END
            WHEN c.solved_now = 1 THEN 'cancelled'
            WHEN {pol_elapsed('c.pol_created_b', 'c.pol_before_as_of_b', 'c.created_us', '(%(as_of_us)s - 1)', 'c.fr_hours')}
                 >= {frt_target} THEN 'breached'
            ELSE 'active' END AS fr_state,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.res_minutes IS NULL THEN NULL
            WHEN (CASE WHEN c.res_hours = 'business' THEN c.rwt_pol ELSE c.rwt_c END) > {res_target} THEN 'breached'
            WHEN c.solved_now = 1 THEN 'achieved'
            WHEN c.status_now = 'pending' THEN 'paused'
            ELSE 'active' END AS res_state
FROM sla c
"""),
    ]


@contextmanager
def ticket_facts(
    *, start_utc: datetime, end_utc: datetime, as_of: datetime, report_key: str, key_prefix: str,
    shared_calendars: frozenset[int] = frozenset(),
) -> Iterator[Facts]:
    """Write the facts of the tickets created in [start_utc, end_utc) and by ``as_of``; yield their tables.

    ``report_key`` names the materialised intervals of the report's calendar;
    a policy calendar's are under ``key_prefix`` followed by its id, except
    the ``shared_calendars``, which have the report calendar's hours and use
    its intervals (their business time is the same, computed once). The
    tables are dropped when the block ends. Run inside the transaction that
    holds the intervals.
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
        "key_like": key_prefix + "%",
        "prefix_end": len(key_prefix) + 1,
    }
    statements = _statements(vendor, table, shared_calendars)
    with connection.cursor() as cursor:
        # The cohort's lowest and highest ticket ids bound the reads of events
        # and messages to an index range (ids grow with creation, so a
        # month's tickets are a narrow range), whatever the history's size.
        # ``id + 0``: PostgreSQL would otherwise walk the primary key from each
        # end until a ticket of the period, not read the creation index's range.
        cursor.execute(
            f"SELECT MIN(id + 0), MAX(id + 0) FROM {Ticket._meta.db_table}"
            " WHERE created_at >= %s AND created_at < %s AND created_at <= %s",
            [params["start"], params["end"], params["as_of"]],
        )
        params["first_id"], params["last_id"] = cursor.fetchone()
    # Only the parameters a statement names: SQLite refuses unused named ones.
    with connection.cursor() as cursor:
        for name, select in statements:
            used = {key: value for key, value in params.items() if f"%({key})s" in select}
            cursor.execute(f"CREATE TEMPORARY TABLE {name} AS {select}", used)
            if name == f"{table}_b":
                cursor.execute(f"CREATE INDEX {name}_cal_t ON {name} (cal, t)")
            if vendor == "postgresql":
                # Temporary tables get no statistics otherwise; the next joins are planned on them.
                cursor.execute(f"ANALYZE {name}")
    # On error the enclosing transaction's rollback removes the tables.
    yield Facts(
        table=table, as_of=as_of, events=f"{table}_e", messages=f"{table}_m", cohort=f"{table}_c",
        first_id=params["first_id"], last_id=params["last_id"],
    )
    with connection.cursor() as cursor:
        for name, _select in reversed(statements):
            cursor.execute(f"DROP TABLE {name}")
