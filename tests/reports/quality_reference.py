"""The quality figures written a second way, with the ORM: the reference the report's SQL is tested against.

docs/metrics.md#reopen, #one-touch, #fcr and #csat define the figures;
``reports.metrics.quality.quality_figures`` computes them for a report,
set-based over its working tables. This module computes the same
definitions independently, as one correlated subquery per condition on
indexed columns, so that ``tests/reports/test_quality.py`` can check every
hand-worked scenario against both. It is test code only: nothing in the
product calls it.

Each function takes a cohort (a ``QuerySet[Ticket]`` already limited to the
in-scope tickets of the period) and an optional ``group_by``: ``None``, a
field path (``"channel"``, ``"queue__slug"``, ``"priority"``,
``"customer__organization__tier"``) or the name of an annotation on the
cohort (``"agent_email"``). The answer is ``{None: figures}`` without
``group_by``, else ``{group value: figures}`` with an empty group value shown
as ``""``.

One query per call: a materialized common table expression (``WITH t AS
MATERIALIZED``, SQLite 3.35+ and PostgreSQL 12+) holds each ticket's flags
(``0``/``1``) and numbers, and the query over it sums them per group with the
report's own ``SUMS``; Python turns the sums into figures with the report's
own ``RESULTS``, so the two implementations differ only in how they find each
ticket's values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    DurationField,
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

from reports.metrics import group_key
from reports.metrics.quality import FCR_WINDOW_HOURS, RESULTS, SOLVED, SUMS, UNSOLVED, Figures
from servicedesk.tickets.models import (
    Customer,
    Initiator,
    Message,
    MessageKind,
    Rating,
    Session,
    Ticket,
    TicketEvent,
)

Grouped = dict[str | None, Figures]

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


def _written_on() -> Q:
    """A message or session written on the ticket: moved off it by a merge or a split, or never moved
    (docs/metrics.md#merges)."""
    return Q(moved_from=OuterRef("pk")) | Q(moved_from__isnull=True, ticket=OuterRef("pk"))


def _replies() -> QuerySet[Message]:
    return Message.objects.filter(_written_on(), kind=MessageKind.PUBLIC_AGENT)


def _count(rows: QuerySet[Any]) -> Coalesce:
    """Number of ``rows`` (a per-ticket subquery), 0 when there are none."""
    counted = rows.order_by().annotate(one=Value(1)).values("one").annotate(n=Count("pk")).values("n")
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


def _one_touch_steps(as_of: datetime) -> tuple[Mapping[str, Any], ...]:
    return ({"solved": _flag(_solved_at(as_of)), "replies": _count(_replies().filter(created_at__lte=as_of))},)


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
        {
            "replies_by_solve": _count(_replies().filter(created_at__lte=first_solve)),
            # A chat or call: the end of its first answered session, plus the after-contact work.
            "first_session_end": Subquery(
                Session.objects.filter(
                    _written_on(),
                    answered_at__isnull=False,
                    answered_at__lte=as_of,
                    ended_at__isnull=False,
                    ended_at__lte=as_of,
                )
                .order_by("answered_at", "pk")
                .annotate(
                    end=ExpressionWrapper(
                        F("ended_at") + F("after_work_seconds") * Value(timedelta(seconds=1), DurationField()),
                        output_field=DateTimeField(),
                    )
                )
                .values("end")[:1],
                output_field=DateTimeField(),
            ),
        },
    )
    first_session_end = OuterRef(_p("first_session_end"))

    late_customer_message = Exists(
        Message.objects.filter(
            _written_on(),
            kind=MessageKind.PUBLIC_ENDUSER,
            created_at__gt=Coalesce(first_session_end, first_reply),
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
    # (a): exactly one reply by the first solve; for a chat or call, solved by the end of its first session.
    one_interaction = Q(**{_p("first_session_end") + "__isnull": True, replies: 1}) | Q(
        **{_p("first_session_end") + "__isnull": False, _p("first_solve") + "__lte": F(_p("first_session_end"))}
    )
    success = eligible & one_interaction & ~late_customer_message & ~reopened_in_window & ~repeat_contact
    # Success is checked in this order so that the costly conditions run for
    # eligible tickets only.
    return (*steps, {"fcr_eligible": _flag(eligible), "fcr_success": _flag(success)})


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


def _figures(
    figure: str,
    cohort: QuerySet[Ticket],
    *,
    as_of: datetime,
    group_by: str | None,
    window_hours: int = FCR_WINDOW_HOURS,
) -> Grouped:
    totals = _tally(cohort, group_by, _STEPS[figure](as_of, window_hours), SUMS[figure])
    return {key: RESULTS[figure](group, window_hours) for key, group in totals.items()}
