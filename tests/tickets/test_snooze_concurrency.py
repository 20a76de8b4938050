"""The pending-until sweep and the reminders' sweep on PostgreSQL: run at once, each ticket reopens once,
each reminder is delivered once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from servicedesk.notifications.models import Notification, Reminder
from servicedesk.notifications.reminders import reminder_create, reminders_due_send
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket, TicketEvent
from servicedesk.tickets.services.followups import ticket_snooze, ticket_snoozes_due_reopen
from tests.concurrency import run_at_once
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


def test_sweeps_at_once_reopen_each_ticket_once():
    queue = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[queue])
    tickets = [ticket_make(queue=queue, subject=f"T{i}", at=T0) for i in range(8)]
    for ticket in tickets:
        ticket_snooze(ticket=ticket, until=T0 + timedelta(hours=2), actor=Actor.agent(agent), at=T0)

    results = run_at_once(4, lambda _i: ticket_snoozes_due_reopen(now=T0 + timedelta(hours=3)))

    assert sum(results) == 8
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}
    assert not Ticket.objects.filter(pending_until__isnull=False).exists()
    assert TicketEvent.objects.filter(kind="status", source="system").count() == 8
    assert TicketEvent.objects.filter(kind="pending_until", source="system").count() == 8


def test_reminder_sweeps_at_once_deliver_each_reminder_once():
    queue = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[queue])
    now = timezone.now()
    for i in range(6):
        ticket = ticket_make(queue=queue, subject=f"T{i}")
        reminder_create(user=agent, ticket=ticket, remind_at=now + timedelta(minutes=1), note=f"n{i}", at=now)

    results = run_at_once(4, lambda _i: reminders_due_send(now=now + timedelta(minutes=2)))

    assert sum(results) == 6
    assert Notification.objects.filter(user=agent, kind="reminder").count() == 6
    assert not Reminder.objects.filter(delivered_at__isnull=True).exists()
