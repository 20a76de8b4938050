"""Shared scenario for the snapshot, job, dashboard, export and subscription tests.

A 24x7 calendar in Europe/Dublin and a few tickets relative to a given
instant: created, replied to and solved through the ticket services.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from servicedesk.sla.models import BusinessCalendar, OpeningWindow
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_create, ticket_status_change
from tests.factories import CustomerFactory

TOP_LEVEL_KEYS = [
    "period",
    "as_of",
    "tickets",
    "first_reply_minutes",
    "full_resolution_minutes",
    "requester_wait_minutes",
    "sla",
    "one_touch",
    "fcr",
    "reopen",
    "csat",
    "surveys",
    "live",
    "occupancy",
    "cost_per_contact",
]


def calendar_make(slug: str = "dublin", time_zone: str = "Europe/Dublin", *, default: bool = True) -> BusinessCalendar:
    calendar = BusinessCalendar.objects.create(slug=slug, name=slug.title(), time_zone=time_zone, is_default=default)
    for weekday in range(7):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=0, end_minute=24 * 60)
    return calendar


def ticket_opened(queue, at: datetime, *, channel: str = "email", customer=None):  # type: ignore[no-untyped-def]
    customer = customer or CustomerFactory()
    return ticket_create(
        customer=customer,
        subject="Invoice",
        channel=channel,
        actor=Actor.of_customer(customer),
        queue=queue,
        at=at,
    )


def ticket_answered(ticket, agent, at: datetime, *, solve_after: timedelta | None = None):  # type: ignore[no-untyped-def]
    ticket_reply_create(ticket=ticket, author=agent, text="Hello", actor=Actor.agent(agent), at=at, deliver=False)
    if solve_after is not None:
        ticket.refresh_from_db()
        ticket_status_change(ticket=ticket, status="solved", actor=Actor.system(), at=at + solve_after)
    ticket.refresh_from_db()
    return ticket
