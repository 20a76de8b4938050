"""Live channels (chat, phone): service levels, ASA, abandonment, AHT, occupancy, cost.

docs/metrics.md#live defines every figure; this module counts them in the
database. Waits and durations are compared and summed in whole microseconds
(``EpochMicros``), so a wait of exactly T is "within T" and a wait of 4.999 s
is a short abandon on SQLite and PostgreSQL alike.

What ``as_of`` means here (metric code never reads the clock):

- the sessions of a period are those requested in [start, end) at or before
  ``as_of``; all of them are *offered*;
- a session counts as answered (or abandoned) only if that happened at or
  before ``as_of``; one answered later was still waiting at ``as_of`` and is
  neither answered nor abandoned (it stays in the offered-based figures);
- a handle time needs the end at or before ``as_of``;
- busy and ready time are cut at the earlier of the period's end and ``as_of``;
  a session answered but not ended by then is busy up to that instant.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, Count, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast

from reports.sql import EpochMicros, epoch_us_sql
from servicedesk.accounts.models import User
from servicedesk.core.epoch import epoch_us
from servicedesk.tickets.models import AgentPresence, OperatingCost, PresenceState, Session, SessionChannel

_US = 1_000_000
LIVE_CHANNELS = tuple(SessionChannel.values)
LIVE_KEYS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "service_level",
    "service_level_offered",
    "service_level_positive",
    "service_level_answered",
    "service_level_excluding_short",
    "asa_seconds",
    "abandonment_rate",
    "abandonment_rate_raw",
    "aht_seconds",
    "threshold_seconds",
)


# --- portable pieces -----------------------------------------------------------


def db_instant(instant: datetime) -> Any:
    """An aware datetime as a raw-SQL parameter for a DateTimeField column."""
    return connection.ops.adapt_datetimefield_value(instant)


def ratio(numerator: int, denominator: int, places: int = 4) -> float | None:
    """numerator / denominator rounded half up to ``places`` decimals; None without a denominator."""
    if not denominator:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def mean_seconds(total_us: int | None, count: int) -> float | None:
    """The mean of ``count`` durations summing to ``total_us`` microseconds, in seconds, 2 decimals."""
    if not count or total_us is None:
        return None
    exact = Decimal(int(total_us)) / Decimal(count) / _US
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def live_thresholds() -> dict[str, int]:
    return {channel: int(seconds) for channel, seconds in settings.SERVICEDESK["LIVE_THRESHOLD_SECONDS"].items()}


def short_abandon_seconds() -> int:
    return int(settings.SERVICEDESK["SHORT_ABANDON_SECONDS"])


# --- sessions --------------------------------------------------------------------


def sessions_offered(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> QuerySet[Session]:
    """The sessions requested in [start_utc, end_utc) and at or before ``as_of``."""
    # The channel condition lets the (channel, requested_at) index serve the range.
    return Session.objects.filter(
        channel__in=LIVE_CHANNELS,
        requested_at__gte=start_utc,
        requested_at__lt=end_utc,
        requested_at__lte=as_of,
    )


def sessions_answered(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> QuerySet[Session]:
    """The period's sessions answered at or before ``as_of`` (for cost per contact)."""
    return sessions_offered(start_utc=start_utc, end_utc=end_utc, as_of=as_of).filter(
        answered_at__isnull=False,
        answered_at__lte=as_of,
    )


def sessions_answered_handled(*, start_utc: datetime, end_utc: datetime, as_of: datetime, handled_sql: str) -> int:
    """Of ``sessions_answered``, those linked to one of the tickets ``handled_sql`` selects (an id column).

    A session a merge moved is linked to the ticket it was first moved off
    (``moved_from``), as of any instant (docs/metrics.md#merges). Read from
    the handled tickets' side: each looks up its sessions on the session's
    ticket index, and its moved ones on ``session_moved_from``.
    """
    answered = sessions_answered(start_utc=start_utc, end_utc=end_utc, as_of=as_of)
    sql, params = answered.values("id").query.sql_with_params()
    session = Session._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM ("  # noqa: S608 (table names and the ORM's own SQL)
            f"SELECT s.id FROM ({handled_sql}) h JOIN {session} s ON s.ticket_id = h.id"
            " WHERE s.moved_from_id IS NULL"
            f" UNION ALL SELECT s.id FROM ({handled_sql}) h JOIN {session} s ON s.moved_from_id = h.id"
            " WHERE s.moved_from_id IS NOT NULL"
            f") linked WHERE linked.id IN ({sql})",
            params,
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _channel_figures(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> dict[str, dict[str, Any]]:
    thresholds = live_thresholds()
    short_us = short_abandon_seconds() * _US
    answered = Q(answered_at__isnull=False, answered_at__lte=as_of)
    abandoned = Q(abandoned_at__isnull=False, abandoned_at__lte=as_of)
    handled = answered & Q(ended_at__isnull=False, ended_at__lte=as_of)
    answer_within = Q()
    abandon_within = Q()
    for channel in LIVE_CHANNELS:
        limit = thresholds[channel] * _US
        answer_within |= Q(channel=channel, answer_wait__lte=limit)
        abandon_within |= Q(channel=channel, abandon_wait__lte=limit)
    rows = (
        sessions_offered(start_utc=start_utc, end_utc=end_utc, as_of=as_of)
        .annotate(
            answer_wait=EpochMicros("answered_at") - EpochMicros("requested_at"),
            abandon_wait=EpochMicros("abandoned_at") - EpochMicros("requested_at"),
            handle=EpochMicros("ended_at")
            - EpochMicros("answered_at")
            + Cast("after_work_seconds", BigIntegerField()) * Value(_US, output_field=BigIntegerField()),
        )
        .values("channel")
        .annotate(
            offered=Count("pk"),
            answered=Count("pk", filter=answered),
            abandoned=Count("pk", filter=abandoned),
            short_abandoned=Count("pk", filter=abandoned & Q(abandon_wait__lt=short_us)),
            answered_within=Count("pk", filter=answered & answer_within),
            abandoned_within=Count("pk", filter=abandoned & abandon_within),
            wait_us=Sum("answer_wait", filter=answered),
            handled=Count("pk", filter=handled),
            handle_us=Sum("handle", filter=handled),
        )
        .order_by("channel")
    )
    return {row["channel"]: row for row in rows}


def _live_channel(row: dict[str, Any] | None, threshold: int) -> dict[str, Any]:
    row = row or {}
    offered = row.get("offered", 0)
    answered = row.get("answered", 0)
    abandoned = row.get("abandoned", 0)
    short = row.get("short_abandoned", 0)
    within = row.get("answered_within", 0)
    abandoned_within = row.get("abandoned_within", 0)
    abandoned_after = abandoned - abandoned_within
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "short_abandoned": short,
        "service_level": ratio(within, answered + abandoned_after),
        "service_level_offered": ratio(within, offered),
        "service_level_positive": ratio(within + abandoned_within, offered),
        "service_level_answered": ratio(within, answered),
        "service_level_excluding_short": ratio(within, offered - short),
        "asa_seconds": mean_seconds(row.get("wait_us"), answered),
        "abandonment_rate": ratio(abandoned - short, offered - short),
        "abandonment_rate_raw": ratio(abandoned, offered),
        "aht_seconds": mean_seconds(row.get("handle_us"), row.get("handled", 0)),
        "threshold_seconds": threshold,
    }


# --- occupancy ---------------------------------------------------------------------

# The union of each agent's busy intervals [answered, ended + after-contact work),
# cut to [start, upto): islands start where an interval begins after every
# earlier one has ended (gaps and islands over a running maximum).
_BUSY_SQL = """
WITH raw AS (
    SELECT agent_id, {answered} AS a_us, {ended} + CAST(after_work_seconds AS BIGINT) * 1000000 AS e_us
    FROM {session}
    WHERE agent_id IS NOT NULL AND answered_at IS NOT NULL AND answered_at < %s
), cut AS (
    SELECT agent_id,
           CASE WHEN a_us < %s THEN %s ELSE a_us END AS s,
           CASE WHEN e_us IS NULL OR e_us > %s THEN %s ELSE e_us END AS e
    FROM raw
), marked AS (
    SELECT agent_id, s, e,
           MAX(e) OVER (PARTITION BY agent_id ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM cut WHERE e > s
), grouped AS (
    SELECT agent_id, s, e,
           SUM(CASE WHEN reach IS NULL OR s > reach THEN 1 ELSE 0 END)
               OVER (PARTITION BY agent_id ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island
    FROM marked
), islands AS (
    SELECT agent_id, MIN(s) AS s, MAX(e) AS e FROM grouped GROUP BY agent_id, island
)
SELECT agent_id, SUM(e - s) FROM islands GROUP BY agent_id
"""

# Time in state "ready": each presence row lasts until the agent's next row
# (LEAD); the rows read are the one in force at the start and those after it.
# The rows are one history: routing's availability changes (online = ready),
# its presence expiry and imported presence (docs/architecture.md, "Presence").
_READY_SQL = """
WITH spans AS (
    SELECT agent_id, state, {at} AS s_us,
           LEAD({at}) OVER (PARTITION BY agent_id ORDER BY at) AS next_us
    FROM {presence} p
    WHERE at < %s AND (
        at >= %s OR at = (SELECT MAX(q.at) FROM {presence} q WHERE q.agent_id = p.agent_id AND q.at < %s)
    )
)
SELECT agent_id,
       SUM(CASE WHEN next_us IS NULL OR next_us > %s THEN %s ELSE next_us END
           - CASE WHEN s_us < %s THEN %s ELSE s_us END)
FROM spans WHERE state = %s GROUP BY agent_id
"""


def occupancy_seconds(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> dict[int, tuple[int, int]]:
    """Per agent id: (busy, ready) microseconds within [start_utc, min(end_utc, as_of))."""
    upto = min(end_utc, as_of)
    if upto <= start_utc:
        return {}
    start_us, upto_us = epoch_us(start_utc), epoch_us(upto)
    quote = connection.ops.quote_name
    busy_sql = _BUSY_SQL.format(
        answered=epoch_us_sql("answered_at"),
        ended=epoch_us_sql("ended_at"),
        session=quote(Session._meta.db_table),
    )
    ready_sql = _READY_SQL.format(at=epoch_us_sql("at"), presence=quote(AgentPresence._meta.db_table))
    found: dict[int, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(busy_sql, [db_instant(upto), start_us, start_us, upto_us, upto_us])
        for agent_id, busy in cursor.fetchall():
            found.setdefault(agent_id, [0, 0])[0] = int(busy or 0)
        cursor.execute(
            ready_sql,
            [
                db_instant(upto),
                db_instant(start_utc),
                db_instant(start_utc),
                upto_us,
                upto_us,
                start_us,
                start_us,
                PresenceState.READY,
            ],
        )
        for agent_id, ready in cursor.fetchall():
            found.setdefault(agent_id, [0, 0])[1] = int(ready or 0)
    return {agent_id: (busy, ready) for agent_id, (busy, ready) in found.items()}


def _occupancy(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> dict[str, Any]:
    per_agent = occupancy_seconds(start_utc=start_utc, end_utc=end_utc, as_of=as_of)
    emails = dict(User.objects.filter(pk__in=per_agent).values_list("pk", "email"))
    by_agent = {
        emails.get(agent_id) or str(agent_id): ratio(busy, ready)
        for agent_id, (busy, ready) in per_agent.items()
        if busy or ready
    }
    return {
        "team": ratio(sum(busy for busy, _r in per_agent.values()), sum(ready for _b, ready in per_agent.values())),
        "by_agent": dict(sorted(by_agent.items())),
    }


# --- the report part -------------------------------------------------------------------


def live_report(*, start_utc: datetime, end_utc: datetime, as_of: datetime) -> dict[str, Any]:
    """The "live" and "occupancy" figures of docs/metrics.md#report-json, and the number of
    answered sessions of the period (for cost per contact).

    Three queries for the channel figures and occupancy, one for agents' emails,
    one for the count; no loop over sessions.
    """
    thresholds = live_thresholds()
    rows = _channel_figures(start_utc=start_utc, end_utc=end_utc, as_of=as_of)
    answered = sessions_answered(start_utc=start_utc, end_utc=end_utc, as_of=as_of).count()
    return {
        "live": {channel: _live_channel(rows.get(channel), thresholds[channel]) for channel in LIVE_CHANNELS},
        "occupancy": _occupancy(start_utc=start_utc, end_utc=end_utc, as_of=as_of),
        "sessions_answered": answered,
    }


def cost_for_period(start: date, end: date) -> tuple[Decimal, str] | None:
    """The operating cost entered for exactly [start, end) (local dates, end exclusive), or None."""
    return costs_within(start, end).get((start, end))


def costs_within(first: date, last: date) -> dict[tuple[date, date], tuple[Decimal, str]]:
    """(period start, period end) -> (amount, currency) of the operating costs entered for periods in [first, last)."""
    rows = OperatingCost.objects.filter(period_start__gte=first, period_end__lte=last).values_list(
        "period_start", "period_end", "amount", "currency"
    )
    return {
        (start, end): (Decimal(amount).quantize(Decimal("0.01")), currency) for start, end, amount, currency in rows
    }
