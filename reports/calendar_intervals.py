"""Open intervals of business calendars, written as rows for the aggregation queries.

``reports.sql`` measures business time in SQL from these rows. The intervals
are those of ``servicedesk.sla.calendars`` (the same edge rules for skipped
and repeated local times, holidays closing whole local days), computed by a
loop over the local dates of the span, never over tickets.

The rows are working data of one computation: ``materialised`` writes them
under a fresh key and deletes them when the block ends, all inside one
transaction, so concurrent computations never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from django.db import transaction

from reports.models import CalendarInterval
from servicedesk.sla.calendars import CalendarSpec, window_intervals

# Local dates before and after the span whose windows may reach into it
# (zone offsets are under a day; two days also cover a window ending at 24:00).
MARGIN_DAYS = 2
_BATCH = 2000


def open_intervals(spec: CalendarSpec, first: date, last: date) -> list[tuple[int, int, int]]:
    """(start_us, end_us, cum_before_us) of the open intervals of local dates first..last, touching ones joined."""
    joined: list[list[int]] = []
    for start, end in window_intervals(spec, first, last):
        if joined and start <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    rows = []
    cumulative = 0
    for start, end in joined:
        rows.append((start, end, cumulative))
        cumulative += end - start
    return rows


def local_span(spec: CalendarSpec, start: datetime, end: datetime) -> tuple[date, date]:
    """Local dates of ``spec`` whose windows can overlap [start, end], with the margin."""
    first = start.astimezone(UTC).astimezone(spec.tz).date() - timedelta(days=MARGIN_DAYS)
    last = end.astimezone(UTC).astimezone(spec.tz).date() + timedelta(days=MARGIN_DAYS)
    return first, last


@contextmanager
def materialised(specs: Mapping[str, CalendarSpec], *, start: datetime, end: datetime) -> Iterator[dict[str, str]]:
    """Write the open intervals covering [start, end] of each named calendar; yield name -> calendar_key.

    Runs in a transaction (a savepoint inside an outer one); the rows are gone
    when the block ends, also on error.
    """
    token = uuid.uuid4().hex[:16]
    keys = {name: f"{token}:{name}" for name in specs}
    with transaction.atomic():
        rows: list[CalendarInterval] = []
        for name, spec in specs.items():
            first, last = local_span(spec, start, end)
            rows.extend(
                CalendarInterval(calendar_key=keys[name], start_us=a, end_us=b, cum_before_us=cum)
                for a, b, cum in open_intervals(spec, first, last)
            )
        CalendarInterval.objects.bulk_create(rows, batch_size=_BATCH)
        # On error the transaction's rollback removes the rows.
        yield keys
        CalendarInterval.objects.filter(calendar_key__startswith=f"{token}:").delete()
