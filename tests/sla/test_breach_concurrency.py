"""The breach check under concurrency, on PostgreSQL: runs at once notify once and never wait on a busy ticket."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connections, transaction

from servicedesk.notifications.models import Notification
from servicedesk.sla.breach import BreachCheckCounts, sla_breach_check
from servicedesk.sla.models import Escalation, EscalationRule
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import TicketEvent
from tests.concurrency import run_at_once
from tests.sla.conftest import T0, minutes, open_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_checks_running_at_once_notify_and_escalate_once(standard, support, ann, max_manager):
    EscalationRule.objects.create(policy=standard, threshold="breach", action="raise_priority", priority="high")
    tickets = [open_ticket(support, at=T0 + minutes(n % 3), assignee=ann) for n in range(30)]
    now = T0 + minutes(70)

    results = run_at_once(4, lambda _i: sla_breach_check(now=now, batch_size=7))

    assert sum(r.breaches for r in results) == 30
    assert sum(r.tickets for r in results) == 30
    assert sum(r.escalations for r in results) == 30
    assert sum(r.failed for r in results) == 0
    # Ann and the manager, one breach notice each per ticket.
    assert Notification.objects.count() == 60
    assert Notification.objects.filter(kind="sla_breach").count() == 60
    assert len(mail.outbox) == 60
    assert Escalation.objects.count() == 30
    assert TicketEvent.objects.filter(kind="priority", source="sla").count() == 30
    assert TicketEvent.objects.filter(kind="sla_breached", ticket__in=tickets).count() == 30
    # A run afterwards finds nothing owed.
    assert sla_breach_check(now=now) == BreachCheckCounts()


def test_a_ticket_locked_elsewhere_is_left_for_the_next_run(standard, support, ann):
    busy, free = open_ticket(support, assignee=ann), open_ticket(support, assignee=ann)
    now = T0 + minutes(45)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                ticket_lock(busy.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        # The check neither waits for the agent's transaction nor handles the busy ticket.
        assert sla_breach_check(now=now) == BreachCheckCounts(tickets=1, warnings=1, skipped=1)
    finally:
        release.set()
        holder.join(timeout=30)
    assert sla_breach_check(now=now + minutes(1)) == BreachCheckCounts(tickets=1, warnings=1)
    assert sorted(Notification.objects.values_list("ticket_id", flat=True)) == sorted([busy.pk, free.pk])
