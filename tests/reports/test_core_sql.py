"""The SQL building blocks: exact epoch microseconds and business time from materialised intervals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db.models import Value

from reports.calendar_intervals import materialised, open_intervals
from reports.models import CalendarInterval
from reports.sql import EpochMicros, business_between, calendar_between
from servicedesk.sla.calendars import CalendarSpec, always_open
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.tickets import ticket_create

pytestmark = pytest.mark.django_db

DUBLIN_9_TO_5 = CalendarSpec(
    time_zone="Europe/Dublin",
    windows={day: ((9 * 60, 17 * 60),) for day in range(5)},
    holidays=frozenset({date(2025, 10, 27)}),
)


def test_epoch_micros_is_exact_with_and_without_microseconds(customer, queue):
    whole = ticket_create(
        customer=customer,
        subject="a",
        channel="email",
        actor=Actor.system(),
        queue=queue,
        at=datetime(2025, 10, 26, 0, 59, 59, tzinfo=UTC),
    )
    fraction = ticket_create(
        customer=customer,
        subject="b",
        channel="email",
        actor=Actor.system(),
        queue=queue,
        at=datetime(2025, 10, 26, 1, 0, 0, 1, tzinfo=UTC),
    )
    # A fraction of a second that rounding to milliseconds would carry into the next second.
    last = ticket_create(
        customer=customer,
        subject="c",
        channel="email",
        actor=Actor.system(),
        queue=queue,
        at=datetime(2025, 10, 26, 0, 59, 59, 999_999, tzinfo=UTC),
    )
    values = dict(Ticket.objects.annotate(us=EpochMicros("created_at")).values_list("pk", "us"))
    # 2025-10-26T00:59:59Z is 1761440399 s since 1970.
    assert values == {
        whole.pk: 1_761_440_399_000_000,
        fraction.pk: 1_761_440_400_000_001,
        last.pk: 1_761_440_399_999_999,
    }


def test_open_intervals_carry_the_time_open_before_them():
    # Friday 24 Oct 09:00-17:00 IST = 08:00-16:00Z; Monday 27 is a holiday; Tuesday 28 09:00-17:00 GMT.
    rows = open_intervals(DUBLIN_9_TO_5, date(2025, 10, 24), date(2025, 10, 28))
    hour = 3_600_000_000
    friday = int(datetime(2025, 10, 24, 8, tzinfo=UTC).timestamp()) * 1_000_000
    tuesday = int(datetime(2025, 10, 28, 9, tzinfo=UTC).timestamp()) * 1_000_000
    assert rows == [(friday, friday + 8 * hour, 0), (tuesday, tuesday + 8 * hour, 8 * hour)]


def test_business_between_over_the_dst_night_and_a_holiday(customer, queue):
    # Created Friday 24 Oct 16:00 IST; to Tuesday 28 Oct 10:00 GMT: 1 h on Friday + 1 h on Tuesday.
    ticket_create(
        customer=customer,
        subject="a",
        channel="email",
        actor=Actor.system(),
        queue=queue,
        at=datetime(2025, 10, 24, 15, tzinfo=UTC),
    )
    end = Value(datetime(2025, 10, 28, 10, tzinfo=UTC))
    specs = {"dublin": DUBLIN_9_TO_5, "always": always_open("Europe/Dublin")}
    with materialised(specs, start=datetime(2025, 10, 24, tzinfo=UTC), end=datetime(2025, 10, 29, tzinfo=UTC)) as keys:
        row = (
            Ticket.objects.annotate(
                business=business_between("created_at", end, keys["dublin"]),
                always=business_between("created_at", end, keys["always"]),
                calendar=calendar_between("created_at", end),
            )
            .values("business", "always", "calendar")
            .get()
        )
    # A 24x7 calendar gives exactly the calendar duration across the DST change: 91 h.
    assert row == {"business": 2 * 3_600_000_000, "always": 91 * 3_600_000_000, "calendar": 91 * 3_600_000_000}
    assert not CalendarInterval.objects.exists()
