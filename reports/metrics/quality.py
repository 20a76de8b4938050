"""Quality figures: one-touch, first-contact resolution, reopens and satisfaction.

docs/metrics.md#in-scope, #reopen, #one-touch, #fcr and #csat define
them. Every figure is evaluated at ``as_of`` from the ticket's timeline: status
history from the ``status`` TicketEvents (a ticket starts in ``new``),
replies from ``public_agent`` messages, ratings from their own instant; never
from the current ``Ticket.status`` or ``updated_at``, and never from the clock.

Each function takes the caller's cohort (a ``QuerySet[Ticket]`` already limited
to the in-scope tickets of the period) and an optional ``group_by``: ``None``,
a field path (``"channel"``, ``"queue__slug"``, ``"priority"``,
``"customer__organization__tier"``) or the name of an annotation on the cohort
(``"agent_email"``). The answer is ``{None: figures}`` without ``group_by``,
else ``{group value: figures}`` with an empty group value shown as ``""``.

How the work is split between the database and Python: one query per call.
A materialized common table expression (``WITH t AS MATERIALIZED``, SQLite
3.35+ and PostgreSQL 12+) holds each ticket's flags (``0``/``1``) and numbers,
computed with correlated subqueries on indexed columns (``event_ticket_at``,
``message_ticket_created``, ``rating_ticket_at``, ``ticket_customer_created``);
the query over it sums them per group, so each subquery runs once per ticket
whatever the number of figures. Only the per-group integer sums reach Python,
which divides them: rates are fractions rounded half-up to 4 decimals (``None``
without a denominator), the mean score has 2 decimals. The SQL is the same on
SQLite and PostgreSQL, and so are the results.

A report uses ``quality_figures`` instead: the same definitions, written
set-based over the report's working tables (``reports.metrics.facts``: the
cohort's events and public messages by ``as_of``), so that no figure costs a
lookup per ticket; only the repeat-contact test reads beyond the cohort, for
the tickets that pass every other FCR condition. The per-ticket values are
summed per breakdown key at ``as_of`` (the facts' keys, as for the ticket and
SLA figures) for the whole cohort and every breakdown. The tests of this
module check both implementations against each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from reports.metrics import group_key, rate
from reports.metrics.facts import DIMENSIONS, Facts, grouped_select, sql_list
from reports.sql import epoch_us_sql
from servicedesk.core.epoch import from_epoch_us
from servicedesk.tickets.models import Customer, Initiator, Message, MessageKind, Rating, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES

Figures = dict[str, Any]
Grouped = dict[str | None, Figures]

SOLVED = sorted(SOLVED_STATUSES)
UNSOLVED = sorted(UNSOLVED_STATUSES)
FCR_WINDOW_HOURS = 168

_MEAN = Decimal("0.01")
_PREFIX = "_quality_"


# Per-ticket expressions. ``OuterRef("pk")`` is the cohort's ticket.


def _status_events(as_of: datetime) -> QuerySet[TicketEvent]:
    return TicketEvent.objects.filter(ticket=OuterRef("pk"), kind=TicketEvent.Kind.STATUS, at__lte=as_of)


def _solved_at(as_of: datetime) -> Exists:
    """The ticket's status at ``as_of`` is solved or closed: its latest status event
    at or before ``as_of`` leads there (ties on the instant broken by insertion order)."""
    latest = (
        TicketEvent.objects.filter(ticket=OuterRef(OuterRef("pk")), kind=TicketEvent.Kind.STATUS, at__lte=as_of)
        .order_by("-at", "-pk")
        .values("pk")[:1]
    )
    return Exists(TicketEvent.objects.filter(pk=Subquery(latest), after__in=SOLVED))


def _reopens(as_of: datetime) -> QuerySet[TicketEvent]:
    """Reopens at or before ``as_of``: solved/closed -> an unsolved status."""
    return _status_events(as_of).filter(before__in=SOLVED, after__in=UNSOLVED)


def _first_solve(as_of: datetime) -> Subquery:
    """The instant of the first solve (unsolved -> solved/closed) at or before ``as_of``."""
    solves = _status_events(as_of).filter(before__in=UNSOLVED, after__in=SOLVED)
    return Subquery(solves.order_by("at", "pk").values("at")[:1], output_field=DateTimeField())


def _replies() -> QuerySet[Message]:
    return Message.objects.filter(ticket=OuterRef("pk"), kind=MessageKind.PUBLIC_AGENT)


def _count(rows: QuerySet[Any]) -> Coalesce:
    """Number of ``rows`` (a per-ticket subquery), 0 when there are none."""
    counted = rows.order_by().values("ticket").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _flag(condition: Any) -> Case:
    """1 where ``condition`` (a Q or a boolean expression) holds, else 0."""
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def _plus(instant: Any, hours: int) -> ExpressionWrapper:
    """``instant`` + ``hours`` in the database.

    Compare columns to it only with ``<=`` or ``>``: on SQLite the sum is text
    with a ``+00:00`` suffix, which sorts right after the stored form of the
    same instant, so exactly these two comparisons are exact at equality.
    """
    return ExpressionWrapper(instant + Value(timedelta(hours=hours)), output_field=DateTimeField())


# One query: per-ticket values inside, sums per group outside.


def _rows_sql(
    rows: QuerySet[Ticket], steps: tuple[Mapping[str, Any], ...], columns: tuple[str, ...], **extra: Any
) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL of one row per ticket of ``rows``: ``extra`` annotations, then ``columns`` (aliased by ``_p``).

    ``steps`` are per-ticket annotations added in order; a step may refer to an
    earlier one as ``_p(name)``. None for a cohort that cannot hold a row
    (``.none()``, ``pk__in=[]``).
    """
    rows = rows.order_by()
    for step in steps:
        rows = rows.annotate(**{_p(name): expression for name, expression in step.items()})
    rows = rows.annotate(**{_p(name): expression for name, expression in extra.items()})
    rows = rows.values(*(_p(name) for name in extra), *(_p(name) for name in columns))
    try:
        sql, params = rows.query.get_compiler(using=rows.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, tuple(params)


def _summed(sums: Mapping[str, str], columns: tuple[str, ...], table: str, quote: Any) -> str:
    values = {name: f"{table}.{quote(_p(name))}" for name in columns}
    return ", ".join(f"COALESCE(SUM({template.format(**values)}), 0)" for template in sums.values())


def _tally(
    cohort: QuerySet[Ticket],
    group_by: str | None,
    steps: tuple[Mapping[str, Any], ...],
    sums: Mapping[str, str],
) -> dict[str | None, dict[str, int]]:
    """Per group value, the sums of ``sums`` over the cohort's tickets.

    The values of the last step are each ticket's row, computed once per
    ticket: a materialized common table expression keeps PostgreSQL from
    copying their subqueries into every sum. ``sums`` maps each figure to an
    SQL expression over that row, naming the values as ``{name}``. The group
    value ``None`` becomes ``""``; without ``group_by`` the only key is
    ``None``, present even for an empty cohort.
    """
    columns = tuple(steps[-1])
    group = F(group_by) if group_by else Value(None, output_field=CharField())
    inner = _rows_sql(cohort, steps, columns, group=group)
    fetched: list[tuple[Any, ...]] = []
    if inner is not None:
        connection = connections[cohort.db]
        group_column = f"t.{connection.ops.quote_name(_p('group'))}"
        sql = (
            f"WITH t AS MATERIALIZED ({inner[0]}) "  # noqa: S608 (the SQL is built from the ORM's own compiler)
            f"SELECT {group_column}, {_summed(sums, columns, 't', connection.ops.quote_name)}"
            f" FROM t GROUP BY {group_column}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, inner[1])
            fetched = cursor.fetchall()
    result: dict[str | None, dict[str, int]] = {}
    if not group_by:
        result[None] = dict.fromkeys(sums, 0)
    for row in fetched:
        key = group_key(row[0]) if group_by else None
        totals = result.setdefault(key, dict.fromkeys(sums, 0))
        for name, value in zip(sums, row[1:], strict=True):
            totals[name] += int(value)
    return dict(sorted(result.items(), key=lambda item: "" if item[0] is None else item[0]))


def _p(name: str) -> str:
    """The alias under which a per-ticket value is annotated."""
    return _PREFIX + name


# The figures. Each is per-ticket values (``_*_steps``; one name means one
# value across the figures, so a report computes them all in one row per
# ticket), sums over them (``SUMS``) and the figures from the sums
# (``_*_result``).

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


def _one_touch_steps(as_of: datetime) -> tuple[Mapping[str, Any], ...]:
    return ({"solved": _flag(_solved_at(as_of)), "replies": _count(_replies().filter(created_at__lte=as_of))},)


def _one_touch_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "count": totals["one"],
        "solved": totals["solved"],
        "rate": rate(totals["one"], totals["solved"]),
        "fewer_than_two": rate(totals["few"], totals["solved"]),
    }


def one_touch_figures(cohort: QuerySet[Ticket], *, as_of: datetime, group_by: str | None = None) -> Grouped:
    """One-touch resolution (docs/metrics.md#one-touch), per group.

    - ``solved``: tickets whose status at ``as_of`` is solved or closed;
    - ``count``: of those, tickets with exactly one ``public_agent`` message at
      or before ``as_of``;
    - ``rate`` = count / solved;
    - ``fewer_than_two``: the *rate* of solved tickets with zero or one reply,
      (solved with 0 or 1 replies) / solved, the variant other products call
      one-touch (it also counts solves without any reply).
    """
    return _figures("one_touch", cohort, as_of=as_of, group_by=group_by)


def _reopen_steps(as_of: datetime) -> tuple[Mapping[str, Any], ...]:
    return ({"solved": _flag(_solved_at(as_of)), "reopens": _count(_reopens(as_of))},)


def _reopen_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "tickets": totals["tickets"],
        "solved": totals["solved"],
        "rate": rate(totals["tickets"], totals["solved"]),
        "total": totals["total"],
    }


def reopen_figures(cohort: QuerySet[Ticket], *, as_of: datetime, group_by: str | None = None) -> Grouped:
    """Reopens (docs/metrics.md#reopen), per group.

    - ``solved``: tickets whose status at ``as_of`` is solved or closed;
    - ``tickets``: of those, tickets reopened at least once at or before ``as_of``;
    - ``rate`` = tickets / solved;
    - ``total``: reopen transitions (solved/closed -> an unsolved status) at or
      before ``as_of`` of every cohort ticket, solved at ``as_of`` or not.
    ``solved`` -> ``closed`` is no reopen.
    """
    return _figures("reopen", cohort, as_of=as_of, group_by=group_by)


def _csat_steps(as_of: datetime) -> tuple[Mapping[str, Any], ...]:
    latest = Rating.objects.filter(ticket=OuterRef("pk"), at__lte=as_of).order_by("-at", "-pk").values("score")[:1]
    return ({"score": Subquery(latest, output_field=IntegerField())},)


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


def csat_figures(cohort: QuerySet[Ticket], *, as_of: datetime, group_by: str | None = None) -> Grouped:
    """Satisfaction (docs/metrics.md#csat), per group, from the latest rating of
    each ticket given at or before ``as_of`` (an earlier score it replaced does
    not count; a rating after ``as_of`` does not exist yet).

    - ``rated``: tickets with such a rating; ``satisfied``: of those, score 4 or 5;
    - ``rate`` = satisfied / rated;
    - ``mean``: the mean of those latest scores, 2 decimals (``None`` when none).
    """
    return _figures("csat", cohort, as_of=as_of, group_by=group_by)


def _fcr_steps(as_of: datetime, window_hours: int) -> tuple[Mapping[str, Any], ...]:
    first_solve = OuterRef(_p("first_solve"))
    first_reply = OuterRef(_p("first_reply"))
    window_end = _plus(first_solve, window_hours)
    steps: tuple[Mapping[str, Any], ...] = (
        {
            "first_solve": _first_solve(as_of),
            "first_reply": Subquery(
                _replies().filter(created_at__lte=as_of).order_by("created_at", "pk").values("created_at")[:1],
                output_field=DateTimeField(),
            ),
            "root": Coalesce(F("customer__merged_into_id"), F("customer_id")),
        },
        {"replies_by_solve": _count(_replies().filter(created_at__lte=first_solve))},
    )

    late_customer_message = Exists(
        Message.objects.filter(
            ticket=OuterRef("pk"),
            kind=MessageKind.PUBLIC_ENDUSER,
            created_at__gt=first_reply,
            created_at__lte=first_solve,
        )
    )
    reopened_in_window = Exists(_reopens(as_of).filter(at__gt=first_solve, at__lte=window_end))

    # Inside a candidate query, OuterRef(OuterRef(...)) is the measured ticket.
    # Two separate tests, so that each can run on its own index: tickets of
    # the same person (ticket_customer_created), and duplicates merged into
    # this ticket (merged_into).
    merged_by_as_of = TicketEvent.objects.filter(ticket=OuterRef("pk"), kind=TicketEvent.Kind.MERGED, at__lte=as_of)
    merged_in_window = merged_by_as_of.filter(
        at__gt=OuterRef(first_reply), at__lte=_plus(OuterRef(first_solve), window_hours)
    )
    same_person = Q(
        customer__in=Customer.objects.filter(
            Q(pk=OuterRef(OuterRef(_p("root")))) | Q(merged_into=OuterRef(OuterRef(_p("root"))))
        ).values("pk")
    )
    same_issue = (
        Q(topic=OuterRef("topic"))
        | Q(same_issue_as=OuterRef("pk"))
        | Q(pk=OuterRef("same_issue_as"))
        | (Q(merged_into=OuterRef("pk")) & Exists(merged_by_as_of))
    )
    contacts = Ticket.objects.filter(same_person, initiator=Initiator.INBOUND, is_spam=False).exclude(pk=OuterRef("pk"))
    created_in_window = Exists(contacts.filter(same_issue, created_at__gt=first_reply, created_at__lte=window_end))
    merged_in_window_duplicate = Exists(contacts.filter(Exists(merged_in_window), merged_into=OuterRef("pk")))
    repeat_contact = created_in_window | merged_in_window_duplicate

    replies = _p("replies_by_solve")
    # Not merged away by as_of: a merge recorded later does not count yet.
    merged_away = Exists(TicketEvent.objects.filter(ticket=OuterRef("pk"), kind=TicketEvent.Kind.MERGED, at__lte=as_of))
    eligible = (
        Q(
            initiator=Initiator.INBOUND,
            **{_p("first_solve") + "__lte": as_of - timedelta(hours=window_hours), replies + "__gte": 1},
        )
        & ~merged_away
    )
    success = eligible & Q(**{replies: 1}) & ~late_customer_message & ~reopened_in_window & ~repeat_contact
    # Success is checked in this order so that the costly conditions run for
    # eligible tickets only.
    return (*steps, {"fcr_eligible": _flag(eligible), "fcr_success": _flag(success)})


def _fcr_result(totals: Mapping[str, int], window_hours: int) -> Figures:
    return {
        "success": totals["success"],
        "eligible": totals["eligible"],
        "rate": rate(totals["success"], totals["eligible"]),
        "window_hours": window_hours,
    }


def fcr_figures(
    cohort: QuerySet[Ticket],
    *,
    as_of: datetime,
    window_hours: int = FCR_WINDOW_HOURS,
    group_by: str | None = None,
) -> Grouped:
    """First-contact resolution (docs/metrics.md#fcr), per group.

    ``W`` = ``window_hours`` of real time (168 by default). A ticket is
    **eligible** when it is inbound, not merged into another ticket, solved at
    least once by ``as_of``, has at least one ``public_agent`` message at or
    before its first solve, and first solve + W <= ``as_of`` (until then the
    outcome is not known and the ticket is left out). An eligible ticket is a
    **success** when all of:

    (a) exactly one ``public_agent`` message at or before the first solve;
    (b) no ``public_enduser`` message after the first reply and at or before
        the first solve;
    (c) no reopen in (first solve, first solve + W];
    (d) no repeat contact: no other inbound, non-spam ticket of the same person
        in (first reply, first solve + W], on any channel, in or outside the
        report period. The same person: the ticket's customer record and the
        records merged into it share one root customer (``customer_merge``
        points every merged record at the surviving one and moves the tickets
        there, so one ``merged_into`` step reaches the root). About the same
        issue: the same ``Ticket.topic``, an explicit ``same_issue_as`` link in
        either direction, or a duplicate merged into this ticket by ``as_of``.
        A ticket counts as a contact in the window when it was created in the
        window, or when it is a duplicate merged into this ticket in the window
        (the ``merged`` event's instant): a duplicate merged in before the
        first reply is no repeat, one merged in after it is.

    Figures: ``eligible``, ``success``, ``rate`` = success / eligible, and
    ``window_hours`` as given.
    """
    return _figures("fcr", cohort, as_of=as_of, group_by=group_by, window_hours=window_hours)


_STEPS: dict[str, Callable[[datetime, int], tuple[Mapping[str, Any], ...]]] = {
    "one_touch": lambda as_of, _window: _one_touch_steps(as_of),
    "fcr": _fcr_steps,
    "reopen": lambda as_of, _window: _reopen_steps(as_of),
    "csat": lambda as_of, _window: _csat_steps(as_of),
}
_RESULTS: dict[str, Callable[[Mapping[str, int], int], Figures]] = {
    "one_touch": _one_touch_result,
    "fcr": _fcr_result,
    "reopen": _reopen_result,
    "csat": _csat_result,
}


def _figures(
    figure: str,
    cohort: QuerySet[Ticket],
    *,
    as_of: datetime,
    group_by: str | None,
    window_hours: int = FCR_WINDOW_HOURS,
) -> Grouped:
    totals = _tally(cohort, group_by, _STEPS[figure](as_of, window_hours), SUMS[figure])
    return {key: _RESULTS[figure](group, window_hours) for key, group in totals.items()}


# A report: every figure, for the whole cohort and each breakdown, in one query.

ReportFigures = dict[str, dict[str | None, dict[str, Figures]]]


def quality_empty(*, window_hours: int = FCR_WINDOW_HOURS) -> dict[str, Figures]:
    """The quality figures of a group without in-scope tickets: zero counts, null rates."""
    return {figure: _RESULTS[figure](dict.fromkeys(SUMS[figure], 0), window_hours) for figure in FIGURES}


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
  WHERE v.kind = 'status' AND v.bval IN {solved} AND v.val IN {unsolved}
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
            result[figure][dim or None][group_key(key)] = _RESULTS[figure](totals, window_hours)
    return result
