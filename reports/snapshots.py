"""Report snapshots and on-demand report jobs: computing, storing and refreshing figures.

Every figure comes from ``reports.services.report_compute``; this module
stores its output per period in ``ReportSnapshot`` rows and decides when a row
must be computed again.

**Idempotency.** One row per (calendar, granularity, start, end, definitions
version). ``snapshot_compute`` writes it with ``update_or_create`` in a
transaction and retries the update when a concurrent writer inserted the row
first (the unique constraint refuses the second insert), so running the beat
task, the backfill or a job twice recomputes the same rows and never adds one.

**Staleness** (``snapshots_stale``, ``snapshot_is_stale``). Before computing,
a snapshot records the highest TicketEvent, Message, Rating, Session and
AgentPresence ids (``*_seen_id``). Later rows always get higher ids, also
when their own timestamps lie in the past (an import of history). A snapshot
is stale when a TicketEvent, Message or Rating with an id above its mark
belongs to a ticket created in the snapshot's period, a newer Session was
requested in the period, or a newer presence change starts before the
period's end (it changes the ready time of that period and later ones), or
when the operating cost entered for exactly its period now gives another cost
per contact than it holds (a manager entered or corrected it). A merge or a
split moves messages and sessions without new ids: they keep counting on the
ticket they were written on (docs/metrics.md#merges), and the move's events
mark the periods of both tickets. The check walks the primary key from the
lowest mark upwards (only the rows added since) and groups them by the local
creation date of their ticket, so it costs one small indexed query per table
and calendar whatever the history's size. A snapshot is also refreshed once a
day while its period is settling (as_of earlier than the period's end plus
``SETTLE``): FCR needs seven days after a solve, and SLA targets still run.

**Backlog** (``backlog_count``, ``BacklogTally``). A snapshot stores the
backlog at as_of and at its period's end. The backlog at an instant follows
from the backlog at an earlier one plus the creations, solves and reopens in
between, so the snapshots of one run (a backfill, a beat pass, a job) share a
``BacklogTally``: the first instant reads the history up to it, every later
one only the rows since the nearest instant already counted, and the backlog
at the shared as_of is counted once. A backfill of a year therefore reads the
history about twice in all, not twice per day.
"""

from __future__ import annotations

import bisect
import logging
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, JSONField, Max, Min, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from reports.live import costs_within
from reports.models import Granularity, JobStatus, ReportJob, ReportSnapshot
from reports.periods import local_midnight_utc
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import AgentPresence, Message, Rating, Session, Ticket, TicketEvent
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES

logger = logging.getLogger(__name__)

# A period's figures keep changing for this long after it ends (the FCR window
# is 168 hours); until then its snapshot is recomputed once per REFRESH_EVERY.
SETTLE = timedelta(days=8)
REFRESH_EVERY = timedelta(days=1)
# Beat computes missing daily/weekly/monthly snapshots of periods that ended
# within this many days; older history is filled by ``report --backfill``.
BEAT_LOOKBACK_DAYS = 35
_WRITE_ATTEMPTS = 3
# A job's claim lasts this long; ``report_job_run_task`` is stopped before it ends,
# so a claim older than this belongs to a lost worker and may be taken over.
JOB_LEASE = timedelta(hours=1)
# A job still queued this long after it was requested lost its task (the broker was down).
JOB_PENDING_AGE = timedelta(minutes=1)
JOB_DISPATCH_BATCH = 100


def definitions_version() -> str:
    from reports import services

    return str(services.DEFINITIONS_VERSION)


# --- periods ---------------------------------------------------------------


def period_bounds(calendar: BusinessCalendar, start: date, end: date) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at ``start`` and ``end`` in the calendar's zone."""
    return local_midnight_utc(start, calendar.time_zone), local_midnight_utc(end, calendar.time_zone)


def local_today(calendar: BusinessCalendar, now: datetime) -> date:
    return now.astimezone(zoneinfo.ZoneInfo(calendar.time_zone)).date()


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def ended_periods(*, granularity: str, since: date, today: date) -> list[tuple[date, date]]:
    """Periods of ``granularity`` (day, Monday-start week, month) starting on or after ``since``
    (weeks and months: containing it) and ended by local ``today``."""
    periods: list[tuple[date, date]] = []
    if granularity == Granularity.DAY:
        day = since
        while day < today:
            periods.append((day, day + timedelta(days=1)))
            day += timedelta(days=1)
    elif granularity == Granularity.WEEK:
        day = week_start(since)
        while day + timedelta(days=7) <= today:
            periods.append((day, day + timedelta(days=7)))
            day += timedelta(days=7)
    elif granularity == Granularity.MONTH:
        day = month_start(since)
        while next_month(day) <= today:
            periods.append((day, next_month(day)))
            day = next_month(day)
    return periods


def calendar_resolve(slug: str | None) -> BusinessCalendar:
    """The calendar with ``slug``, else the default one, else the first by name.

    Raises ``NotFound`` for an unknown slug and ``ApplicationError`` when no
    calendar exists at all.
    """
    if slug:
        found = BusinessCalendar.objects.filter(slug=slug).first()
        if found is None:
            raise NotFound(_("There is no calendar %(slug)s.") % {"slug": slug}, field="calendar")
        return found
    found = BusinessCalendar.objects.order_by("-is_default", "name", "pk").first()
    if found is None:
        raise ApplicationError(_("Reports need a business calendar; create one first."), field="calendar")
    return found


# --- figures beside report_compute's -------------------------------------------


def _in_scope(prefix: str = "") -> Q:
    """Tickets every service metric counts (docs/metrics.md#in-scope)."""
    return Q(
        **{
            f"{prefix}merged_into__isnull": True,
            f"{prefix}is_spam": False,
            f"{prefix}is_deleted": False,
            f"{prefix}initiator": "inbound",
        }
    )


def _backlog_change(*, after: datetime | None, until: datetime) -> int:
    """In-scope tickets created, minus solves, plus reopens in (after, until]; from the start when after is None.

    Two aggregate queries: one on the creation index, one on the
    ``event_kind_at`` index counting solves and reopens of the status events
    (their before/after statuses) together.
    """
    tickets = Ticket.objects.filter(_in_scope(), created_at__lte=until)
    moves = TicketEvent.objects.filter(_in_scope("ticket__"), kind=TicketEvent.Kind.STATUS, at__lte=until)
    if after is not None:
        tickets = tickets.filter(created_at__gt=after)
        moves = moves.filter(at__gt=after)
    unsolved = [f'"{s}"' for s in sorted(UNSOLVED_STATUSES)]
    solved = [f'"{s}"' for s in sorted(SOLVED_STATUSES)]
    moves = moves.annotate(before_text=Cast("before", TextField()), after_text=Cast("after", TextField()))
    counts = moves.aggregate(
        solves=Count("pk", filter=Q(before_text__in=unsolved, after_text__in=solved)),
        reopens=Count("pk", filter=Q(before_text__in=solved, after_text__in=unsolved)),
    )
    return tickets.count() - counts["solves"] + counts["reopens"]


def backlog_count(*, at: datetime) -> int:
    """In-scope tickets unsolved at the instant ``at``: created by then, minus solves, plus reopens.

    Counted over the whole history up to ``at``; ``BacklogTally`` gives the
    same figure for many instants without reading the history for each.
    """
    return _backlog_change(after=None, until=at)


class BacklogTally:
    """``backlog_count`` at the instants one run asks for, each counted from the nearest earlier one.

    The backlog at ``at`` is the backlog at the latest instant already counted
    before it plus the change in between (``_backlog_change``); the first
    instant, and any earlier than all counted ones, is counted from the
    beginning. An instant asked again is not counted again. Each span is
    counted when it is first needed, so a tally belongs to one run and is
    dropped after it: rows added later with an instant before one already
    counted are left to the next run.
    """

    def __init__(self) -> None:
        self._instants: list[datetime] = []
        self._counts: dict[datetime, int] = {}

    def count(self, *, at: datetime) -> int:
        if at in self._counts:
            return self._counts[at]
        index = bisect.bisect_left(self._instants, at)
        if index:
            earlier = self._instants[index - 1]
            value = self._counts[earlier] + _backlog_change(after=earlier, until=at)
        else:
            value = backlog_count(at=at)
        self._instants.insert(index, at)
        self._counts[at] = value
        return value


def _figures_complete(
    figures: dict[str, Any], *, end_utc: datetime, as_of: datetime, backlog: BacklogTally
) -> dict[str, Any]:
    """Adds ``backlog`` when ``report_compute`` has none: unsolved at as_of and at the period's end."""
    if "backlog" not in figures:
        # The earlier instant first: as_of then costs only the rows since the period's end.
        at_period_end = backlog.count(at=min(end_utc, as_of))
        figures = {**figures, "backlog": {"open": backlog.count(at=as_of), "at_period_end": at_period_end}}
    return figures


@dataclass(frozen=True)
class HighWater:
    events: int
    messages: int
    ratings: int
    sessions: int
    presence: int


def source_high_water() -> HighWater:
    """The highest TicketEvent, Message, Rating, Session and AgentPresence ids now (0 when none)."""
    return HighWater(
        events=TicketEvent.objects.aggregate(m=Max("id"))["m"] or 0,
        messages=Message.objects.aggregate(m=Max("id"))["m"] or 0,
        ratings=Rating.objects.aggregate(m=Max("id"))["m"] or 0,
        sessions=Session.objects.aggregate(m=Max("id"))["m"] or 0,
        presence=AgentPresence.objects.aggregate(m=Max("id"))["m"] or 0,
    )


def _source_changed_at(start_utc: datetime, end_utc: datetime, as_of: datetime) -> datetime | None:
    """The latest event, message or rating instant (up to as_of) of the period's cohort.

    A message counts on the ticket it was written on, also once a merge or a
    split moved it (docs/metrics.md#merges).
    """
    cohort = {"ticket__created_at__gte": start_utc, "ticket__created_at__lt": end_utc}
    moved_off_cohort = {"moved_from__created_at__gte": start_utc, "moved_from__created_at__lt": end_utc}
    messages = Message.objects.filter(created_at__lte=as_of)
    found = [
        TicketEvent.objects.filter(at__lte=as_of, **cohort).aggregate(m=Max("at"))["m"],
        messages.filter(moved_from__isnull=True, **cohort).aggregate(m=Max("created_at"))["m"],
        messages.filter(**moved_off_cohort).aggregate(m=Max("created_at"))["m"],
        Rating.objects.filter(at__lte=as_of, **cohort).aggregate(m=Max("at"))["m"],
    ]
    values = [value for value in found if value is not None]
    return max(values) if values else None


# --- snapshots ---------------------------------------------------------------


def snapshot_compute(
    *,
    calendar: BusinessCalendar,
    granularity: str,
    start: date,
    end: date,
    as_of: datetime,
    backlog: BacklogTally | None = None,
) -> ReportSnapshot:
    """Compute the report of [start, end) as of ``as_of`` and store it as the period's snapshot.

    Guarantee: afterwards exactly one row exists for (calendar, granularity,
    start, end, definitions version), holding these figures; a concurrent
    computation of the same period leaves one row (the later write wins).
    ``backlog`` is the run's ``BacklogTally`` when several snapshots are
    computed together (the figures are the same; a new tally when omitted).
    Errors: ``ApplicationError`` for start >= end or an unknown granularity.
    Idempotent: the same arguments give the same row and figures.
    """
    from reports import services

    if start >= end:
        raise ApplicationError(_("The period must end after it starts."), field="end")
    if granularity not in Granularity.values:
        raise ApplicationError(_("Unknown granularity."), field="granularity")
    seen = source_high_water()
    start_utc, end_utc = period_bounds(calendar, start, end)
    figures = services.report_compute(start=start, end=end, as_of=as_of, calendar=calendar)
    figures = _figures_complete(figures, end_utc=end_utc, as_of=as_of, backlog=backlog or BacklogTally())
    version = str(figures.get("definitions_version") or definitions_version())
    values: dict[str, Any] = {
        "as_of": as_of,
        "figures": figures,
        "computed_at": timezone.now(),
        "source_changed_at": _source_changed_at(start_utc, end_utc, as_of),
        "events_seen_id": seen.events,
        "messages_seen_id": seen.messages,
        "ratings_seen_id": seen.ratings,
        "sessions_seen_id": seen.sessions,
        "presence_seen_id": seen.presence,
    }
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            with transaction.atomic():
                snapshot, _created = ReportSnapshot.objects.update_or_create(
                    calendar=calendar,
                    granularity=granularity,
                    start=start,
                    end=end,
                    definitions_version=version,
                    defaults=values,
                )
            return snapshot
        except IntegrityError:
            # A concurrent computation inserted the row between our look-up and
            # insert; the next attempt finds it and updates it.
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _settling(snapshot: ReportSnapshot, end_utc: datetime, now: datetime) -> bool:
    return snapshot.as_of < end_utc + SETTLE and now - snapshot.computed_at >= REFRESH_EVERY


def snapshot_is_stale(snapshot: ReportSnapshot, *, now: datetime) -> bool:
    """Whether a newer event, message or rating touches the snapshot's cohort, its period's operating
    cost changed, or it is settling.

    EXISTS queries walking the primary key above the snapshot's marks: the
    cohort's events, messages and ratings, the period's live sessions, and
    presence changes up to the period's end (occupancy counts ready time).
    """
    start_utc, end_utc = period_bounds(snapshot.calendar, snapshot.start, snapshot.end)
    if _settling(snapshot, end_utc, now):
        return True
    if _cost_changed(snapshot.figures.get("cost_per_contact"), _costs([snapshot]).get((snapshot.start, snapshot.end))):
        return True
    cohort = {"ticket__created_at__gte": start_utc, "ticket__created_at__lt": end_utc}
    return (
        TicketEvent.objects.filter(id__gt=snapshot.events_seen_id, **cohort).exists()
        or Message.objects.filter(id__gt=snapshot.messages_seen_id, **cohort).exists()
        or Rating.objects.filter(id__gt=snapshot.ratings_seen_id, **cohort).exists()
        or Session.objects.filter(
            id__gt=snapshot.sessions_seen_id, requested_at__gte=start_utc, requested_at__lt=end_utc
        ).exists()
        or AgentPresence.objects.filter(id__gt=snapshot.presence_seen_id, at__lt=end_utc).exists()
    )


def _costs(snapshots: Sequence[ReportSnapshot]) -> dict[tuple[date, date], tuple[Decimal, str]]:
    """The operating costs entered for exactly the snapshots' periods (one query)."""
    if not snapshots:
        return {}
    return costs_within(min(s.start for s in snapshots), max(s.end for s in snapshots))


def _cost_changed(recorded: dict[str, Any] | None, cost: tuple[Decimal, str] | None) -> bool:
    """Whether the operating cost entered now gives another cost per contact than the snapshot holds."""
    from reports.services import cost_per_contact

    if recorded is None:
        return cost is not None
    return cost_per_contact(cost, int(recorded.get("contacts") or 0)) != recorded


def _touched_days(
    model: type[Any], above: int, zone: zoneinfo.ZoneInfo, instant: str = "ticket__created_at"
) -> dict[date, int]:
    """Local date of ``instant`` (the ticket's creation) -> highest id, over rows of ``model`` with id > above."""
    rows = (
        model.objects.filter(id__gt=above)
        .annotate(day=TruncDate(instant, tzinfo=zone))
        .values("day")
        .annotate(top=Max("id"))
        .order_by()
    )
    return {row["day"]: row["top"] for row in rows}


def snapshots_stale(*, calendar: BusinessCalendar, now: datetime) -> list[ReportSnapshot]:
    """Periodic (day, week, month) snapshots of ``calendar`` that must be computed again."""
    snapshots = list(
        ReportSnapshot.objects.filter(calendar=calendar, definitions_version=definitions_version())
        .exclude(granularity=Granularity.CUSTOM)
        .select_related("calendar")
        .defer("figures")
        # The figures are stored as text (key order kept): read only this key as JSON.
        .annotate(recorded_cost=KeyTransform("cost_per_contact", Cast("figures", JSONField())))
    )
    if not snapshots:
        return []
    costs = _costs(snapshots)
    zone = zoneinfo.ZoneInfo(calendar.time_zone)
    marks = ReportSnapshot.objects.filter(pk__in=[s.pk for s in snapshots]).aggregate(
        events=Min("events_seen_id"),
        messages=Min("messages_seen_id"),
        ratings=Min("ratings_seen_id"),
        sessions=Min("sessions_seen_id"),
        presence=Min("presence_seen_id"),
    )
    touched = [
        ("events_seen_id", _touched_days(TicketEvent, marks["events"] or 0, zone)),
        ("messages_seen_id", _touched_days(Message, marks["messages"] or 0, zone)),
        ("ratings_seen_id", _touched_days(Rating, marks["ratings"] or 0, zone)),
        ("sessions_seen_id", _touched_days(Session, marks["sessions"] or 0, zone, "requested_at")),
    ]
    presence_top = AgentPresence.objects.filter(id__gt=marks["presence"] or 0).aggregate(first=Min("at"), top=Max("id"))
    stale: list[ReportSnapshot] = []
    for snapshot in snapshots:
        _start_utc, end_utc = period_bounds(calendar, snapshot.start, snapshot.end)
        presence_changed = (
            presence_top["top"] is not None
            and presence_top["top"] > snapshot.presence_seen_id
            and presence_top["first"] < end_utc
        )
        cost_changed = _cost_changed(snapshot.recorded_cost, costs.get((snapshot.start, snapshot.end)))
        if (
            presence_changed
            or cost_changed
            or _settling(snapshot, end_utc, now)
            or any(
                snapshot.start <= day < snapshot.end and top > getattr(snapshot, field)
                for field, days in touched
                for day, top in days.items()
            )
        ):
            stale.append(snapshot)
    return stale


def snapshots_due(*, now: datetime, calendars: Iterable[BusinessCalendar] | None = None) -> dict[str, int]:
    """Beat: per calendar, compute the ended days, weeks and months that are missing or stale.

    Missing periods are looked for within ``BEAT_LOOKBACK_DAYS``; stale ones at
    any age. Each snapshot commits on its own, so an interrupted run resumes
    where it stopped; a second run finds nothing missing and recomputes the
    same rows for anything stale. Returns counts of computed snapshots.
    """
    counts = {"computed": 0, "stale": 0}
    backlog = BacklogTally()
    for calendar in calendars if calendars is not None else BusinessCalendar.objects.order_by("pk"):
        today = local_today(calendar, now)
        since = today - timedelta(days=BEAT_LOOKBACK_DAYS)
        wanted = {
            (granularity, start, end)
            for granularity in (Granularity.DAY, Granularity.WEEK, Granularity.MONTH)
            for start, end in ended_periods(granularity=granularity, since=since, today=today)
        }
        present = set(
            ReportSnapshot.objects.filter(
                calendar=calendar,
                definitions_version=definitions_version(),
                start__gte=month_start(since) - timedelta(days=7),
            ).values_list("granularity", "start", "end")
        )
        stale = {(s.granularity, s.start, s.end) for s in snapshots_stale(calendar=calendar, now=now)}
        for granularity, start, end in sorted(wanted - present | stale, key=lambda p: (p[1], p[2], p[0])):
            snapshot_compute(
                calendar=calendar, granularity=granularity, start=start, end=end, as_of=now, backlog=backlog
            )
            counts["computed"] += 1
        counts["stale"] += len(stale)
    return counts


def snapshots_backfill(
    *,
    calendar: BusinessCalendar,
    since: date,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Compute every daily snapshot from ``since`` to the last ended day that is missing or stale.

    Resumable: days already stored and fresh are skipped, so a rerun after an
    interruption continues where it stopped. Returns the number computed.
    """
    today = local_today(calendar, now)
    periods = ended_periods(granularity=Granularity.DAY, since=since, today=today)
    present = set(day_snapshots(calendar=calendar, since=since).values_list("start", flat=True))
    stale = {s.start for s in snapshots_stale(calendar=calendar, now=now) if s.granularity == Granularity.DAY}
    todo = [(start, end) for start, end in periods if start not in present or start in stale]
    # Days in order: each day's backlog is counted from the previous day's end.
    backlog = BacklogTally()
    for index, (start, end) in enumerate(todo, 1):
        snapshot_compute(
            calendar=calendar, granularity=Granularity.DAY, start=start, end=end, as_of=now, backlog=backlog
        )
        if progress is not None:
            progress(index, len(todo))
    return len(todo)


def day_snapshots(*, calendar: BusinessCalendar, since: date, until: date | None = None) -> QuerySet[ReportSnapshot]:
    """The daily snapshots of ``calendar`` under the current definitions, of the days in [since, until), by day.

    Without ``until``, every day from ``since`` on. The dashboard's trends, the
    report jobs and the backfill all read the stored days through this one
    query (the unique (calendar, granularity, start, end, version) index).
    """
    days = ReportSnapshot.objects.filter(
        calendar=calendar, granularity=Granularity.DAY, definitions_version=definitions_version(), start__gte=since
    )
    if until is not None:
        days = days.filter(start__lt=until)
    return days.order_by("start")


def snapshot_latest(*, calendar: BusinessCalendar, start: date, end: date) -> ReportSnapshot | None:
    """The most recently computed snapshot of exactly [start, end) under the current definitions."""
    return (
        ReportSnapshot.objects.filter(
            calendar=calendar, start=start, end=end, definitions_version=definitions_version()
        )
        .select_related("calendar")
        .order_by("-computed_at", "-pk")
        .first()
    )


def granularity_of(start: date, end: date) -> str:
    """The granularity a period [start, end) has: a day, a Monday week, a calendar month or custom."""
    if end - start == timedelta(days=1):
        return Granularity.DAY
    if end - start == timedelta(days=7) and start.weekday() == 0:
        return Granularity.WEEK
    if start.day == 1 and end == next_month(start):
        return Granularity.MONTH
    return Granularity.CUSTOM


# --- jobs --------------------------------------------------------------------


def report_job_create(
    *,
    user: Any,
    calendar: BusinessCalendar,
    start: date,
    end: date,
    as_of: datetime,
    include_daily: bool = False,
) -> ReportJob:
    """Queue the computation of one report; a worker runs it after commit.

    Errors: ``ApplicationError`` when start >= end. Not deduplicated: each
    call is a new job, and jobs for the same period write the same snapshot.
    """
    from reports.tasks import report_job_run_task

    if start >= end:
        raise ApplicationError(_("The period must end after it starts."), field="end")
    with transaction.atomic():
        job = ReportJob.objects.create(
            requested_by=user if getattr(user, "pk", None) else None,
            calendar=calendar,
            start=start,
            end=end,
            as_of=as_of,
            include_daily=include_daily,
            created_at=timezone.now(),
        )
        # With the broker down the job stays pending (and says so) instead of failing the request.
        transaction.on_commit(lambda: task_enqueue(report_job_run_task, job.pk))
    return job


def _job_progress(job_id: int, claimed_at: datetime, progress: int) -> None:
    ReportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, claimed_at=claimed_at).update(progress=progress)


def _job_claimable(now: datetime) -> Q:
    """Queued, or running under a claim older than the lease (its worker was lost).

    Jobs claimed before claims were stamped count from their creation.
    """
    expired = now - JOB_LEASE
    return Q(status=JobStatus.QUEUED) | Q(
        Q(claimed_at__lt=expired) | Q(claimed_at__isnull=True, created_at__lt=expired), status=JobStatus.RUNNING
    )


def report_job_run(*, job_id: int) -> str:
    """Run a queued job: claim it, compute its snapshot (and missing daily ones), record the result.

    At most one run at a time: the claim is one UPDATE to ``running`` that
    stamps ``claimed_at``, where the job is queued or its claim is older than
    ``JOB_LEASE`` (a lost worker's); only the caller that changed the row
    computes, every other call returns the job's status. A finished or failed
    job is left alone; a taken-over job is computed again into the same
    snapshots, and only the run holding the latest claim records the result.
    Progress is written between stages (claimed 5, each missing day, the
    period's report, stored 100). Returns the final status.
    """
    claimed_at = timezone.now()
    claimed = ReportJob.objects.filter(_job_claimable(claimed_at), pk=job_id).update(
        status=JobStatus.RUNNING, progress=5, claimed_at=claimed_at
    )
    if not claimed:
        job = ReportJob.objects.filter(pk=job_id).first()
        return job.status if job is not None else "missing"
    job = ReportJob.objects.select_related("calendar").get(pk=job_id)
    try:
        days: list[tuple[date, date]] = []
        if job.include_daily:
            today = min(job.end, local_today(job.calendar, job.as_of))
            present = set(
                day_snapshots(calendar=job.calendar, since=job.start, until=job.end).values_list("start", flat=True)
            )
            days = [
                p
                for p in ended_periods(granularity=Granularity.DAY, since=job.start, today=today)
                if p[0] not in present
            ]
        steps = len(days) + 1
        backlog = BacklogTally()
        for index, (start, end) in enumerate(days):
            snapshot_compute(
                calendar=job.calendar,
                granularity=Granularity.DAY,
                start=start,
                end=end,
                as_of=job.as_of,
                backlog=backlog,
            )
            _job_progress(job.pk, claimed_at, 5 + (90 * (index + 1)) // steps)
        snapshot = snapshot_compute(
            calendar=job.calendar,
            granularity=granularity_of(job.start, job.end),
            start=job.start,
            end=job.end,
            as_of=job.as_of,
            backlog=backlog,
        )
    except Exception as exc:
        logger.exception("report job %s failed", job_id)
        ReportJob.objects.filter(pk=job_id, claimed_at=claimed_at).update(
            status=JobStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        return JobStatus.FAILED
    ReportJob.objects.filter(pk=job_id, claimed_at=claimed_at).update(
        status=JobStatus.DONE,
        progress=100,
        snapshot=snapshot,
        result=snapshot.figures,
        finished_at=timezone.now(),
    )
    return JobStatus.DONE


def report_jobs_pending_dispatch(*, now: datetime | None = None) -> int:
    """Enqueue again the jobs whose task was lost: queued for more than a minute
    (the broker was down when they were requested), or running under a claim
    older than ``JOB_LEASE`` (the worker was lost).

    Computes nothing itself: the claim in ``report_job_run`` lets one run
    compute a job, so this may run twice, or beside the first task, and each
    job is still computed once. At most ``JOB_DISPATCH_BATCH`` per run, oldest
    first; stops at the first enqueue the broker refuses. Returns how many
    were enqueued.
    """
    from reports.tasks import report_job_run_task

    now = now or timezone.now()
    ids = list(
        ReportJob.objects.filter(_job_claimable(now), created_at__lt=now - JOB_PENDING_AGE)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:JOB_DISPATCH_BATCH]
    )
    enqueued = 0
    for pk in ids:
        if not task_enqueue(report_job_run_task, pk):
            break
        enqueued += 1
    return enqueued
