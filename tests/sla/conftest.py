"""Fixtures of the breach-check tests: a 24x7 calendar and policies in calendar hours, so the arithmetic is plain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from servicedesk.accounts.models import User
from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Queue, TicketTarget
from servicedesk.tickets.services.tickets import ticket_create
from tests.factories import AgentFactory, CustomerFactory

# Monday 20 October 2025, 09:00 UTC.
T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def utc_calendar(db):
    return BusinessCalendar.objects.create(slug="utc", name="UTC", time_zone="UTC", is_default=True)


@pytest.fixture
def standard(utc_calendar):
    """Normal: first reply 60 min, resolution 240 min; high: 20 and 120 min; warning at 75 %."""
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=utc_calendar, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=240, hours="calendar"
    )
    SlaTarget.objects.create(
        policy=policy, priority="high", first_reply_minutes=20, resolution_minutes=120, hours="calendar"
    )
    return policy


def queue_make(slug: str) -> Queue:
    return Queue.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]


def agent_make(username: str, **kwargs) -> User:
    return cast(User, AgentFactory(username=username, **kwargs))


@pytest.fixture
def support(db):
    return queue_make("support")


@pytest.fixture
def ann(support):
    return AgentFactory(username="ann", queues=[support])


@pytest.fixture
def max_manager(db):
    return AgentFactory(username="max", role="manager")


def open_ticket(queue, *, at=T0, assignee=None, **kwargs):
    customer = cast(Customer, CustomerFactory())
    return ticket_create(
        customer=customer,
        subject="Printer on fire",
        channel="email",
        actor=Actor.of_customer(customer),
        queue=queue,
        at=at,
        assignee=assignee,
        **kwargs,
    )


def targets(ticket) -> dict[str, TicketTarget]:
    return {target.kind: target for target in TicketTarget.objects.filter(ticket=ticket)}
