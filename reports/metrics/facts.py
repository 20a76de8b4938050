"""One row per ticket of a report's cohort: the facts every ticket figure is aggregated from.

``ticket_facts`` writes, with a few set-based SQL statements (identical text
on PostgreSQL and SQLite apart from the few functions of ``reports.sql``), a
temporary table with, per ticket created in the period and by ``as_of``:

* ``scope``: ``in`` (counted by every service metric), ``outbound``,
  ``merged`` (merged into another ticket by ``as_of``) or ``excluded`` (spam,
  deleted), docs/metrics.md#in-scope;
* the breakdown keys at ``as_of``: channel, queue slug, assignee email (``""``
  unassigned), priority, organization tier (``""`` without one);
* the status at ``as_of``, durations in microseconds on the report's calendar
  (``*_b``) and in calendar time (``*_c``): first reply, full resolution and
  requester wait (the last two only for tickets solved at ``as_of``);
* the SLA state of each target at ``as_of`` (docs/metrics.md#sla-outcomes; NULL when the ticket
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
computed in the pass over the status history: each status row and first
reply finds the last interval starting at or before it (``reports.sql``)
through its slot, by one hash join on a small table of slots (``_slots``).
The working tables of the cohort, its events and its message sums stay
until the block ends, for the quality figures (``reports.metrics.quality``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from reports.sql import INTERVAL_TABLE, epoch_us_sql, greatest_sql, json_key_text_sql, json_text_sql, least_sql
from servicedesk.accounts.models import User
from servicedesk.core.epoch import epoch_us
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.models import Customer, Message, Organization, Queue, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES, Status

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


@dataclass(frozen=True)
class Facts:
    """The temporary tables of one computation and the instant it describes.

    ``table``: one row per ticket (the facts). ``events``: the cohort's
    events of EVENT_KINDS by ``as_of``
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


# The rows of the status-history pass by kind: status rows (creation and
# status events), the first reply, and the events whose latest value is a key
# or a flag that sets the ticket aside.
ROW_KINDS = {"status": 0, "reply": 1, "queue": 2, "assignee": 3, "priority": 4, "merged": 5, "spam": 6, "deleted": 7}

# The event kinds copied into the events table: every row kind but the reply.
EVENT_KINDS = sql_list(kind for kind in ROW_KINDS if kind != "reply")

# The flags a ticket is set aside by (excluded from every service metric), each
# with its events: (column, event kind).
SET_ASIDE = tuple((column, kind) for kind, column in TicketEvent.SET_ASIDE.items())

# A JSON true as the text of ``json_text_sql`` on either database ('true', or SQLite's 1).
TRUE_TEXTS = "('1', 'true')"


def _statements(vendor: str, x: str, shared: frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """(working table, SELECT) in order; ``x`` is the prefix of the working tables' names.

    ``shared``: ids of policy calendars with the report calendar's hours, numbered 0 like it.
    """
    t, e, m = Ticket._meta.db_table, TicketEvent._meta.db_table, Message._meta.db_table
    q, u = Queue._meta.db_table, User._meta.db_table
    cu, o = Customer._meta.db_table, Organization._meta.db_table
    p, st = SlaPolicy._meta.db_table, SlaTarget._meta.db_table
    ci = INTERVAL_TABLE
    c_, e_, m_, i_, s_ = (f"{x}_{n}" for n in ("c", "e", "m", "i", "s"))

    def ep(expr: str) -> str:
        return epoch_us_sql(expr, vendor)

    def greatest(a: str, b: str) -> str:
        return greatest_sql(a, b, vendor)

    def rows(cal: str, join: str) -> str:
        """The status rows and the first reply of each ticket (``join`` may keep some), on calendar ``cal``."""
        return f"""SELECT {cal} AS cal, r.* FROM (
    SELECT c0.id AS ticket_id, c0.created_us AS at_us, 0 AS seq, 0 AS row_kind,
           CAST('new' AS TEXT) AS status, CAST(NULL AS TEXT) AS before_status FROM {c_} c0
    UNION ALL SELECT ticket_id, at_us, id, 0, val, bval FROM {e_} WHERE kind = 'status'
    UNION ALL SELECT ticket_id, first_reply_us, 0, 1, NULL, NULL FROM {m_} WHERE first_reply_us IS NOT NULL
  ) r {join}"""

    def clip_on(instant: str, start: str, end: str) -> str:
        """The open time of the interval [start, end) up to ``instant``."""
        return least_sql(greatest_sql(f"{instant} - {start}", "0", vendor), f"{end} - {start}", vendor)

    def clip(instant: str) -> str:
        """The open time of interval ``ci`` up to ``instant``."""
        return clip_on(instant, "ci.start_us", "ci.end_us")

    def pol_of(report_b: str, other_b: str) -> str:
        """A figure on the ticket's policy calendar: the report's on calendar 0, 0 without a calendar."""
        return (
            f"(CASE WHEN c.pol_cal = 0 THEN {report_b} WHEN c.pol_cal IS NULL THEN 0 ELSE COALESCE({other_b}, 0) END)"
        )

    # Calendars by number: 0 is the report's (and that of a policy calendar
    # with the same hours, whose business time is the same), a policy calendar its id.
    rep = "0"
    policy_calendar = "COALESCE(t.sla_calendar_id, pp.calendar_id)"
    if shared:
        ids = ", ".join(str(int(pk)) for pk in sorted(shared))
        policy_calendar = f"CASE WHEN {policy_calendar} IN ({ids}) THEN 0 ELSE {policy_calendar} END"
    # B at as_of and just before it, per calendar: the largest over the
    # intervals starting by then (B never decreases), 0 without one.
    ends = f"""ends AS (
  SELECT ci.cal, MAX(ci.cum_before_us + {clip("%(as_of_us)s")}) AS b_as_of,
         MAX(CASE WHEN ci.start_us <= %(as_of_us)s - 1 THEN ci.cum_before_us + {clip("(%(as_of_us)s - 1)")} END)
             AS b_before_as_of
  FROM {i_} ci WHERE ci.start_us <= %(as_of_us)s GROUP BY ci.cal
)"""
    other_kinds = sql_list(kind for kind in ROW_KINDS if kind not in ("status", "reply"))
    kind_code = (
        "CASE kind "
        + " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in ROW_KINDS.items() if kind not in ("status", "reply"))
        + " END"
    )
    set_aside_kinds = sql_list(kind for _column, kind in SET_ASIDE)
    later_befores = ", ".join(
        f"MAX(CASE WHEN kind = '{kind}' THEN before_text END) AS {kind}_before" for _column, kind in SET_ASIDE
    )
    flag_bases = ",\n       ".join(
        f"CASE WHEN sp.{kind}_before IS NOT NULL THEN (CASE WHEN sp.{kind}_before IN {TRUE_TEXTS} THEN 1 ELSE 0 END)"
        f" WHEN t.{column} THEN 1 ELSE 0 END AS {kind}_base"
        for column, kind in SET_ASIDE
    )
    # Spam or deleted at as_of: the latest such event by then, else the base.
    set_aside_at_as_of = " OR ".join(
        f"(CASE WHEN s.has_{kind} = 1 THEN (CASE WHEN s.{kind}_val IN {TRUE_TEXTS} THEN 1 ELSE 0 END)"
        f" ELSE c.{kind}_base END) = 1"
        for _column, kind in SET_ASIDE
    )
    on_rep = "h.cal = 0 AND h.row_kind = 0"
    on_pol = "h.cal <> 0 AND h.row_kind = 0"

    def latest(kind: str) -> str:
        """The ``after`` text of the ticket's last event of ``kind`` by as_of (NULL without one)."""
        return f"MAX(CASE WHEN h.row_kind = {ROW_KINDS[kind]} AND h.next_us IS NULL THEN h.status END)"

    def has(kind: str) -> str:
        return f"MAX(CASE WHEN h.row_kind = {ROW_KINDS[kind]} THEN 1 ELSE 0 END)"

    set_aside_latest = ",\n       ".join(
        f"{has(kind)} AS has_{kind}, CAST({latest(kind)} AS TEXT) AS {kind}_val" for _column, kind in SET_ASIDE
    )

    solved, unsolved, waiting = SOLVED, UNSOLVED, WAITING
    solve_row = f"h.status IN {solved} AND (h.prev_status IS NULL OR h.prev_status NOT IN {solved})"
    frt_target = "(CAST(c.fr_minutes AS BIGINT) * 60000000)"
    res_target = "(CAST(c.res_minutes AS BIGINT) * 60000000)"

    def pol_elapsed(start_b: str, end_b: str, start_us: str, end_us: str, hours: str) -> str:
        return f"(CASE WHEN {hours} = 'business' THEN {greatest(f'{end_b} - {start_b}', '0')} ELSE {end_us} - {start_us} END)"

    return [
        # The cohort: the ticket's columns and what its ``created`` event recorded;
        # ``spam_base`` and ``deleted_base``: the flag at as_of unless an event by
        # then says otherwise (the ``before`` of the first such event after
        # as_of, else the column).
        (
            c_,
            f"""
SELECT t.id, t.channel, t.initiator, t.is_spam, t.is_deleted, t.customer_id, t.topic_id, t.same_issue_as_id,
       t.sla_policy_id, {policy_calendar} AS pol_cal,
       t.priority AS current_priority, qq.slug AS current_queue, t.assignee_id AS current_assignee,
       CASE WHEN ce.id IS NULL THEN 0 ELSE 1 END AS has_created,
       {json_key_text_sql("ce.after", "priority", vendor)} AS created_priority,
       {json_key_text_sql("ce.after", "queue", vendor)} AS created_queue,
       {json_key_text_sql("ce.after", "assignee", vendor)} AS created_assignee,
       {ep("t.created_at")} AS created_us,
       {flag_bases}
FROM {t} t
JOIN {q} qq ON qq.id = t.queue_id
LEFT JOIN {p} pp ON pp.id = t.sla_policy_id
LEFT JOIN (
  SELECT ticket_id, {later_befores} FROM (
    SELECT se.ticket_id, se.kind, CAST({json_text_sql("se.before", vendor)} AS TEXT) AS before_text,
           ROW_NUMBER() OVER (PARTITION BY se.ticket_id, se.kind ORDER BY se.at, se.id) AS rn
    FROM {e} se
    WHERE se.kind IN {set_aside_kinds} AND se.at > %(as_of)s
      AND se.ticket_id >= %(first_id)s AND se.ticket_id <= %(last_id)s
  ) later WHERE rn = 1 GROUP BY ticket_id
) sp ON sp.ticket_id = t.id
LEFT JOIN {e} ce ON ce.ticket_id = t.id AND ce.kind = 'created'
     AND ce.ticket_id >= %(first_id)s AND ce.ticket_id <= %(last_id)s
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.created_at <= %(as_of)s
""",
        ),
        (
            e_,
            f"""
SELECT ev.ticket_id, ev.kind, ev.id, {ep("ev.at")} AS at_us,
       {json_text_sql("ev.after", vendor)} AS val,
       CASE WHEN ev.kind = 'status' THEN {json_text_sql("ev.before", vendor)} END AS bval
FROM {c_} c JOIN {e} ev ON ev.ticket_id = c.id
WHERE ev.kind IN {EVENT_KINDS} AND ev.at <= %(as_of)s AND ev.ticket_id >= %(first_id)s AND ev.ticket_id <= %(last_id)s
""",
        ),
        # Per ticket with public messages by as_of: the first reply, the
        # number of replies, those by the first solve, and the customer's last
        # message by the first solve (one pass over the messages).
        (
            m_,
            f"""
WITH first_solve AS (
  SELECT ticket_id, MIN(at_us) AS first_solve_us FROM {e_}
  WHERE kind = 'status' AND bval IN {unsolved} AND val IN {solved} GROUP BY ticket_id
),
solves AS (
  SELECT c.id, fs.first_solve_us FROM {c_} c LEFT JOIN first_solve fs ON fs.ticket_id = c.id
),
public AS (
  SELECT mm.ticket_id, mm.kind, {ep("mm.created_at")} AS at_us, cs.first_solve_us
  FROM solves cs JOIN {m} mm ON mm.ticket_id = cs.id
  WHERE mm.kind IN ('public_agent', 'public_enduser') AND mm.created_at <= %(as_of)s
    AND mm.ticket_id >= %(first_id)s AND mm.ticket_id <= %(last_id)s
)
SELECT pm.ticket_id,
       MIN(CASE WHEN pm.kind = 'public_agent' THEN pm.at_us END) AS first_reply_us,
       COUNT(CASE WHEN pm.kind = 'public_agent' THEN 1 END) AS replies,
       COUNT(CASE WHEN pm.kind = 'public_agent' AND pm.at_us <= pm.first_solve_us THEN 1 END) AS replies_by_solve,
       MAX(CASE WHEN pm.kind = 'public_enduser' AND pm.at_us <= pm.first_solve_us THEN pm.at_us END)
           AS enduser_by_solve_us
FROM public pm
GROUP BY pm.ticket_id
""",
        ),
        # This computation's calendar intervals, by calendar number.
        (
            i_,
            f"""
SELECT CASE WHEN calendar_key = %(report_key)s THEN 0
            ELSE CAST(substr(calendar_key, %(prefix_end)s) AS INTEGER) END AS cal,
       start_us, end_us, cum_before_us
FROM {ci} WHERE calendar_key LIKE %(key_like)s
""",
        ),
        # Per ticket, from its status rows (creation as ``new``, then each
        # status event, ordered by instant and id; a row lasts until the next
        # row's instant, or as_of) and its first reply, each on the report's
        # calendar 0 and, for a policy calendar of other hours, on that one
        # too. B of every row from its slot's row: the interval starting in
        # the slot if it started by then, else the last one starting before
        # the slot (the slots and the intervals sorted together: a calendar's
        # intervals do not overlap, so their starts, ends and open time before
        # them all grow together, and the running maximum of each is the last
        # interval's). Then, per ticket, the status
        # now, the last solve, the waiting time (B at the next row by LEAD),
        # reopens, the first solve, and B at creation, at the last solve and at
        # the first reply (B never decreases); and from the ticket's queue,
        # assignee, priority, merged, spam and deleted events (ordered the same
        # way) the latest value of each and whether there is one. ``x_*``: on
        # the policy calendar of other hours (NULL without one).
        (
            s_,
            f"""
WITH RECURSIVE slot_numbers(k) AS (
  SELECT CAST(%(first_slot)s AS BIGINT) UNION ALL SELECT k + 1 FROM slot_numbers WHERE k < %(last_slot)s
),
slot_starts AS (
  SELECT cc.cal, sn.k, sn.k * %(slot_us)s AS t, 1 AS is_slot,
         CAST(NULL AS BIGINT) AS start_us, CAST(NULL AS BIGINT) AS end_us, CAST(NULL AS BIGINT) AS cum_before_us
  FROM (SELECT DISTINCT cal FROM {i_}) cc CROSS JOIN slot_numbers sn
  UNION ALL
  SELECT cal, NULL, start_us, 0, start_us, end_us, cum_before_us FROM {i_}
),
slots AS (
  SELECT sc.cal, sc.k, sc.prev_start, sc.prev_end, sc.prev_cum,
         iv.start_us AS in_start, iv.end_us AS in_end, iv.cum_before_us AS in_cum
  FROM (
    SELECT cal, k, is_slot,
           MAX(start_us) OVER w AS prev_start, MAX(end_us) OVER w AS prev_end, MAX(cum_before_us) OVER w AS prev_cum
    FROM slot_starts
    WINDOW w AS (PARTITION BY cal ORDER BY t, is_slot DESC ROWS UNBOUNDED PRECEDING)
  ) sc
  LEFT JOIN {i_} iv ON iv.cal = sc.cal AND iv.start_us / %(slot_us)s = sc.k
  WHERE sc.is_slot = 1
),
points AS (
  {rows(rep, "")}
  UNION ALL
  {rows("c.pol_cal", f"JOIN {c_} c ON c.id = r.ticket_id AND c.pol_cal <> 0")}
),
{ends},
timed AS (
  SELECT p.cal, p.ticket_id, p.at_us, p.seq, p.row_kind, p.status, p.before_status,
         CASE WHEN sl.in_start <= p.at_us THEN sl.in_cum + {clip_on("p.at_us", "sl.in_start", "sl.in_end")}
              ELSE COALESCE(sl.prev_cum + {clip_on("p.at_us", "sl.prev_start", "sl.prev_end")}, 0) END AS b,
         COALESCE(en.b_as_of, 0) AS b_as_of
  FROM points p
  LEFT JOIN slots sl ON sl.cal = p.cal AND sl.k = p.at_us / %(slot_us)s
  LEFT JOIN ends en ON en.cal = p.cal
  UNION ALL
  SELECT 0, ticket_id, at_us, id, {kind_code}, val, NULL, NULL, NULL FROM {e_} WHERE kind IN {other_kinds}
),
spans AS (
  SELECT timed.*,
         LAG(status) OVER w AS prev_status,
         LEAD(at_us) OVER w AS next_us,
         LEAD(b) OVER w AS next_b
  FROM timed
  WINDOW w AS (PARTITION BY ticket_id, cal, row_kind ORDER BY at_us, seq)
)
SELECT h.ticket_id,
       MAX(CASE WHEN {on_rep} AND h.next_us IS NULL THEN h.status END) AS status_now,
       MAX(CASE WHEN {on_rep} AND {solve_row} THEN h.at_us END) AS last_solve_us,
       SUM(CASE WHEN {on_rep} AND h.status IN {waiting}
           THEN COALESCE(h.next_us, %(as_of_us)s) - h.at_us ELSE 0 END) AS rwt_c,
       SUM(CASE WHEN {on_rep} AND h.status IN {waiting} THEN COALESCE(h.next_b, h.b_as_of) - h.b ELSE 0 END) AS rwt_b,
       SUM(CASE WHEN {on_pol} AND h.status IN {waiting} THEN COALESCE(h.next_b, h.b_as_of) - h.b ELSE 0 END) AS x_rwt_b,
       MAX(CASE WHEN {on_rep} AND h.seq = 0 THEN h.b END) AS rep_created_b,
       MAX(CASE WHEN {on_pol} AND h.seq = 0 THEN h.b END) AS x_created_b,
       MAX(CASE WHEN {on_rep} AND {solve_row} THEN h.b END) AS rep_solve_b,
       MAX(CASE WHEN h.cal = 0 AND h.row_kind = 1 THEN h.b END) AS rep_reply_b,
       MAX(CASE WHEN h.cal <> 0 AND h.row_kind = 1 THEN h.b END) AS x_reply_b,
       {has("queue")} AS has_queue, {latest("queue")} AS queue_val,
       {has("assignee")} AS has_assignee, {latest("assignee")} AS assignee_val,
       {latest("priority")} AS priority_val, {has("merged")} AS is_merged,
       {set_aside_latest},
       COUNT(CASE WHEN {on_rep} AND h.before_status IN {solved} AND h.status IN {unsolved} THEN 1 END) AS reopens,
       MIN(CASE WHEN {on_rep} AND h.before_status IN {unsolved} AND h.status IN {solved} THEN h.at_us END)
           AS first_solve_us
FROM spans h
GROUP BY h.ticket_id
""",
        ),
        # The facts: the breakdown keys at as_of, the first reply; then the
        # priorities at the fulfilment instants, SLA terms and states, durations.
        (
            x,
            f"""
WITH keys AS (
  SELECT c.*, s.status_now, s.last_solve_us, s.rwt_c, s.rwt_b, {pol_of("s.rwt_b", "s.x_rwt_b")} AS rwt_pol,
         fr.first_reply_us, s.priority_val, s.rep_created_b, {pol_of("s.rep_created_b", "s.x_created_b")} AS pol_created_b,
         s.rep_solve_b, COALESCE(s.rep_reply_b, 0) AS rep_reply_b,
         {pol_of("COALESCE(s.rep_reply_b, 0)", "s.x_reply_b")} AS pol_reply_b, s.reopens, s.first_solve_us, COALESCE(fr.replies, 0) AS replies,
         COALESCE(fr.replies_by_solve, 0) AS replies_by_solve,
         CASE WHEN fr.enduser_by_solve_us > fr.first_reply_us THEN 1 ELSE 0 END AS late_message,
         CASE WHEN {set_aside_at_as_of} THEN 'excluded'
              WHEN c.initiator = 'outbound' THEN 'outbound'
              WHEN s.is_merged = 1 THEN 'merged'
              ELSE 'in' END AS scope,
         COALESCE(CASE WHEN c.has_created = 1 THEN c.created_priority END, c.current_priority) AS created_priority_key,
         COALESCE(CASE WHEN s.has_queue = 1 THEN s.queue_val
                       WHEN c.has_created = 1 THEN c.created_queue
                       ELSE c.current_queue END, '') AS queue_key,
         CASE WHEN s.has_assignee = 1 THEN s.assignee_val
              WHEN c.has_created = 1 THEN c.created_assignee
              ELSE CAST(c.current_assignee AS TEXT) END AS assignee_val,
         COALESCE(oo.tier, '') AS tier_key,
         CASE WHEN s.status_now IN {solved} THEN 1 ELSE 0 END AS solved_now
  FROM {c_} c
  JOIN {s_} s ON s.ticket_id = c.id
  LEFT JOIN {m_} fr ON fr.ticket_id = c.id
  LEFT JOIN {cu} cc ON cc.id = c.customer_id
  LEFT JOIN {o} oo ON oo.id = cc.organization_id
),
base AS (
  SELECT k.*, COALESCE(uu.email, '') AS agent_key, COALESCE(k.priority_val, k.created_priority_key) AS priority_key
  FROM keys k LEFT JOIN {u} uu ON uu.id = CAST(k.assignee_val AS INTEGER)
),
{ends},
prio_at AS (
  SELECT ticket_id, which, val FROM (
    SELECT pe.ticket_id, w.which, pe.val,
           ROW_NUMBER() OVER (PARTITION BY pe.ticket_id, w.which ORDER BY pe.at_us DESC, pe.id DESC) AS rn
    FROM {e_} pe
    JOIN {s_} ss ON ss.ticket_id = pe.ticket_id
    LEFT JOIN {m_} mf ON mf.ticket_id = pe.ticket_id
    JOIN (SELECT 'reply' AS which UNION ALL SELECT 'solve') w ON 1 = 1
    WHERE pe.kind = 'priority'
      AND pe.at_us <= CASE WHEN w.which = 'reply' THEN mf.first_reply_us ELSE ss.last_solve_us END
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
         COALESCE(en.b_before_as_of, 0) AS pol_before_as_of_b
  FROM prio k
  LEFT JOIN {st} fr ON fr.policy_id = k.sla_policy_id
       AND fr.priority = CASE WHEN k.first_reply_us IS NOT NULL THEN k.reply_priority ELSE k.priority_key END
  LEFT JOIN {st} rs ON rs.policy_id = k.sla_policy_id
       AND rs.priority = CASE WHEN k.solved_now = 1 THEN k.solve_priority ELSE k.priority_key END
  LEFT JOIN ends en ON en.cal = k.pol_cal
)
SELECT c.id, c.scope, c.channel, c.queue_key, c.agent_key, c.priority_key, c.tier_key, c.solved_now,
       c.first_reply_us, c.last_solve_us, c.first_solve_us, c.replies, c.reopens, c.replies_by_solve, c.late_message,
       CASE WHEN c.first_reply_us IS NOT NULL THEN {greatest("c.rep_reply_b - c.rep_created_b", "0")} END AS frt_b,
       c.first_reply_us - c.created_us AS frt_c,
       CASE WHEN c.solved_now = 1 THEN {greatest("c.rep_solve_b - c.rep_created_b", "0")} END AS full_b,
       CASE WHEN c.solved_now = 1 THEN c.last_solve_us - c.created_us END AS full_c,
       CASE WHEN c.solved_now = 1 THEN c.rwt_b END AS rwt_b,
       CASE WHEN c.solved_now = 1 THEN c.rwt_c END AS rwt_c,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.fr_minutes IS NULL THEN NULL
            WHEN c.first_reply_us IS NOT NULL THEN
                 CASE WHEN {pol_elapsed("c.pol_created_b", "c.pol_reply_b", "c.created_us", "c.first_reply_us", "c.fr_hours")}
                           <= {frt_target}
                      THEN 'achieved' ELSE 'breached' END
            WHEN c.solved_now = 1 THEN 'cancelled'
            WHEN {pol_elapsed("c.pol_created_b", "c.pol_before_as_of_b", "c.created_us", "(%(as_of_us)s - 1)", "c.fr_hours")}
                 >= {frt_target} THEN 'breached'
            ELSE 'active' END AS fr_state,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.res_minutes IS NULL THEN NULL
            WHEN (CASE WHEN c.res_hours = 'business' THEN c.rwt_pol ELSE c.rwt_c END) > {res_target} THEN 'breached'
            WHEN c.solved_now = 1 THEN 'achieved'
            WHEN c.status_now = 'pending' THEN 'paused'
            ELSE 'active' END AS res_state
FROM sla c
""",
        ),
    ]


_DAY_US = 86_400_000_000


def _slots(cursor: Any, intervals: str, *, first_us: int, last_us: int) -> dict[str, int]:
    """The slots that business time is looked up by: slot k is [k * slot_us, (k + 1) * slot_us).

    ``slot_us`` is the shortest step between two starts of intervals of one
    calendar (a day when no calendar has two), so no slot holds two starts,
    and B at an instant is found from its slot's row alone: the interval
    starting in the slot by then, else the last one starting before the
    slot. The slots run from the first interval or ``first_us`` (the earlier)
    to ``last_us`` (as_of, which no instant of the facts passes); before
    them no interval has started, so B is 0.
    """
    cursor.execute(
        f"SELECT MIN(start_us - previous_us), MIN(start_us) FROM ("
        f" SELECT start_us, LAG(start_us) OVER (PARTITION BY cal ORDER BY start_us) AS previous_us FROM {intervals}"
        ") steps"
    )
    step, first_start = cursor.fetchone()
    slot_us = int(step) if step else _DAY_US
    first = min(first_us, int(first_start)) if first_start is not None else first_us
    return {"slot_us": slot_us, "first_slot": first // slot_us, "last_slot": max(last_us, first) // slot_us}


@contextmanager
def ticket_facts(
    *,
    start_utc: datetime,
    end_utc: datetime,
    as_of: datetime,
    report_key: str,
    key_prefix: str,
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
            if name == f"{table}_i":
                params.update(
                    _slots(
                        cursor, name, first_us=min(epoch_us(start_utc), params["as_of_us"]), last_us=params["as_of_us"]
                    )
                )
            if vendor == "postgresql":
                # Temporary tables get no statistics otherwise; the next joins are planned on them.
                cursor.execute(f"ANALYZE {name}")
    # On error the enclosing transaction's rollback removes the tables.
    yield Facts(
        table=table,
        as_of=as_of,
        events=f"{table}_e",
        messages=f"{table}_m",
        cohort=f"{table}_c",
        first_id=params["first_id"],
        last_id=params["last_id"],
    )
    with connection.cursor() as cursor:
        for name, _select in reversed(statements):
            cursor.execute(f"DROP TABLE {name}")
