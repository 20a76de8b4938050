"""Snapshots: one row per period however often it is computed, and staleness after late events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from reports.models import Granularity, ReportSnapshot
from reports.services import DEFINITIONS_VERSION
from reports.snapshots import (
    backlog_count,
    ended_periods,
    snapshot_compute,
    snapshot_is_stale,
    snapshots_due,
    snapshots_stale,
)
from tests.reports.delivery_helpers import TOP_LEVEL_KEYS, calendar_make, ticket_answered, ticket_opened

pytestmark = pytest.mark.django_db

# Periods of October 2025 in Dublin, evaluated long after they settled.
AS_OF = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def october(dublin, queue, agent):
    """Two tickets on 20 October (local), one on 21 October."""
    first = ticket_answered(
        ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC)),
        agent,
        datetime(2025, 10, 20, 8, 30, tzinfo=UTC),
        solve_after=timedelta(hours=1),
    )
    second = ticket_opened(queue, datetime(2025, 10, 20, 22, 0, tzinfo=UTC), channel="web")
    third = ticket_opened(queue, datetime(2025, 10, 21, 9, 0, tzinfo=UTC))
    return first, second, third


def test_recomputing_a_snapshot_replaces_the_same_row(dublin, october):
    first = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 20),
        end=date(2025, 10, 21),
        as_of=AS_OF,
    )
    again = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 20),
        end=date(2025, 10, 21),
        as_of=AS_OF,
    )
    assert ReportSnapshot.objects.count() == 1
    assert again.pk == first.pk
    stored = ReportSnapshot.objects.get()
    assert stored.figures == first.figures
    assert list(stored.figures)[: len(TOP_LEVEL_KEYS)] == TOP_LEVEL_KEYS
    assert stored.definitions_version == DEFINITIONS_VERSION == stored.figures["definitions_version"]
    assert stored.figures["period"] == {
        "start": "2025-10-20",
        "end": "2025-10-21",
        "timezone": "Europe/Dublin",
        "calendar": "dublin",
    }
    assert stored.figures["tickets"]["in_scope"] == 2
    assert stored.figures["tickets"]["by_channel"] == {"email": 1, "web": 1}
    # Unsolved at as_of: the second ticket of the day and the one of the next day; at the
    # period's end (21 October 00:00 IST = 20 October 23:00 UTC) only the second.
    assert stored.figures["backlog"] == {"open": 2, "at_period_end": 1}
    # The last change of the cohort: the creation of the second ticket (after the first one's solve).
    assert stored.source_changed_at == datetime(2025, 10, 20, 22, 0, tzinfo=UTC)


def test_backlog_counts_unsolved_tickets_at_an_instant(october):
    assert backlog_count(at=datetime(2025, 10, 20, 8, 45, tzinfo=UTC)) == 1
    assert backlog_count(at=datetime(2025, 10, 20, 9, 30, tzinfo=UTC)) == 0
    assert backlog_count(at=datetime(2025, 10, 20, 23, 0, tzinfo=UTC)) == 1
    assert backlog_count(at=datetime(2025, 10, 21, 9, 0, tzinfo=UTC)) == 2


def test_a_late_event_makes_only_its_period_stale(dublin, october, agent):
    _first, second, _third = october
    now = timezone.now()
    day20 = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 20),
        end=date(2025, 10, 21),
        as_of=AS_OF,
    )
    day21 = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 21),
        end=date(2025, 10, 22),
        as_of=AS_OF,
    )
    week = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.WEEK,
        start=date(2025, 10, 20),
        end=date(2025, 10, 27),
        as_of=AS_OF,
    )
    assert snapshots_stale(calendar=dublin, now=now) == []
    assert not snapshot_is_stale(day20, now=now)

    # A reply imported today with its original, past timestamp.
    ticket_answered(second, agent, datetime(2025, 10, 21, 7, 0, tzinfo=UTC))

    assert {s.pk for s in snapshots_stale(calendar=dublin, now=now)} == {day20.pk, week.pk}
    assert snapshot_is_stale(day20, now=now)
    assert not snapshot_is_stale(day21, now=now)

    recomputed = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 20),
        end=date(2025, 10, 21),
        as_of=AS_OF,
    )
    assert recomputed.pk == day20.pk
    assert recomputed.figures["first_reply_minutes"]["calendar"]["n"] == 2
    assert {s.pk for s in snapshots_stale(calendar=dublin, now=now)} == {week.pk}
    assert ReportSnapshot.objects.count() == 3


def test_a_settling_period_is_refreshed_once_a_day(dublin, october):
    recent = snapshot_compute(
        calendar=dublin,
        granularity=Granularity.DAY,
        start=date(2025, 10, 20),
        end=date(2025, 10, 21),
        as_of=datetime(2025, 10, 22, 12, 0, tzinfo=UTC),
    )
    assert not snapshot_is_stale(recent, now=recent.computed_at + timedelta(hours=23))
    assert snapshot_is_stale(recent, now=recent.computed_at + timedelta(days=1))
    assert snapshots_stale(calendar=dublin, now=recent.computed_at + timedelta(days=1)) == [recent]


def test_periods_of_each_granularity_that_ended():
    today = date(2025, 11, 3)  # a Monday
    assert ended_periods(granularity="day", since=date(2025, 10, 31), today=today) == [
        (date(2025, 10, 31), date(2025, 11, 1)),
        (date(2025, 11, 1), date(2025, 11, 2)),
        (date(2025, 11, 2), date(2025, 11, 3)),
    ]
    assert ended_periods(granularity="week", since=date(2025, 10, 22), today=today) == [
        (date(2025, 10, 20), date(2025, 10, 27)),
        (date(2025, 10, 27), date(2025, 11, 3)),
    ]
    assert ended_periods(granularity="month", since=date(2025, 9, 15), today=today) == [
        (date(2025, 9, 1), date(2025, 10, 1)),
        (date(2025, 10, 1), date(2025, 11, 1)),
    ]


def test_beat_computes_missing_periods_once_and_recomputes_only_stale_ones(dublin, queue, agent):
    now = timezone.now()
    ticket = ticket_opened(queue, now - timedelta(days=3))
    first = snapshots_due(now=now, calendars=[dublin])
    rows = ReportSnapshot.objects.filter(calendar=dublin)
    today = now.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Dublin")).date()
    since = today - timedelta(days=35)
    expected = {
        granularity: len(ended_periods(granularity=granularity, since=since, today=today))
        for granularity in ("day", "week", "month")
    }
    assert {g: rows.filter(granularity=g).count() for g in ("day", "week", "month")} == expected
    assert first == {"computed": sum(expected.values()), "stale": 0}
    ids = set(rows.values_list("pk", flat=True))

    assert snapshots_due(now=now, calendars=[dublin]) == {"computed": 0, "stale": 0}

    ticket_answered(ticket, agent, now - timedelta(days=2))
    again = snapshots_due(now=now, calendars=[dublin])
    # The ticket's day, its week and (unless the month just began) its month.
    created_day = ticket.created_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Dublin")).date()
    touched = rows.filter(start__lte=created_day, end__gt=created_day).count()
    assert again == {"computed": touched, "stale": touched}
    assert set(rows.values_list("pk", flat=True)) == ids


def test_a_late_live_session_or_presence_makes_its_period_stale(dublin, october, agent):
    from servicedesk.tickets.models import Session
    from servicedesk.tickets.services.sessions import agent_presence_record, sessions_record
    from tests.factories import CustomerFactory

    now = timezone.now()
    day20, day21 = (
        snapshot_compute(
            calendar=dublin, granularity=Granularity.DAY, start=start, end=start + timedelta(days=1), as_of=AS_OF
        )
        for start in (date(2025, 10, 20), date(2025, 10, 21))
    )
    assert snapshots_stale(calendar=dublin, now=now) == []
    # A chat of 20 October (local) imported today.
    at = datetime(2025, 10, 20, 14, 0, tzinfo=UTC)
    sessions_record(
        sessions=[
            Session(
                channel="chat",
                customer=CustomerFactory(),
                agent=agent,
                requested_at=at,
                answered_at=at,
                ended_at=at + timedelta(minutes=5),
                external_id="late-chat",
            ),
        ]
    )
    assert [s.pk for s in snapshots_stale(calendar=dublin, now=now)] == [day20.pk]
    assert snapshot_is_stale(day20, now=now) and not snapshot_is_stale(day21, now=now)
    day20 = snapshot_compute(
        calendar=dublin, granularity=Granularity.DAY, start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=AS_OF
    )
    assert day20.figures["live"]["chat"]["answered"] == 1
    # The agent's ready time from 21 October on changes that day's occupancy, not the 20th's.
    agent_presence_record(agent=agent, at=datetime(2025, 10, 21, 8, 0, tzinfo=UTC), state="ready", source="import")
    assert {s.pk for s in snapshots_stale(calendar=dublin, now=now)} == {day21.pk}


def test_an_operating_cost_entered_or_corrected_later_makes_exactly_its_period_stale(dublin, october):
    from decimal import Decimal

    from servicedesk.tickets.services.sessions import operating_cost_set

    now = timezone.now()
    day20, day21 = (
        snapshot_compute(
            calendar=dublin, granularity=Granularity.DAY, start=start, end=start + timedelta(days=1), as_of=AS_OF
        )
        for start in (date(2025, 10, 20), date(2025, 10, 21))
    )
    week = snapshot_compute(
        calendar=dublin, granularity=Granularity.WEEK, start=date(2025, 10, 20), end=date(2025, 10, 27), as_of=AS_OF
    )
    assert day20.figures["cost_per_contact"] == {"amount": None, "currency": None, "contacts": 1}
    assert snapshots_stale(calendar=dublin, now=now) == []
    # A manager enters the cost of 20 October after its snapshot was computed.
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 10, 21), amount=Decimal("90"), currency="EUR"
    )
    assert [s.pk for s in snapshots_stale(calendar=dublin, now=now)] == [day20.pk]
    assert snapshot_is_stale(day20, now=now)
    assert not snapshot_is_stale(day21, now=now) and not snapshot_is_stale(week, now=now)
    day20 = snapshot_compute(
        calendar=dublin, granularity=Granularity.DAY, start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=AS_OF
    )
    assert day20.figures["cost_per_contact"] == {"amount": 90.0, "currency": "EUR", "contacts": 1}
    assert snapshots_stale(calendar=dublin, now=now) == []
    # Setting the same figure again changes nothing; correcting it does.
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 10, 21), amount=Decimal("90.00"), currency="EUR"
    )
    assert not snapshot_is_stale(day20, now=now)
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 10, 21), amount=Decimal("120"), currency="EUR"
    )
    assert [s.pk for s in snapshots_stale(calendar=dublin, now=now)] == [day20.pk]
    assert snapshot_is_stale(day20, now=now)
