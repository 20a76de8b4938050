"""The SLA backfill of imported tickets writes in bulk exactly what one refresh per ticket writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket, TicketEvent, TicketTarget
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.sla import (
    SlaWrites,
    SpecCache,
    _past_notices_settle,
    ticket_sla_refresh,
    tickets_sla_backfill,
)
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.sla.test_ticket_targets import MONDAY_10, SYSTEM, dublin, new_ticket  # noqa: F401

pytestmark = pytest.mark.django_db

AT = MONDAY_10 + timedelta(days=3, hours=2)


def rows(ids: list[int]) -> tuple[list, list, list]:
    """The targets, SLA events (in the order written) and ticket snapshots of ``ids``, without row ids."""
    targets = list(
        TicketTarget.objects.filter(ticket_id__in=ids)
        .order_by("ticket_id", "kind")
        .values_list(
            "ticket_id",
            "kind",
            "state",
            "policy_id",
            "calendar_id",
            "priority",
            "minutes",
            "hours",
            "due_at",
            "warning_at",
            "breaches_at",
            "fulfilled_at",
            "breached_at",
            "warning_notified_at",
            "breach_notified_at",
            "next_check_at",
            "elapsed_seconds",
            "evaluated_at",
            "started_at",
        )
    )
    events = list(
        TicketEvent.objects.filter(ticket_id__in=ids, kind__startswith="sla_")
        .order_by("id")
        .values_list("ticket_id", "kind", "at", "before", "after", "source")
    )
    tickets = list(
        Ticket.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "sla_policy_id", "sla_calendar_id", "sla_due_at")
    )
    return targets, events, tickets


def test_backfill_in_bulk_writes_what_one_refresh_per_ticket_writes(dublin, queue, agent, customer):  # noqa: F811
    tickets = []
    for n in range(12):
        ticket = new_ticket(
            customer, queue, at=MONDAY_10 + timedelta(hours=5 * n), priority=("urgent", "normal")[n % 2]
        )
        if n % 3 == 1:
            ticket_reply_create(
                ticket=ticket,
                author=agent,
                text="On it",
                actor=Actor.agent(agent),
                at=ticket.created_at + timedelta(minutes=20 * n),
            )
        if n % 4 == 2:
            ticket_status_change(
                ticket=ticket, status="pending", actor=SYSTEM, at=ticket.created_at + timedelta(hours=1)
            )
        tickets.append(ticket)
    # The policy arrives after the tickets, as with imported history: none has targets yet.
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=dublin, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=480, hours="business"
    )
    SlaTarget.objects.create(
        policy=policy, priority="urgent", first_reply_minutes=30, resolution_minutes=240, hours="calendar"
    )
    ids = [ticket.pk for ticket in tickets]
    assert not TicketTarget.objects.exists()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        applied = tickets_sla_backfill(at=AT)
        bulk = rows(ids)
        transaction.set_rollback(True)
    with transaction.atomic():
        specs = SpecCache()
        for ticket in (
            Ticket.objects.filter(pk__in=ids).select_related("customer__organization", "queue").order_by("pk")
        ):
            for target in ticket_sla_refresh(ticket=ticket, at=AT, reselect=True, specs=specs):
                _past_notices_settle(target, AT, SlaWrites())
        one_by_one = rows(ids)

    assert applied == 12
    assert bulk == one_by_one
    targets, events, _tickets = bulk
    assert len(targets) == 24 and {row[2] for row in targets} >= {"breached", "paused", "achieved"}
    assert len(events) >= 24
    # Reads and writes per batch, not per ticket (a refresh per ticket took nine statements).
    assert len(queries) < 40
