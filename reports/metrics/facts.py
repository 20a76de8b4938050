"""One row per ticket of a report's cohort: the facts every ticket figure is aggregated from.

``ticket_facts`` writes, with a few set-based SQL statements (identical text
on PostgreSQL and SQLite apart from the few functions of ``reports.sql``), a
temporary table with, per ticket created in the period and by ``as_of``:

* ``scope``: ``in`` (counted by every service metric), ``outbound``,
  ``merged`` (merged into another ticket by ``as_of``) or ``excluded`` (spam,
  deleted), docs/metrics.md#in-scope;
* the breakdown keys at ``as_of``: channel, queue slug, assignee email (``""``
  unassigned), priority, organization tier (``""`` without one);
* the status at ``as_of`` and the durations in microseconds, in business time
  on the report's calendar (``*_business_us``) and in calendar time
  (``*_calendar_us``): first reply, full resolution and requester wait (the
  last two only for tickets solved at ``as_of``);
* the SLA state of each target at ``as_of`` (docs/metrics.md#sla-outcomes;
  NULL when the ticket has no policy snapshot or its policy sets no such
  target for the priority);
* for the quality figures: the instants of the first reply, the first and the
  last solve, the numbers of public replies (in all and by the first solve)
  and of reopens by ``as_of``, and whether the customer wrote between the
  first reply and the first solve (``late_message``: the customer's last
  message by the first solve is later than the first reply).

The status history is the ``status`` TicketEvents after creation as ``new``,
ordered by (instant, id); events and messages after ``as_of`` are ignored.

How: one function per working table, each a SELECT that ``ticket_facts``
stores as a temporary table, in this order:

1. ``_cohort_select``: the cohort's tickets (what the ``created`` event
   recorded, the flags at ``as_of``);
2. ``_events_select``: their timeline events by ``as_of``;
3. ``_messages_select``: their public messages summed per ticket;
4. ``_intervals_select``: the open intervals of every calendar the report needs;
5. ``_timeline_select``: one pass over each ticket's status rows, first reply
   and key events, with business time on each calendar;
6. ``_facts_select``: the facts table itself.

The reads of the domain tables are bounded to the cohort's ticket-id range
(index ranges, not whole tables); everything else is joins, window functions
and grouping over the working tables, never a lookup per ticket and figure.
Business time: B(t), the business time elapsed on a calendar up to an instant
(its *clock*), comes from the last open interval starting at or before t
(``reports.sql``), found through the instant's slot by one hash join on a
small table of slots (``_slots``); a business duration is the difference of
two clock readings. The working tables of the cohort, its events and its
message sums stay until the block ends, for the quality figures
(``reports.metrics.quality``).
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
from servicedesk.tickets.models import Customer, Message, Organization, Queue, Session, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES, Status

# Breakdown name -> column of the facts table; None is the whole cohort.
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
    events of EVENT_KINDS by ``as_of`` (ticket_id, kind, id, at_us,
    after_text, and before_text for status events). ``messages``: per ticket
    with public messages by ``as_of``: ticket_id, first_reply_us, replies,
    replies_by_solve, last_customer_message_by_solve_us. ``cohort``: the
    cohort's ticket columns (id, customer_id, topic_id, same_issue_as_id,
    ...). ``first_id`` and ``last_id``: the cohort's lowest and highest ticket
    ids (None without tickets), to bound other reads.
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


# The rows of the timeline pass by kind: status rows (creation and status
# events), the first reply, and the events whose latest value is a key or a
# flag that sets the ticket aside.
ROW_KINDS = {"status": 0, "reply": 1, "queue": 2, "assignee": 3, "priority": 4, "merged": 5, "spam": 6, "deleted": 7}

# The event kinds copied into the events table: every row kind but the reply.
EVENT_KINDS = sql_list(kind for kind in ROW_KINDS if kind != "reply")

# The flags a ticket is set aside by (excluded from every service metric), each
# with its events: (column, event kind).
SET_ASIDE = tuple((column, kind) for kind, column in TicketEvent.SET_ASIDE.items())

# A JSON true as the text of ``json_text_sql`` on either database ('true', or SQLite's 1).
TRUE_TEXTS = "('1', 'true')"

# Calendar number 0 in the working tables: the report's calendar, and every
# policy calendar with the same hours (whose business time is the same).
REPORT_CALENDAR = "0"

MICROSECONDS_PER_MINUTE = 60_000_000


@dataclass(frozen=True)
class _Tables:
    """The names of one computation's temporary tables."""

    facts: str

    @property
    def cohort(self) -> str:
        return f"{self.facts}_cohort"

    @property
    def events(self) -> str:
        return f"{self.facts}_events"

    @property
    def messages(self) -> str:
        return f"{self.facts}_messages"

    @property
    def intervals(self) -> str:
        return f"{self.facts}_intervals"

    @property
    def timeline(self) -> str:
        return f"{self.facts}_timeline"


def _open_time_until(instant: str, start: str, end: str, vendor: str) -> str:
    """The open time of the interval [start, end) up to ``instant`` (0 before it, its length after it)."""
    return least_sql(greatest_sql(f"{instant} - {start}", "0", vendor), f"{end} - {start}", vendor)


def _clock_at_as_of(intervals: str, vendor: str) -> str:
    """A CTE ``clocks``: per calendar number, its clock at as_of and just before it.

    The clock (business time elapsed) at an instant is the largest over the
    intervals starting by then, since it never decreases; 0 without one.
    """

    def clock(instant: str) -> str:
        return f"ci.business_before_us + {_open_time_until(instant, 'ci.start_us', 'ci.end_us', vendor)}"

    return f"""clocks AS (
  SELECT ci.calendar_number,
         MAX({clock("%(as_of_us)s")}) AS clock_at_as_of_us,
         MAX(CASE WHEN ci.start_us <= %(as_of_us)s - 1 THEN {clock("(%(as_of_us)s - 1)")} END) AS clock_before_as_of_us
  FROM {intervals} ci WHERE ci.start_us <= %(as_of_us)s GROUP BY ci.calendar_number
)"""


def _cohort_select(tables: _Tables, vendor: str, shared_calendars: frozenset[int]) -> str:
    """The cohort: the tickets created in [start, end) by as_of, one row each.

    Columns: the ticket's own (id, channel, initiator, customer, topic,
    same-issue link, SLA policy, current priority, queue slug and assignee);
    ``policy_calendar``: the number of the calendar its SLA is measured on
    (0 when it has the report calendar's hours, the calendar's id otherwise,
    NULL without one); what its ``created`` event recorded
    (``has_created_event``, ``created_priority``, ``created_queue``,
    ``created_assignee``); ``created_us``; and per flag that sets a ticket
    aside, ``<kind>_flag_default``: the flag at as_of unless an event by then
    says otherwise (the ``before`` of the first such event after as_of, else
    the column).

    Indexes: ``ticket_created_id`` for the creation range (a small table may
    be read whole), ``event_kind_at`` for the flag events after as_of and
    ``event_ticket_created`` for the ``created`` events.
    """
    ticket, event = Ticket._meta.db_table, TicketEvent._meta.db_table
    queue, policy = Queue._meta.db_table, SlaPolicy._meta.db_table
    policy_calendar = "COALESCE(t.sla_calendar_id, pp.calendar_id)"
    if shared_calendars:
        ids = ", ".join(str(int(pk)) for pk in sorted(shared_calendars))
        policy_calendar = f"CASE WHEN {policy_calendar} IN ({ids}) THEN {REPORT_CALENDAR} ELSE {policy_calendar} END"
    set_aside_kinds = sql_list(kind for _column, kind in SET_ASIDE)
    before_first_later_event = ", ".join(
        f"MAX(CASE WHEN kind = '{kind}' THEN before_text END) AS {kind}_before" for _column, kind in SET_ASIDE
    )
    flag_defaults = ",\n       ".join(
        f"CASE WHEN later.{kind}_before IS NOT NULL"
        f" THEN (CASE WHEN later.{kind}_before IN {TRUE_TEXTS} THEN 1 ELSE 0 END)"
        f" WHEN t.{column} THEN 1 ELSE 0 END AS {kind}_flag_default"
        for column, kind in SET_ASIDE
    )
    return f"""
SELECT t.id, t.channel, t.initiator, t.is_spam, t.is_deleted, t.customer_id, t.topic_id, t.same_issue_as_id,
       t.sla_policy_id, {policy_calendar} AS policy_calendar,
       t.priority AS current_priority, qq.slug AS current_queue, t.assignee_id AS current_assignee,
       CASE WHEN ce.id IS NULL THEN 0 ELSE 1 END AS has_created_event,
       {json_key_text_sql("ce.after", "priority", vendor)} AS created_priority,
       {json_key_text_sql("ce.after", "queue", vendor)} AS created_queue,
       {json_key_text_sql("ce.after", "assignee", vendor)} AS created_assignee,
       {epoch_us_sql("t.created_at", vendor)} AS created_us,
       {flag_defaults}
FROM {ticket} t
JOIN {queue} qq ON qq.id = t.queue_id
LEFT JOIN {policy} pp ON pp.id = t.sla_policy_id
LEFT JOIN (
  SELECT ticket_id, {before_first_later_event} FROM (
    SELECT se.ticket_id, se.kind, CAST({json_text_sql("se.before", vendor)} AS TEXT) AS before_text,
           ROW_NUMBER() OVER (PARTITION BY se.ticket_id, se.kind ORDER BY se.at, se.id) AS rn
    FROM {event} se
    WHERE se.kind IN {set_aside_kinds} AND se.at > %(as_of)s
      AND se.ticket_id >= %(first_id)s AND se.ticket_id <= %(last_id)s
  ) first_later WHERE rn = 1 GROUP BY ticket_id
) later ON later.ticket_id = t.id
LEFT JOIN {event} ce ON ce.ticket_id = t.id AND ce.kind = 'created'
     AND ce.ticket_id >= %(first_id)s AND ce.ticket_id <= %(last_id)s
WHERE t.created_at >= %(start)s AND t.created_at < %(end)s AND t.created_at <= %(as_of)s
"""


def _events_select(tables: _Tables, vendor: str) -> str:
    """The cohort's events of EVENT_KINDS by as_of: ticket_id, kind, id, at_us, after_text, before_text.

    ``after_text`` and ``before_text`` are the JSON values as text; the
    ``before`` is kept for status events only (reopens and solves need it).
    Index: ``event_ticket_timeline`` (ticket id, partial on these kinds), in
    the cohort's ticket-id range.
    """
    event = TicketEvent._meta.db_table
    return f"""
SELECT ev.ticket_id, ev.kind, ev.id, {epoch_us_sql("ev.at", vendor)} AS at_us,
       {json_text_sql("ev.after", vendor)} AS after_text,
       CASE WHEN ev.kind = 'status' THEN {json_text_sql("ev.before", vendor)} END AS before_text
FROM {tables.cohort} c JOIN {event} ev ON ev.ticket_id = c.id
WHERE ev.kind IN {EVENT_KINDS} AND ev.at <= %(as_of)s AND ev.ticket_id >= %(first_id)s AND ev.ticket_id <= %(last_id)s
"""


def _attributed(table: str, alias: str, columns: str, where: str) -> str:
    """The rows of ``table`` counted on the tickets of ``solves``: ``ticket_id`` (the ticket a row
    counts on) and ``columns``, the rows filtered by ``where`` (both over ``alias``).

    A message or session that a merge or a split moved to another ticket
    counts on the ticket it was first moved off (``moved_from``), as of any
    instant (docs/metrics.md#merges): the rows never moved are found by their
    ticket index as before, the few moved ones by the partial
    ``*_moved_from`` index, and the two halves joined by UNION ALL.
    """
    return f"""  SELECT {alias}.ticket_id AS ticket_id, {columns}
  FROM solves cs JOIN {table} {alias} ON {alias}.ticket_id = cs.id
  WHERE {alias}.moved_from_id IS NULL AND {where.format(owner=f"{alias}.ticket_id")}
  UNION ALL
  SELECT {alias}.moved_from_id AS ticket_id, {columns}
  FROM solves cs JOIN {table} {alias} ON {alias}.moved_from_id = cs.id
  WHERE {alias}.moved_from_id IS NOT NULL AND {where.format(owner=f"{alias}.moved_from_id")}"""


def _messages_select(tables: _Tables, vendor: str) -> str:
    """Per ticket with public messages by as_of, in one pass over the messages.

    Columns: ticket_id, ``first_reply_us`` (the first ``public_agent``
    message), ``replies``, ``replies_by_solve`` (those at or before the first
    solve), ``last_customer_message_by_solve_us`` (the customer's last
    message at or before the first solve) and ``first_session_end_us``: for a
    chat or call, the end of its first answered session plus its
    after-contact work (docs/metrics.md#fcr: that session is the one
    interaction), else NULL. A moved message or session counts on the ticket
    it was written on (``_attributed``). Index: ``message_ticket_created`` or
    the message's ticket index, in the cohort's ticket-id range, and
    ``message_moved_from``; the sessions by their ticket index and
    ``session_moved_from``.
    """
    message, session = Message._meta.db_table, Session._meta.db_table
    public = _attributed(
        message,
        "mm",
        f"mm.kind, {epoch_us_sql('mm.created_at', vendor)} AS at_us, cs.first_solve_us",
        "mm.kind IN ('public_agent', 'public_enduser') AND mm.created_at <= %(as_of)s"
        " AND {owner} >= %(first_id)s AND {owner} <= %(last_id)s",
    )
    answered = _attributed(
        session,
        "se",
        f"se.id, se.answered_at, {epoch_us_sql('se.ended_at', vendor)}"
        " + CAST(se.after_work_seconds AS BIGINT) * 1000000 AS end_us",
        "se.answered_at IS NOT NULL AND se.answered_at <= %(as_of)s"
        " AND se.ended_at IS NOT NULL AND se.ended_at <= %(as_of)s"
        " AND {owner} >= %(first_id)s AND {owner} <= %(last_id)s",
    )
    return f"""
WITH first_solve AS (
  SELECT ticket_id, MIN(at_us) AS first_solve_us FROM {tables.events}
  WHERE kind = 'status' AND before_text IN {UNSOLVED} AND after_text IN {SOLVED} GROUP BY ticket_id
),
solves AS (
  SELECT c.id, fs.first_solve_us FROM {tables.cohort} c LEFT JOIN first_solve fs ON fs.ticket_id = c.id
),
public AS (
{public}
),
sessions_answered AS (
{answered}
),
sessions_ended AS (
  SELECT sa.ticket_id, sa.end_us, ROW_NUMBER() OVER (PARTITION BY sa.ticket_id ORDER BY sa.answered_at, sa.id) AS rn
  FROM sessions_answered sa
),
first_session AS (
  SELECT ticket_id, end_us FROM sessions_ended WHERE rn = 1
)
SELECT pm.ticket_id,
       MIN(CASE WHEN pm.kind = 'public_agent' THEN pm.at_us END) AS first_reply_us,
       COUNT(CASE WHEN pm.kind = 'public_agent' THEN 1 END) AS replies,
       COUNT(CASE WHEN pm.kind = 'public_agent' AND pm.at_us <= pm.first_solve_us THEN 1 END) AS replies_by_solve,
       MAX(CASE WHEN pm.kind = 'public_enduser' AND pm.at_us <= pm.first_solve_us THEN pm.at_us END)
           AS last_customer_message_by_solve_us,
       MAX(fse.end_us) AS first_session_end_us
FROM public pm
LEFT JOIN first_session fse ON fse.ticket_id = pm.ticket_id
GROUP BY pm.ticket_id
"""


def _intervals_select(tables: _Tables, vendor: str) -> str:
    """This computation's calendar intervals by calendar number (0: the report's; else the policy calendar's id).

    Columns: calendar_number, start_us, end_us, ``business_before_us`` (the
    open time of the calendar's earlier intervals). Read by the key prefix of
    the materialised intervals (``reports_interval_key_start`` serves the
    lookups of ``reports.sql``; this prefix match reads the rows of the
    computation's calendars, a few per day of the span).
    """
    return f"""
SELECT CASE WHEN calendar_key = %(report_key)s THEN {REPORT_CALENDAR}
            ELSE CAST(substr(calendar_key, %(prefix_end)s) AS INTEGER) END AS calendar_number,
       start_us, end_us, cum_before_us AS business_before_us
FROM {INTERVAL_TABLE} WHERE calendar_key LIKE %(key_like)s
"""


def _timeline_select(tables: _Tables, vendor: str) -> str:
    """Per ticket, one pass over its timeline: status rows, first reply and key events.

    The status rows are the creation as ``new``, then each status event,
    ordered by instant and id; a row lasts until the next row's instant, or
    as_of. The status rows and the first reply are placed on the report's
    calendar 0 and, for a policy calendar of other hours, on that one too;
    each gets its clock reading from its slot's row: the interval starting in
    the slot if it started by then, else the last one starting before the
    slot (the slots and the intervals sorted together: a calendar's intervals
    do not overlap, so their starts, ends and open time before them all grow
    together, and the running maximum of each is the last interval's).

    Columns: ``status_at_as_of``, ``last_solve_us``, ``first_solve_us``,
    ``reopens``; ``requester_wait_calendar_us`` and
    ``requester_wait_business_us`` (the time in new, open and on hold, the
    business one from the clock at the next row by LEAD);
    ``clock_at_creation_us``, ``clock_at_last_solve_us`` and
    ``clock_at_first_reply_us`` on the report's calendar; the
    ``other_hours_*`` twins on a policy calendar of other hours (NULL without
    one); and from the ticket's queue, assignee, priority, merged, spam and
    deleted events (ordered the same way) ``latest_<kind>`` and
    ``has_<kind>_event``.

    Reads the working tables only (hash joins and one sort by ticket).
    """
    on_report = f"h.calendar_number = {REPORT_CALENDAR} AND h.row_kind = {ROW_KINDS['status']}"
    on_policy = f"h.calendar_number <> {REPORT_CALENDAR} AND h.row_kind = {ROW_KINDS['status']}"
    solve_row = f"h.status IN {SOLVED} AND (h.previous_status IS NULL OR h.previous_status NOT IN {SOLVED})"
    other_kinds = sql_list(kind for kind in ROW_KINDS if kind not in ("status", "reply"))
    kind_code = (
        "CASE kind "
        + " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in ROW_KINDS.items() if kind not in ("status", "reply"))
        + " END"
    )

    def rows(calendar: str, join: str) -> str:
        """The status rows and the first reply of each ticket (``join`` may keep some), on calendar ``calendar``."""
        return f"""SELECT {calendar} AS calendar_number, r.* FROM (
    SELECT c0.id AS ticket_id, c0.created_us AS at_us, 0 AS seq, {ROW_KINDS["status"]} AS row_kind,
           CAST('new' AS TEXT) AS status, CAST(NULL AS TEXT) AS before_status FROM {tables.cohort} c0
    UNION ALL SELECT ticket_id, at_us, id, {ROW_KINDS["status"]}, after_text, before_text
    FROM {tables.events} WHERE kind = 'status'
    UNION ALL SELECT ticket_id, first_reply_us, 0, {ROW_KINDS["reply"]}, NULL, NULL
    FROM {tables.messages} WHERE first_reply_us IS NOT NULL
  ) r {join}"""

    def open_time(instant: str, start: str, end: str) -> str:
        return _open_time_until(instant, start, end, vendor)

    def latest(kind: str) -> str:
        """The ``after`` text of the ticket's last event of ``kind`` by as_of (NULL without one)."""
        return f"MAX(CASE WHEN h.row_kind = {ROW_KINDS[kind]} AND h.next_us IS NULL THEN h.status END)"

    def has(kind: str) -> str:
        return f"MAX(CASE WHEN h.row_kind = {ROW_KINDS[kind]} THEN 1 ELSE 0 END)"

    set_aside_latest = ",\n       ".join(
        f"{has(kind)} AS has_{kind}_event, CAST({latest(kind)} AS TEXT) AS latest_{kind}" for _column, kind in SET_ASIDE
    )
    waiting_time = "COALESCE(h.next_clock_us, h.clock_at_as_of_us) - h.clock_us"
    return f"""
WITH RECURSIVE slot_numbers(k) AS (
  SELECT CAST(%(first_slot)s AS BIGINT) UNION ALL SELECT k + 1 FROM slot_numbers WHERE k < %(last_slot)s
),
slots_and_starts AS (
  SELECT cc.calendar_number, sn.k, sn.k * %(slot_us)s AS at_us, 1 AS is_slot,
         CAST(NULL AS BIGINT) AS start_us, CAST(NULL AS BIGINT) AS end_us,
         CAST(NULL AS BIGINT) AS business_before_us
  FROM (SELECT DISTINCT calendar_number FROM {tables.intervals}) cc CROSS JOIN slot_numbers sn
  UNION ALL
  SELECT calendar_number, NULL, start_us, 0, start_us, end_us, business_before_us FROM {tables.intervals}
),
slots AS (
  SELECT sc.calendar_number, sc.k,
         sc.previous_start_us, sc.previous_end_us, sc.previous_business_before_us,
         iv.start_us AS own_start_us, iv.end_us AS own_end_us, iv.business_before_us AS own_business_before_us
  FROM (
    SELECT calendar_number, k, is_slot,
           MAX(start_us) OVER w AS previous_start_us, MAX(end_us) OVER w AS previous_end_us,
           MAX(business_before_us) OVER w AS previous_business_before_us
    FROM slots_and_starts
    WINDOW w AS (PARTITION BY calendar_number ORDER BY at_us, is_slot DESC ROWS UNBOUNDED PRECEDING)
  ) sc
  LEFT JOIN {tables.intervals} iv ON iv.calendar_number = sc.calendar_number AND iv.start_us / %(slot_us)s = sc.k
  WHERE sc.is_slot = 1
),
points AS (
  {rows(REPORT_CALENDAR, "")}
  UNION ALL
  {rows("c.policy_calendar", f"JOIN {tables.cohort} c ON c.id = r.ticket_id AND c.policy_calendar <> {REPORT_CALENDAR}")}
),
{_clock_at_as_of(tables.intervals, vendor)},
timed AS (
  SELECT p.calendar_number, p.ticket_id, p.at_us, p.seq, p.row_kind, p.status, p.before_status,
         CASE WHEN sl.own_start_us <= p.at_us
              THEN sl.own_business_before_us + {open_time("p.at_us", "sl.own_start_us", "sl.own_end_us")}
              ELSE COALESCE(sl.previous_business_before_us
                            + {open_time("p.at_us", "sl.previous_start_us", "sl.previous_end_us")}, 0)
         END AS clock_us,
         COALESCE(cl.clock_at_as_of_us, 0) AS clock_at_as_of_us
  FROM points p
  LEFT JOIN slots sl ON sl.calendar_number = p.calendar_number AND sl.k = p.at_us / %(slot_us)s
  LEFT JOIN clocks cl ON cl.calendar_number = p.calendar_number
  UNION ALL
  SELECT {REPORT_CALENDAR}, ticket_id, at_us, id, {kind_code}, after_text, NULL, NULL, NULL
  FROM {tables.events} WHERE kind IN {other_kinds}
),
spans AS (
  SELECT timed.*,
         LAG(status) OVER w AS previous_status,
         LEAD(at_us) OVER w AS next_us,
         LEAD(clock_us) OVER w AS next_clock_us
  FROM timed
  WINDOW w AS (PARTITION BY ticket_id, calendar_number, row_kind ORDER BY at_us, seq)
)
SELECT h.ticket_id,
       MAX(CASE WHEN {on_report} AND h.next_us IS NULL THEN h.status END) AS status_at_as_of,
       MAX(CASE WHEN {on_report} AND {solve_row} THEN h.at_us END) AS last_solve_us,
       SUM(CASE WHEN {on_report} AND h.status IN {WAITING}
           THEN COALESCE(h.next_us, %(as_of_us)s) - h.at_us ELSE 0 END) AS requester_wait_calendar_us,
       SUM(CASE WHEN {on_report} AND h.status IN {WAITING} THEN {waiting_time} ELSE 0 END)
           AS requester_wait_business_us,
       SUM(CASE WHEN {on_policy} AND h.status IN {WAITING} THEN {waiting_time} ELSE 0 END)
           AS other_hours_requester_wait_us,
       MAX(CASE WHEN {on_report} AND h.seq = 0 THEN h.clock_us END) AS clock_at_creation_us,
       MAX(CASE WHEN {on_policy} AND h.seq = 0 THEN h.clock_us END) AS other_hours_clock_at_creation_us,
       MAX(CASE WHEN {on_report} AND {solve_row} THEN h.clock_us END) AS clock_at_last_solve_us,
       MAX(CASE WHEN h.calendar_number = {REPORT_CALENDAR} AND h.row_kind = {ROW_KINDS["reply"]} THEN h.clock_us END)
           AS clock_at_first_reply_us,
       MAX(CASE WHEN h.calendar_number <> {REPORT_CALENDAR} AND h.row_kind = {ROW_KINDS["reply"]} THEN h.clock_us END)
           AS other_hours_clock_at_first_reply_us,
       {has("queue")} AS has_queue_event, {latest("queue")} AS latest_queue,
       {has("assignee")} AS has_assignee_event, {latest("assignee")} AS latest_assignee,
       {latest("priority")} AS latest_priority, {has("merged")} AS merged_by_as_of,
       {set_aside_latest},
       COUNT(CASE WHEN {on_report} AND h.before_status IN {SOLVED} AND h.status IN {UNSOLVED} THEN 1 END) AS reopens,
       MIN(CASE WHEN {on_report} AND h.before_status IN {UNSOLVED} AND h.status IN {SOLVED} THEN h.at_us END)
           AS first_solve_us
FROM spans h
GROUP BY h.ticket_id
"""


def _facts_select(tables: _Tables, vendor: str) -> str:
    """The facts table: per ticket, the breakdown keys at as_of, the figures' inputs, durations and SLA states.

    In steps: ``keyed`` joins the cohort, its timeline and message sums and
    decides the scope and the keys at as_of; ``named`` adds the assignee's
    email; ``priority_at`` finds the priority in force at the first reply
    and at the last solve (the last priority event by then, else the
    created one); ``targeted`` joins the SLA targets that apply
    (docs/metrics.md#sla-policy) and the clock just before as_of on the
    policy's calendar. The ``policy_*`` readings are the report calendar's
    when the policy calendar has its hours, 0 without a policy calendar,
    else the timeline's ``other_hours_*``.

    Indexes: ``sla_target_policy_priority_unique`` for the targets, primary
    keys for customers, organizations and users; the rest are the working
    tables.
    """
    customer, organization = Customer._meta.db_table, Organization._meta.db_table
    user, target = User._meta.db_table, SlaTarget._meta.db_table

    def greatest(a: str, b: str) -> str:
        return greatest_sql(a, b, vendor)

    def on_policy_calendar(report_value: str, other_hours_value: str) -> str:
        return (
            f"(CASE WHEN c.policy_calendar = {REPORT_CALENDAR} THEN {report_value}"
            f" WHEN c.policy_calendar IS NULL THEN 0 ELSE COALESCE({other_hours_value}, 0) END)"
        )

    def policy_elapsed(start_clock: str, end_clock: str, start_us: str, end_us: str, hours_kind: str) -> str:
        """A target's elapsed time: business (clock difference) or calendar, as the target counts."""
        business = greatest(f"{end_clock} - {start_clock}", "0")
        return f"(CASE WHEN {hours_kind} = 'business' THEN {business} ELSE {end_us} - {start_us} END)"

    set_aside_at_as_of = " OR ".join(
        f"(CASE WHEN s.has_{kind}_event = 1 THEN (CASE WHEN s.latest_{kind} IN {TRUE_TEXTS} THEN 1 ELSE 0 END)"
        f" ELSE c.{kind}_flag_default END) = 1"
        for _column, kind in SET_ASIDE
    )
    first_reply_target = f"(CAST(c.first_reply_target_minutes AS BIGINT) * {MICROSECONDS_PER_MINUTE})"
    resolution_target = f"(CAST(c.resolution_target_minutes AS BIGINT) * {MICROSECONDS_PER_MINUTE})"
    first_reply_elapsed = policy_elapsed(
        "c.policy_clock_at_creation_us",
        "c.policy_clock_at_first_reply_us",
        "c.created_us",
        "c.first_reply_us",
        "c.first_reply_hours_kind",
    )
    elapsed_before_as_of = policy_elapsed(
        "c.policy_clock_at_creation_us",
        "c.policy_clock_before_as_of_us",
        "c.created_us",
        "(%(as_of_us)s - 1)",
        "c.first_reply_hours_kind",
    )
    return f"""
WITH keyed AS (
  SELECT c.*, s.status_at_as_of, s.last_solve_us, s.requester_wait_calendar_us, s.requester_wait_business_us,
         {on_policy_calendar("s.requester_wait_business_us", "s.other_hours_requester_wait_us")}
             AS policy_requester_wait_us,
         fr.first_reply_us, s.latest_priority, s.clock_at_creation_us,
         {on_policy_calendar("s.clock_at_creation_us", "s.other_hours_clock_at_creation_us")}
             AS policy_clock_at_creation_us,
         s.clock_at_last_solve_us, COALESCE(s.clock_at_first_reply_us, 0) AS clock_at_first_reply_us,
         {on_policy_calendar("COALESCE(s.clock_at_first_reply_us, 0)", "s.other_hours_clock_at_first_reply_us")}
             AS policy_clock_at_first_reply_us,
         s.reopens, s.first_solve_us, COALESCE(fr.replies, 0) AS replies,
         -- A chat or call is one interaction, its first session: (a) "exactly one reply by the first solve"
         -- becomes "solved by the end of that session", (b) counts customer messages after it.
         CASE WHEN fr.first_session_end_us IS NULL OR COALESCE(fr.replies_by_solve, 0) = 0
              THEN COALESCE(fr.replies_by_solve, 0)
              WHEN s.first_solve_us <= fr.first_session_end_us THEN 1 ELSE 2 END AS replies_by_solve,
         CASE WHEN fr.last_customer_message_by_solve_us
                   > COALESCE(fr.first_session_end_us, fr.first_reply_us) THEN 1 ELSE 0 END AS late_message,
         CASE WHEN {set_aside_at_as_of} THEN 'excluded'
              WHEN c.initiator = 'outbound' THEN 'outbound'
              WHEN s.merged_by_as_of = 1 THEN 'merged'
              ELSE 'in' END AS scope,
         COALESCE(CASE WHEN c.has_created_event = 1 THEN c.created_priority END, c.current_priority)
             AS created_priority_key,
         COALESCE(CASE WHEN s.has_queue_event = 1 THEN s.latest_queue
                       WHEN c.has_created_event = 1 THEN c.created_queue
                       ELSE c.current_queue END, '') AS queue_key,
         CASE WHEN s.has_assignee_event = 1 THEN s.latest_assignee
              WHEN c.has_created_event = 1 THEN c.created_assignee
              ELSE CAST(c.current_assignee AS TEXT) END AS assignee_at_as_of,
         COALESCE(oo.tier, '') AS tier_key,
         CASE WHEN s.status_at_as_of IN {SOLVED} THEN 1 ELSE 0 END AS solved_now
  FROM {tables.cohort} c
  JOIN {tables.timeline} s ON s.ticket_id = c.id
  LEFT JOIN {tables.messages} fr ON fr.ticket_id = c.id
  LEFT JOIN {customer} cc ON cc.id = c.customer_id
  LEFT JOIN {organization} oo ON oo.id = cc.organization_id
),
named AS (
  SELECT k.*, COALESCE(uu.email, '') AS agent_key, COALESCE(k.latest_priority, k.created_priority_key) AS priority_key
  FROM keyed k LEFT JOIN {user} uu ON uu.id = CAST(k.assignee_at_as_of AS INTEGER)
),
{_clock_at_as_of(tables.intervals, vendor)},
priority_events_by AS (
  SELECT ticket_id, fulfilment, after_text FROM (
    SELECT pe.ticket_id, w.fulfilment, pe.after_text,
           ROW_NUMBER() OVER (PARTITION BY pe.ticket_id, w.fulfilment ORDER BY pe.at_us DESC, pe.id DESC) AS rn
    FROM {tables.events} pe
    JOIN {tables.timeline} ss ON ss.ticket_id = pe.ticket_id
    LEFT JOIN {tables.messages} mf ON mf.ticket_id = pe.ticket_id
    JOIN (SELECT 'reply' AS fulfilment UNION ALL SELECT 'solve') w ON 1 = 1
    WHERE pe.kind = 'priority'
      AND pe.at_us <= CASE WHEN w.fulfilment = 'reply' THEN mf.first_reply_us ELSE ss.last_solve_us END
  ) ranked WHERE rn = 1
),
priority_at AS (
  SELECT k.*,
         COALESCE(pr.after_text, k.created_priority_key) AS priority_at_first_reply,
         COALESCE(ps.after_text, k.created_priority_key) AS priority_at_last_solve
  FROM named k
  LEFT JOIN priority_events_by pr ON pr.ticket_id = k.id AND pr.fulfilment = 'reply'
  LEFT JOIN priority_events_by ps ON ps.ticket_id = k.id AND ps.fulfilment = 'solve'
),
targeted AS (
  SELECT k.*,
         fr.first_reply_minutes AS first_reply_target_minutes, fr.hours AS first_reply_hours_kind,
         rs.resolution_minutes AS resolution_target_minutes, rs.hours AS resolution_hours_kind,
         COALESCE(cl.clock_before_as_of_us, 0) AS policy_clock_before_as_of_us
  FROM priority_at k
  LEFT JOIN {target} fr ON fr.policy_id = k.sla_policy_id
       AND fr.priority = CASE WHEN k.first_reply_us IS NOT NULL THEN k.priority_at_first_reply ELSE k.priority_key END
  LEFT JOIN {target} rs ON rs.policy_id = k.sla_policy_id
       AND rs.priority = CASE WHEN k.solved_now = 1 THEN k.priority_at_last_solve ELSE k.priority_key END
  LEFT JOIN clocks cl ON cl.calendar_number = k.policy_calendar
)
SELECT c.id, c.scope, c.channel, c.queue_key, c.agent_key, c.priority_key, c.tier_key, c.solved_now,
       c.first_reply_us, c.last_solve_us, c.first_solve_us, c.replies, c.reopens, c.replies_by_solve, c.late_message,
       CASE WHEN c.first_reply_us IS NOT NULL
            THEN {greatest("c.clock_at_first_reply_us - c.clock_at_creation_us", "0")} END AS first_reply_business_us,
       c.first_reply_us - c.created_us AS first_reply_calendar_us,
       CASE WHEN c.solved_now = 1
            THEN {greatest("c.clock_at_last_solve_us - c.clock_at_creation_us", "0")} END AS full_resolution_business_us,
       CASE WHEN c.solved_now = 1 THEN c.last_solve_us - c.created_us END AS full_resolution_calendar_us,
       CASE WHEN c.solved_now = 1 THEN c.requester_wait_business_us END AS requester_wait_business_us,
       CASE WHEN c.solved_now = 1 THEN c.requester_wait_calendar_us END AS requester_wait_calendar_us,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.first_reply_target_minutes IS NULL THEN NULL
            WHEN c.first_reply_us IS NOT NULL THEN
                 CASE WHEN {first_reply_elapsed} <= {first_reply_target} THEN 'achieved' ELSE 'breached' END
            WHEN c.solved_now = 1 THEN 'cancelled'
            WHEN {elapsed_before_as_of} >= {first_reply_target} THEN 'breached'
            ELSE 'active' END AS first_reply_sla_state,
       CASE WHEN c.scope <> 'in' OR c.sla_policy_id IS NULL OR c.resolution_target_minutes IS NULL THEN NULL
            WHEN (CASE WHEN c.resolution_hours_kind = 'business' THEN c.policy_requester_wait_us
                       ELSE c.requester_wait_calendar_us END) > {resolution_target} THEN 'breached'
            WHEN c.solved_now = 1 THEN 'achieved'
            WHEN c.status_at_as_of = 'pending' THEN 'paused'
            ELSE 'active' END AS resolution_sla_state
FROM targeted c
"""


def _statements(tables: _Tables, vendor: str, shared_calendars: frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """(working table, SELECT) in the order they are written; each reads only the tables before it."""
    return [
        (tables.cohort, _cohort_select(tables, vendor, shared_calendars)),
        (tables.events, _events_select(tables, vendor)),
        (tables.messages, _messages_select(tables, vendor)),
        (tables.intervals, _intervals_select(tables, vendor)),
        (tables.timeline, _timeline_select(tables, vendor)),
        (tables.facts, _facts_select(tables, vendor)),
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
        f" SELECT start_us, LAG(start_us) OVER (PARTITION BY calendar_number ORDER BY start_us) AS previous_us"
        f" FROM {intervals}"
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
    tables = _Tables(facts=table)
    statements = _statements(tables, vendor, shared_calendars)
    with connection.cursor() as cursor:
        # The cohort's lowest and highest ticket ids bound the reads of events
        # and messages to an index range (ids grow with creation, so a
        # month's tickets are a narrow range), whatever the history's size.
        # ``id + 0``: PostgreSQL would otherwise walk the primary key from each
        # end until a ticket of the period, not read the creation index's range
        # (ticket_created_id).
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
            if name == tables.intervals:
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
        events=tables.events,
        messages=tables.messages,
        cohort=tables.cohort,
        first_id=params["first_id"],
        last_id=params["last_id"],
    )
    with connection.cursor() as cursor:
        for name, _select in reversed(statements):
            cursor.execute(f"DROP TABLE {name}")
