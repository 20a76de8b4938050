"""Backlog figures of snapshots: the same as ``backlog_count``, counted once per backfill and per day.

A week of October 2025 in Dublin (IST, UTC+1: a local day ends at 23:00 UTC)
with solves, reopens (one two days after its solve), solved -> closed, an
out-of-scope ticket, and a creation and a solve exactly at a day's end.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reports import snapshots
from reports.models import Granularity, ReportSnapshot
from reports.snapshots import BacklogTally, backlog_count, period_bounds, snapshot_compute, snapshots_backfill
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.reports.delivery_helpers import calendar_make, ticket_opened

pytestmark = pytest.mark.django_db

FIRST_DAY = date(2025, 10, 20)
DAYS = 5
NOW = datetime(2025, 10, 25, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC)


def moved(ticket: Ticket, status: str, when: datetime) -> None:
    ticket_status_change(ticket=ticket, status=status, actor=Actor.system(), at=when)


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def history(dublin, queue):
    """Tickets of 20-24 October changing status across the days."""
    reopened = ticket_opened(queue, at(20, 8))
    moved(reopened, "solved", at(20, 10))
    moved(reopened, "open", at(22, 9))  # reopened two days after its solve
    moved(reopened, "solved", at(23, 12))

    at_the_edge = ticket_opened(queue, at(20, 22, 30))
    moved(at_the_edge, "pending", at(21, 9))
    moved(at_the_edge, "open", at(21, 15))
    moved(at_the_edge, "solved", at(22, 23))  # exactly at the end of 22 October (local)

    closed_and_reopened = ticket_opened(queue, at(21, 23))  # exactly at local midnight of 22 October
    moved(closed_and_reopened, "solved", at(22, 8))
    moved(closed_and_reopened, "closed", at(23, 8))  # neither a solve nor a reopen
    moved(closed_and_reopened, "open", at(24, 10))

    spam = ticket_opened(queue, at(21, 10))
    moved(spam, "solved", at(22, 10))
    moved(spam, "open", at(23, 10))
    Ticket.objects.filter(pk=spam.pk).update(is_spam=True)

    ticket_opened(queue, at(23, 14))
    late = ticket_opened(queue, at(24, 21))
    moved(late, "solved", at(25, 9))  # after the last day, before as_of


def day_ends(calendar) -> list[datetime]:
    return [
        period_bounds(calendar, FIRST_DAY + timedelta(days=n), FIRST_DAY + timedelta(days=n + 1))[1]
        for n in range(DAYS)
    ]


def test_backfill_backlog_equals_backlog_count_at_each_days_end(dublin, history):
    assert snapshots_backfill(calendar=dublin, since=FIRST_DAY, now=NOW) == DAYS

    stored = [
        ReportSnapshot.objects.get(granularity=Granularity.DAY, start=FIRST_DAY + timedelta(days=n)).figures["backlog"]
        for n in range(DAYS)
    ]
    ends = day_ends(dublin)
    assert stored == [{"open": backlog_count(at=NOW), "at_period_end": backlog_count(at=end)} for end in ends]
    # 20th: two created, one solved. 21st: +1 spam (out of scope), +1 at the very end.
    # 22nd: one reopen, two solves (one at the very end). 23rd: one solve, one created, closed is no reopen.
    # 24th: one reopen, one created. As of the 25th: the last one solved.
    assert [figures["at_period_end"] for figures in stored] == [1, 2, 1, 1, 3]
    assert stored[0]["open"] == 2


def test_a_tally_asked_in_any_order_equals_backlog_count(dublin, history):
    instants = [*day_ends(dublin), NOW, at(20, 10), at(22, 9), at(21, 23), at(19, 0), at(26, 0)]
    random.Random(7).shuffle(instants)
    tally = BacklogTally()
    assert [tally.count(at=instant) for instant in instants] == [backlog_count(at=instant) for instant in instants]


def test_a_backfill_counts_each_day_from_the_previous_days_end(dublin, history, monkeypatch):
    spans: list[tuple[datetime | None, datetime]] = []
    change = snapshots._backlog_change

    def recorded(*, after: datetime | None, until: datetime) -> int:
        spans.append((after, until))
        return change(after=after, until=until)

    monkeypatch.setattr(snapshots, "_backlog_change", recorded)
    snapshots_backfill(calendar=dublin, since=FIRST_DAY, now=NOW)

    ends = day_ends(dublin)
    # The history once up to the first day's end, then as_of once, then one day's rows per day.
    assert spans == [(None, ends[0]), (ends[0], NOW), *pairwise(ends)]


def test_the_backlog_of_each_further_day_costs_two_range_queries(dublin, history):
    tally = BacklogTally()
    ends = day_ends(dublin)
    tally.count(at=ends[0])
    tally.count(at=NOW)
    for end in ends[1:]:
        with CaptureQueriesContext(connection) as queries:
            figures = snapshots._figures_complete({}, end_utc=end, as_of=NOW, backlog=tally)
        assert figures["backlog"] == {"open": backlog_count(at=NOW), "at_period_end": backlog_count(at=end)}
        assert len(queries) == 2
        # Each query reads only the rows after the previous day's end (index range scans).
        assert all('"created_at" > ' in q["sql"] or '"at" > ' in q["sql"] for q in queries.captured_queries)


def test_a_snapshot_computed_alone_has_the_same_backlog(dublin, history):
    start = FIRST_DAY + timedelta(days=2)
    snapshot = snapshot_compute(
        calendar=dublin, granularity=Granularity.DAY, start=start, end=start + timedelta(days=1), as_of=NOW
    )
    assert snapshot.figures["backlog"] == {"open": 2, "at_period_end": 1}
    # As of an instant inside the period, both figures are the backlog at that instant.
    inside = snapshot_compute(
        calendar=dublin, granularity=Granularity.DAY, start=start, end=start + timedelta(days=1), as_of=at(22, 12)
    )
    assert backlog_count(at=at(22, 12)) == 2
    assert inside.figures["backlog"] == {"open": 2, "at_period_end": 2}
