"""Staffing forecast (docs/metrics.md#staffing): agents needed per hour of the week.

From a measured range of sessions of one channel:

- arrivals per hour of the week = the sessions requested in that local hour
  (weekday and hour in the calendar's zone), short abandons left out, divided
  by ``weeks`` (the number of weeks the range covers, given by the caller);
- AHT per hour of the week = mean of (ended - answered + after-contact work)
  of the sessions requested in that hour that were answered and have ended;
  an hour with arrivals but no such session uses the AHT of the whole range;
- agents needed and scheduled per hour from ``reports.erlang``.

Counting happens in the database, grouped by local weekday and hour. On
PostgreSQL the instant is turned into local time with ``AT TIME ZONE``.
SQLite has no time zones: the zone's UTC offsets over the range are worked
out here (a walk over the range in 15-minute steps, the finest step at which
zones change their offset, never over sessions) and applied with a CASE on
the instant; weekday and hour then follow from integer arithmetic. Both give
the same buckets (tests cover a DST change).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Min

from reports import erlang
from reports.live import db_instant, mean_seconds, short_abandon_seconds
from reports.sql import epoch_us_sql
from servicedesk.core.epoch import epoch_us
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Session

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000
_STEP = timedelta(minutes=15)

_BUCKET_SQL = """
SELECT dow, hr,
       SUM(CASE WHEN abandoned_at IS NOT NULL AND {abandoned} - {requested} < %s THEN 0 ELSE 1 END),
       SUM(CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL
                THEN {ended} - {answered} + after_work_seconds * 1000000 ELSE 0 END)
FROM (
    SELECT requested_at, answered_at, abandoned_at, ended_at, after_work_seconds, {dow} AS dow, {hour} AS hr
    FROM {session}
    WHERE channel = %s AND requested_at >= %s AND requested_at < %s
) s
GROUP BY dow, hr
"""


def _offsets(time_zone: str, start_utc: datetime, end_utc: datetime) -> list[tuple[int, int]]:
    """(from microsecond, UTC offset in microseconds) for each stretch of constant offset in the range."""
    tz = ZoneInfo(time_zone)
    stretches: list[tuple[int, int]] = []
    instant = start_utc
    while instant < end_utc:
        offset = instant.astimezone(tz).utcoffset() or timedelta(0)
        offset_us = offset // timedelta(microseconds=1)
        if not stretches or stretches[-1][1] != offset_us:
            stretches.append((epoch_us(instant), offset_us))
        instant += _STEP
    return stretches


def _bucket_sql(time_zone: str, start_utc: datetime, end_utc: datetime) -> tuple[str, str, list[Any]]:
    """SQL for the local weekday (Monday = 0) and hour of ``requested_at``, and their parameters."""
    if connection.vendor == "postgresql":
        local = "(requested_at AT TIME ZONE %s)"
        return (
            f"CAST(EXTRACT(ISODOW FROM {local}) AS INTEGER) - 1",
            f"CAST(EXTRACT(HOUR FROM {local}) AS INTEGER)",
            [time_zone, time_zone],
        )
    stretches = _offsets(time_zone, start_utc, end_utc) or [(0, 0)]
    instant = epoch_us_sql("requested_at")
    params: list[Any] = []
    cases = []
    for (_start, offset), (following, _next) in itertools.pairwise(stretches):
        cases.append(f"WHEN {instant} < %s THEN %s")
        params += [following, offset]
    local = f"({instant} + CASE {' '.join(cases)} ELSE %s END)" if cases else f"({instant} + %s)"
    params.append(stretches[-1][1])
    # Days since 1970-01-01, a Thursday (Monday = 0, so Thursday = 3). The
    # modulo is written %% as the SQL carries parameters.
    return f"(({local} / {_DAY_US}) + 3) %% 7", f"(({local} %% {_DAY_US}) / {_HOUR_US})", params + params


# The page measures at most this many whole weeks by default; defaults look this far back for sessions.
DEFAULT_WEEKS = 4
LOOKBACK_WEEKS = 26


@dataclass(frozen=True)
class StaffingDefaults:
    """The forecast's starting inputs, taken from the sessions measured before ``end_utc``."""

    channel: str
    weeks: int
    sessions: int


def staffing_defaults(*, end_utc: datetime, channels: tuple[str, ...]) -> StaffingDefaults:
    """The live channel with the most sessions requested in the ``LOOKBACK_WEEKS`` weeks before ``end_utc``
    (the first of ``channels`` when none has any), and the whole weeks since that channel's first session
    there, between 1 and ``DEFAULT_WEEKS``: a channel opened two weeks ago is measured over two weeks, not
    diluted by empty ones. One query, by the (channel, requested_at) index.
    """
    rows = (
        Session.objects.filter(
            channel__in=channels,
            requested_at__gte=end_utc - timedelta(weeks=LOOKBACK_WEEKS),
            requested_at__lt=end_utc,
        )
        .values("channel")
        .annotate(sessions=Count("pk"), first=Min("requested_at"))
    )
    found = {row["channel"]: (row["sessions"], row["first"]) for row in rows}
    if not found:
        return StaffingDefaults(channel=channels[0], weeks=DEFAULT_WEEKS, sessions=0)
    channel = max(channels, key=lambda name: (found.get(name, (0, None))[0], -channels.index(name)))
    sessions, first = found[channel]
    weeks = math.ceil((end_utc - first) / timedelta(weeks=1))
    return StaffingDefaults(channel=channel, weeks=max(1, min(DEFAULT_WEEKS, weeks)), sessions=sessions)


def _round(value: float, places: int) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def staffing_forecast(
    *,
    start_utc: datetime,
    end_utc: datetime,
    calendar: BusinessCalendar | None,
    channel: str,
    target_sl: float,
    threshold_seconds: float,
    shrinkage: float,
    max_occupancy: float | None = None,
    weeks: int,
) -> dict[str, Any]:
    """The week grid of agents needed for ``channel`` from the sessions requested in [start_utc, end_utc).

    ``calendar`` gives the zone of the grid (None: UTC). Returns plain data:
    ``days`` (Monday first) of 24 ``hours`` each, with the measured
    ``arrivals_per_hour`` and ``aht_seconds`` and the computed ``load``,
    ``agents``, ``scheduled``, ``service_level``, ``asa_seconds`` and
    ``occupancy`` (null without arrivals). One query.

    Errors: ValueError for ``weeks`` below 1 or targets out of range (see erlang.agents_needed).
    """
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    time_zone = calendar.time_zone if calendar is not None else "UTC"
    dow_sql, hour_sql, bucket_params = _bucket_sql(time_zone, start_utc, end_utc)
    sql = _BUCKET_SQL.format(
        abandoned=epoch_us_sql("abandoned_at"),
        requested=epoch_us_sql("requested_at"),
        ended=epoch_us_sql("ended_at"),
        answered=epoch_us_sql("answered_at"),
        dow=dow_sql,
        hour=hour_sql,
        session=connection.ops.quote_name(Session._meta.db_table),
    )
    params = [short_abandon_seconds() * 1_000_000, *bucket_params, channel, db_instant(start_utc), db_instant(end_utc)]
    measured: dict[tuple[int, int], tuple[int, int, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for dow, hour, arrivals, handled, handle_us in cursor.fetchall():
            measured[(int(dow), int(hour))] = (int(arrivals or 0), int(handled or 0), int(handle_us or 0))
    total_handled = sum(handled for _a, handled, _h in measured.values())
    overall_aht = mean_seconds(sum(h for _a, _n, h in measured.values()), total_handled)
    days = []
    for weekday in range(7):
        hours = []
        for hour in range(24):
            arrivals, handled, handle_us = measured.get((weekday, hour), (0, 0, 0))
            aht = mean_seconds(handle_us, handled)
            cell: dict[str, Any] = {
                "hour": hour,
                "arrivals_per_hour": _round(arrivals / weeks, 4),
                "aht_seconds": aht,
                "load": None,
                "agents": 0,
                "scheduled": 0,
                "service_level": None,
                "asa_seconds": None,
                "occupancy": None,
            }
            used_aht = aht if aht is not None else overall_aht
            if arrivals and used_aht:
                result = erlang.agents_needed(
                    arrivals_per_hour=arrivals / weeks,
                    aht_seconds=used_aht,
                    target_sl=target_sl,
                    threshold_seconds=threshold_seconds,
                    shrinkage=shrinkage,
                    max_occupancy=max_occupancy,
                )
                cell.update(
                    load=_round(result.load, 4),
                    agents=result.agents,
                    scheduled=result.scheduled,
                    service_level=_round(result.service_level or 0.0, 4),
                    asa_seconds=_round(result.asa_seconds or 0.0, 2),
                    occupancy=_round(result.occupancy or 0.0, 4),
                )
            hours.append(cell)
        days.append({"weekday": weekday, "hours": hours})
    return {
        "channel": channel,
        "time_zone": time_zone,
        "weeks": weeks,
        "target_sl": target_sl,
        "threshold_seconds": threshold_seconds,
        "shrinkage": shrinkage,
        "max_occupancy": max_occupancy,
        "aht_seconds": overall_aht,
        "arrivals": sum(arrivals for arrivals, _n, _h in measured.values()),
        "days": days,
    }
