"""Routing follows the timeline: capacity freed and tickets that start waiting.

Every change to a ticket records a TicketEvent in the transaction that makes
it, through ``servicedesk.tickets.events.event_record``, whichever path made
it: the workspace, the API, a task, a merge. ``event_record`` hands each new
event to ``ticket_event_follow``, which decides what it means for routing;
after the transaction commits,

* a former assignee (an ``assignee`` event's ``before``) or the assignee of a
  ticket just solved has freed capacity: the waiting tickets of their queues
  are routed;
* a ticket moved to another queue, or reopened without an assignee, is
  routed if it is unassigned once the change is committed.

Imported history (source ``import``) routes nothing. This only registers
after-commit callbacks; it never writes.
"""

from __future__ import annotations

from django.db import transaction

from servicedesk.routing.models import Trigger
from servicedesk.tickets import statuses
from servicedesk.tickets.models import TicketEvent

_SKIPPED_SOURCES = frozenset({"import"})


def ticket_event_follow(*, event: TicketEvent) -> None:
    """Route what a just-recorded event frees or leaves waiting, once its transaction commits."""
    if event.source in _SKIPPED_SOURCES:
        return
    from servicedesk.routing.services import pull_enqueue, route_enqueue

    kind, before, after = event.kind, event.before, event.after
    ticket = event.ticket
    if kind == TicketEvent.Kind.ASSIGNEE and isinstance(before, int):
        agent_id = before
        transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.CAPACITY_FREED))
    elif kind == TicketEvent.Kind.STATUS and isinstance(before, str) and isinstance(after, str):
        if statuses.is_solve(before, after) and ticket.assignee_id is not None:
            agent_id = ticket.assignee_id
            transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.CAPACITY_FREED))
        elif statuses.is_reopen(before, after) and ticket.assignee_id is None:
            ticket_id = ticket.pk
            transaction.on_commit(lambda: route_enqueue(ticket_id=ticket_id, trigger=Trigger.WAITING))
    elif kind in TicketEvent.SET_ASIDE and after is True and ticket.assignee_id is not None:
        # Spam and deleted tickets no longer count against their agent's capacity.
        agent_id = ticket.assignee_id
        transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.CAPACITY_FREED))
    elif kind in TicketEvent.SET_ASIDE and after is False and ticket.assignee_id is None:
        # No longer spam, or restored: it waits for an agent like any other ticket.
        ticket_id = ticket.pk
        transaction.on_commit(lambda: route_enqueue(ticket_id=ticket_id, trigger=Trigger.WAITING))
    elif kind == TicketEvent.Kind.QUEUE:
        # The assignee may be removed right after (one who does not work in the
        # new queue); the task routes the ticket only if it is unassigned then.
        ticket_id = ticket.pk
        transaction.on_commit(lambda: route_enqueue(ticket_id=ticket_id, trigger=Trigger.WAITING))
