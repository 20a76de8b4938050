"""Business time in the facts table, checked ticket by ticket against the calendar module.

The calendar has three windows a day (09:00-09:20, 09:40-12:00 and
13:00-17:30, Monday to Friday, Europe/Dublin), a bank holiday on Monday
27 October 2025 and the clocks going back the night before, so its intervals
start 40 minutes apart at the closest and the facts' lookup slots are
40 minutes long. Each ticket is created at one instant and answered and
solved at a later one, so its business first reply time, full resolution
time and requester wait all equal ``business_microseconds`` over the two
instants. The instants are the intervals' edges, the slots' edges, a
microsecond either side of each, and instants drawn at random.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction

from reports.calendar_intervals import materialised
from reports.metrics.facts import ticket_facts
from reports.periods import Period
from servicedesk.core.epoch import epoch_us
from servicedesk.sla.calendars import business_microseconds, calendar_spec
from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_create

pytestmark = pytest.mark.django_db

START, END = date(2025, 10, 20), date(2025, 11, 1)
AS_OF = datetime(2025, 11, 10, 12, tzinfo=UTC)
SLOT_US = 40 * 60 * 1_000_000
US = timedelta(microseconds=1)


@pytest.fixture
def split_days(db):
    calendar = BusinessCalendar.objects.create(slug="split", name="Split days", time_zone="Europe/Dublin")
    for weekday in range(5):
        for start, end in ((9 * 60, 9 * 60 + 20), (9 * 60 + 40, 12 * 60), (13 * 60, 17 * 60 + 30)):
            OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=start, end_minute=end)
    Holiday.objects.create(calendar=calendar, date=date(2025, 10, 27), name="October bank holiday")
    return calendar


def edge_instants() -> list[datetime]:
    """Interval edges and slot edges of the period, each with the microseconds either side."""
    edges = []
    day = datetime(2025, 10, 20, tzinfo=UTC)
    while day < datetime(2025, 10, 31, tzinfo=UTC):
        for hours, minutes in (
            (8, 0),
            (8, 20),
            (8, 40),
            (9, 0),
            (9, 20),
            (9, 40),
            (11, 0),
            (12, 0),
            (16, 30),
            (17, 30),
        ):
            edges.append(day + timedelta(hours=hours, minutes=minutes))
        day += timedelta(days=1)
    first_slot = epoch_us(datetime(2025, 10, 22, 6, tzinfo=UTC)) // SLOT_US
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    edges += [epoch + timedelta(microseconds=(first_slot + k) * SLOT_US) for k in range(0, 40, 3)]
    instants = [edge + shift for edge in edges for shift in (-US, timedelta(0), US)]
    return instants


def facts_by_ticket(calendar) -> dict[int, tuple]:
    period = Period(start=START, end=END, calendar=calendar)
    with (
        transaction.atomic(),
        materialised({"report": period.spec()}, start=period.start_utc, end=AS_OF) as keys,
        ticket_facts(
            start_utc=period.start_utc,
            end_utc=period.end_utc,
            as_of=AS_OF,
            report_key=keys["report"],
            key_prefix=keys["report"][: -len("report")],
        ) as facts,
        connection.cursor() as cursor,
    ):
        columns = "first_reply_business_us, full_resolution_business_us, requester_wait_business_us"
        cursor.execute(f"SELECT id, {columns} FROM {facts.table}")  # noqa: S608 (the facts table's own name)
        return {row[0]: tuple(int(value) for value in row[1:]) for row in cursor.fetchall()}


def test_business_time_of_every_ticket_matches_the_calendar(split_days, customer, queue, agent):
    spec = calendar_spec(split_days)
    rng = random.Random(2025)
    instants = edge_instants()
    low, high = epoch_us(datetime(2025, 10, 20, tzinfo=UTC)), epoch_us(datetime(2025, 10, 31, 23, tzinfo=UTC))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    instants += [epoch + timedelta(microseconds=rng.randrange(low, high)) for _ in range(60)]
    pairs = []
    for _ in range(150):
        created, answered = sorted(rng.sample(instants, 2))
        pairs.append((created, answered))
    # A reply in the same microsecond as the creation, and a ticket created exactly on a slot edge.
    pairs.append((instants[0], instants[0]))
    expected = {}
    for created, answered in pairs:
        ticket = ticket_create(
            customer=customer,
            subject="Hours",
            channel="email",
            actor=Actor.of_customer(customer),
            queue=queue,
            at=created,
        )
        ticket_reply_create(
            ticket=ticket, author=agent, text="Done", actor=Actor.agent(agent), at=answered, status="solved"
        )
        business = business_microseconds(spec, created, answered)
        expected[ticket.pk] = (business, business, business)

    assert facts_by_ticket(split_days) == expected
    # The cases above include tickets answered wholly inside one window, across the lunch gap, over
    # the weekend, the holiday and the DST night, and both before and after 09:00 on one day.
    assert len({value for value, _full, _wait in expected.values()}) > 80
    assert any(value == 0 for value, _full, _wait in expected.values())
