"""Celery tasks for routing: ids in, one service call. Any may run twice: routing
assigns only unassigned tickets, so a second run assigns nothing twice, and
presence expiry touches only agents still online or away."""

from __future__ import annotations

from celery import shared_task

from servicedesk.routing import services
from servicedesk.routing.models import Trigger
from servicedesk.tickets.models import Ticket


@shared_task(name="routing.agent_tickets_pull")
def agent_tickets_pull_task(agent_id: int, trigger: str) -> int:
    return services.agent_tickets_pull(agent_id=agent_id, trigger=trigger)


@shared_task(name="routing.ticket_route")
def ticket_route_task(ticket_id: int, trigger: str) -> int | None:
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return None
    agent = services.ticket_route(ticket=ticket, trigger=trigger)
    return agent.pk if agent is not None else None


@shared_task(name="routing.waiting_tickets_route")
def waiting_tickets_route_task() -> int:
    return services.waiting_tickets_route_all()


@shared_task(name="routing.queue_tickets_route")
def queue_tickets_route_task(queue_id: int) -> int:
    return services.tickets_waiting_route(queue_ids=[queue_id], trigger=Trigger.WAITING)


@shared_task(name="routing.agents_presence_expire")
def agents_presence_expire_task() -> int:
    return services.agents_presence_expire()
