"""The one entry point that computes a report: the Celery task, the API and ``manage.py report`` call it.

``report_compute`` returns the object of docs/metrics.md#report-json for a period
(local dates of a calendar, end exclusive), an explicit ``as_of`` and a
calendar, plus ``definitions_version`` and the breakdowns ``by_channel``,
``by_queue``, ``by_agent`` (assignee email at ``as_of``, ``""`` unassigned),
``by_priority`` (priority at ``as_of``) and ``by_tier`` (organization tier,
``""`` without one), each holding the ticket figures of the top level.

Everything is aggregated in the database (``reports.metrics``); the result
is plain JSON (dates as ``YYYY-MM-DD``, instants as ISO 8601 with ``Z``) and
the same on PostgreSQL and SQLite. The quality figures (one-touch, FCR,
reopen, CSAT) come from ``reports.metrics.quality`` over the same in-scope
tickets and breakdown keys as the ticket figures; the live-channel figures
from ``reports.live``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import DatabaseError, connection, transaction

from reports import live
from reports.calendar_intervals import materialised
from reports.metrics.facts import Facts, ticket_facts
from reports.metrics.quality import FIGURES as QUALITY_FIGURES
from reports.metrics.quality import ReportFigures, quality_empty, quality_figures
from reports.metrics.sla import sla_empty, sla_figures
from reports.metrics.surveys import SURVEY_DIMENSIONS, survey_figures, survey_result
from reports.metrics.tickets import DURATIONS, ticket_counts, ticket_durations, tickets_handled
from reports.periods import Period, default_calendar
from servicedesk.sla.calendars import CalendarSpec, calendar_spec
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Ticket

DEFINITIONS_VERSION = "2026-11-2"

BREAKDOWNS = {
    "channel": "by_channel",
    "queue": "by_queue",
    "agent": "by_agent",
    "priority": "by_priority",
    "tier": "by_tier",
}


def instant_text(instant: datetime) -> str:
    """An instant as ISO 8601 in UTC with ``Z``, microseconds only when present."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _policy_calendars(period: Period, as_of: datetime) -> dict[str, CalendarSpec]:
    """The calendars the cohort's SLA snapshots refer to, by id (few: one per policy calendar)."""
    ids = (
        Ticket.objects.filter(created_at__gte=period.start_utc, created_at__lt=period.end_utc, created_at__lte=as_of)
        .exclude(sla_policy__isnull=True)
        .values_list("sla_policy__calendar_id", "sla_calendar_id")
        .distinct()
    )
    wanted = {pk for pair in ids for pk in pair if pk is not None}
    return {str(calendar.pk): calendar_spec(calendar) for calendar in BusinessCalendar.objects.filter(pk__in=wanted)}


def handled_sql(facts: Facts) -> str:
    """The ids of the tickets ``tickets_handled`` counts: in scope, with a public reply or a solve by as_of."""
    return (
        f"SELECT id FROM {facts.table} WHERE scope = 'in'"  # noqa: S608 (the facts table's own name)
        " AND (first_reply_us IS NOT NULL OR last_solve_us IS NOT NULL)"
    )


def _live(period: Period, as_of: datetime, handled: int, sessions_of_handled: int) -> dict[str, Any]:
    """live, occupancy and cost_per_contact (docs/metrics.md#live).

    Contacts handled: the ``handled`` in-scope tickets, plus the period's
    answered sessions not linked to one of them (``sessions_of_handled`` are).
    """
    report = live.live_report(start_utc=period.start_utc, end_utc=period.end_utc, as_of=as_of)
    contacts = handled + int(report["sessions_answered"]) - sessions_of_handled
    return {
        "live": report["live"],
        "occupancy": report["occupancy"],
        "cost_per_contact": cost_per_contact(live.cost_for_period(period.start, period.end), contacts),
    }


def cost_per_contact(cost: tuple[Decimal, str] | None, contacts: int) -> dict[str, Any]:
    """The ``cost_per_contact`` figure of a period's operating cost (or None) and its contacts handled."""
    amount = None
    currency = None
    if cost is not None:
        total, currency = cost
        if contacts:
            amount = float((Decimal(total) / contacts).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return {"amount": amount, "currency": currency, "contacts": contacts}


def _empty_counts() -> dict[str, Any]:
    return {"in_scope": 0, "outbound": 0, "merged": 0, "solved": 0, "by_channel": {}}


def _ticket_figures(
    name: str | None,
    key: str,
    counts: dict[str | None, dict[str, dict[str, Any]]],
    durations: dict[str | None, dict[str, dict[str, Any]]],
    sla: dict[str | None, dict[str, dict[str, Any]]],
    quality: ReportFigures,
) -> dict[str, Any]:
    empty = {"n": 0, "mean": None, "median": None, "p90": None}
    figures: dict[str, Any] = {"tickets": counts[name].get(key, _empty_counts())}
    group_durations = durations[name].get(key, {})
    for figure in DURATIONS:
        figures[figure] = group_durations.get(figure, {"business": dict(empty), "calendar": dict(empty)})
    figures["sla"] = sla[name].get(key, sla_empty())
    no_quality = quality_empty()
    for figure in QUALITY_FIGURES:
        figures[figure] = quality[figure][name].get(key, no_quality[figure])
    return figures


# Memory for the report's transaction on PostgreSQL: sorts and hash joins of a
# month's working tables fit in ``work_mem`` instead of spilling to disk, and
# the working tables themselves stay in the session's temporary buffers.
REPORT_WORK_MEM = "64MB"
REPORT_TEMP_BUFFERS = "256MB"


def _planner_settings() -> None:
    """On PostgreSQL, settings for this transaction only.

    No JIT: compiling the report's large queries costs seconds and saves
    nothing on them. More ``work_mem``. More ``temp_buffers``, which
    PostgreSQL lets a session change only before it first touches a
    temporary table: a session that already did keeps the pool it has (the
    savepoint makes the refusal harmless).
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
        # The working tables' statistics (ANALYZE) from a sample of 3,000 rows, not 30,000.
        cursor.execute("SET LOCAL default_statistics_target = 10")
        try:
            with transaction.atomic():
                cursor.execute(f"SET LOCAL temp_buffers = '{REPORT_TEMP_BUFFERS}'")
        except DatabaseError:
            pass


def report_compute(*, start: date, end: date, as_of: datetime, calendar: BusinessCalendar | None = None) -> dict:
    """The report of the tickets created in [start, end) (local dates of ``calendar``) as they stood at ``as_of``.

    ``calendar`` None means the default calendar, or 24x7 UTC when there is
    none. Reads only: a computation writes working rows that it removes in
    the same transaction. Raises ValueError for a naive ``as_of`` or a period
    that does not end after it starts. Deterministic: the same database
    content gives the same object.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be an aware datetime")
    if calendar is None:
        calendar = default_calendar()
    period = Period(start=start, end=end, calendar=calendar)
    with transaction.atomic():
        _planner_settings()
        return _compute(period, as_of)


def _compute(period: Period, as_of: datetime) -> dict:
    span_start = min(period.start_utc, as_of)
    span_end = max(period.start_utc, as_of)
    with transaction.atomic():
        report_spec = period.spec()
        policy_specs = _policy_calendars(period, as_of)
        # A policy calendar with the report calendar's hours shares its intervals.
        shared = frozenset(int(pk) for pk, spec in policy_specs.items() if spec == report_spec)
        specs = {"report": report_spec, **{pk: spec for pk, spec in policy_specs.items() if int(pk) not in shared}}
        with materialised(specs, start=span_start, end=span_end) as keys:
            prefix = keys["report"][: -len("report")]
            with ticket_facts(
                start_utc=period.start_utc,
                end_utc=period.end_utc,
                as_of=as_of,
                report_key=keys["report"],
                key_prefix=prefix,
                shared_calendars=shared,
            ) as facts:
                counts = ticket_counts(facts)
                durations = ticket_durations(facts)
                sla = sla_figures(facts)
                handled = tickets_handled(facts)
                sessions_of_handled = live.sessions_answered_handled(
                    start_utc=period.start_utc, end_utc=period.end_utc, as_of=as_of, handled_sql=handled_sql(facts)
                )
                quality = quality_figures(facts)
                surveys = survey_figures(facts)

    report: dict[str, Any] = {
        "period": {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": period.time_zone,
            "calendar": period.calendar.slug if period.calendar is not None else None,
        },
        "as_of": instant_text(as_of),
    }
    report.update(_ticket_figures(None, "", counts, durations, sla, quality))
    report["surveys"] = surveys[None][""]
    report.update(_live(period, as_of, handled, sessions_of_handled))
    report["definitions_version"] = DEFINITIONS_VERSION
    for name, report_key in BREAKDOWNS.items():
        by_survey = surveys.get(name, {})
        keys_seen = sorted(set(counts[name]) | set(durations[name]) | set(sla[name]) | set(by_survey))
        report[report_key] = {key: _ticket_figures(name, key, counts, durations, sla, quality) for key in keys_seen}
        if name in SURVEY_DIMENSIONS:
            for key, group in report[report_key].items():
                group["surveys"] = by_survey.get(key) or survey_result(0, 0)
    return report
