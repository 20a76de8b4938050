"""Routing writes: assign a ticket automatically, drain waiting tickets, set availability.

See docs/architecture.md, "Routing". Lock order: the ticket first, then the
candidates' AgentProfile rows by ascending id, so two routings never wait on
each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, PermissionDenied
from servicedesk.routing import selectors
from servicedesk.routing.models import (
    AgentProfile,
    Assignment,
    Availability,
    AvailabilityChange,
    QueueRouting,
    RoutingMode,
    Skill,
    Trigger,
    skill_value_clean,
)
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import row_lock, rows_lock, ticket_lock
from servicedesk.tickets.models import Queue, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_touch

ROUTING_SOURCE = "routing"


class InvalidAvailability(ApplicationError):
    pass


def _choose(mode: str, profiles: list[AgentProfile], loads: dict[int, int]) -> list[AgentProfile]:
    """Candidates in the order ``mode`` prefers them.

    Round robin: lowest round-robin position (the one served longest ago), then
    user id. Least loaded: fewest open tickets, then as round robin.
    """
    if mode == RoutingMode.LEAST_LOADED:
        return sorted(profiles, key=lambda p: (loads.get(p.user_id, 0), p.round_robin_position, p.user_id))
    return sorted(profiles, key=lambda p: (p.round_robin_position, p.user_id))


def ticket_route(
    *, ticket: Ticket, trigger: str, at: datetime | None = None, before_write: Callable[[], None] | None = None
) -> User | None:
    """Assign an unassigned ticket of a routed queue to an eligible agent; returns the agent.

    Guarantee: the agent is eligible (selectors.agents_eligible) and, counted
    after their profile row is locked, holds fewer open tickets than their
    capacity, so concurrent routings never push an agent over it. Writes the
    ticket's assignee, an ``assignee`` event (source ``routing``, after = the
    agent's id) and its ``Assignment`` (mode and trigger) in one transaction,
    the caller's when there is one. Returns None, changing nothing, for a
    ticket that is assigned, solved, merged, deleted or spam, in a manual
    queue, or that no agent may take now (it waits). ``ticket`` is updated in
    place. Idempotent: a ticket already assigned is left alone. ``before_write``
    is called before anything is read or written for a routed queue (intake
    stores the opening's events first).
    """
    at = at or timezone.now()
    routing = selectors.queue_routing(ticket.queue_id)
    if routing is None:
        return None
    if before_write is not None:
        before_write()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if (
            locked.assignee_id is not None
            or locked.queue_id != routing.queue_id
            or locked.is_spam
            or locked.is_deleted
            or locked.merged_into_id is not None
            or locked.status not in selectors.OPEN_STATUSES
        ):
            return None
        # Locked in id order, re-read as committed now: availability, capacity, positions.
        profiles = rows_lock(selectors.agents_eligible(ticket=locked, routing=routing).select_related("user"))
        loads = selectors.agent_loads(p.user_id for p in profiles)
        available = [
            p
            for p in selectors.working_now(profiles, at)
            if p.availability == Availability.ONLINE and loads.get(p.user_id, 0) < p.capacity
        ]
        if not available:
            return None
        chosen = _choose(routing.mode, available, loads)[0]
        agent = chosen.user
        locked.assignee = agent
        ticket_touch(locked, at, ["assignee"])
        event = event_record(
            ticket=locked,
            kind=TicketEvent.Kind.ASSIGNEE,
            actor=Actor.system(source=ROUTING_SOURCE),
            at=at,
            before=None,
            after=agent.pk,
        )
        Assignment.objects.create(
            event=event,
            ticket=locked,
            queue_id=locked.queue_id,
            agent=agent,
            mode=routing.mode,
            trigger=trigger,
            load_before=loads.get(agent.pk, 0),
            at=at,
        )
        chosen.round_robin_position = max(p.round_robin_position for p in profiles) + 1
        chosen.last_assigned_at = at
        chosen.save(update_fields=["round_robin_position", "last_assigned_at"])
    ticket.assignee = agent
    ticket.updated_at = locked.updated_at
    return agent


def inbound_ticket_route(*, ticket: Ticket, at: datetime, before_write: Callable[[], None]) -> User | None:
    """``ticket_route`` for a ticket intake just opened (trigger ``intake``), in its transaction.

    Registered in the ticket hooks by ``RoutingConfig.ready``; same guarantee
    and idempotency as ``ticket_route``.
    """
    return ticket_route(ticket=ticket, trigger=Trigger.INTAKE, at=at, before_write=before_write)


def tickets_waiting_route(
    *,
    queue_ids: Iterable[int],
    trigger: str,
    at: datetime | None = None,
    limit: int | None = None,
) -> int:
    """Route the waiting tickets of ``queue_ids`` (routed queues only) in their serving
    order (selectors.tickets_waiting); returns how many were assigned.

    Each ticket is routed in its own transaction, so a long drain holds no lock
    for long. A queue in which no online agent is below capacity is skipped for
    the rest of the drain. Safe to run concurrently and repeatedly.
    """
    routed = set(selectors.routed_queue_ids())
    ids = sorted(set(queue_ids) & routed)
    limit = limit or settings.SERVICEDESK["ROUTING_DRAIN_BATCH"]
    waiting = selectors.tickets_waiting(queue_ids=ids, limit=limit)
    if not waiting:
        return 0
    full: set[int] = set(ids) - selectors.queues_with_spare_capacity(ids)
    assigned = 0
    for ticket in waiting:
        if ticket.queue_id in full:
            continue
        if ticket_route(ticket=ticket, trigger=trigger, at=at) is not None:
            assigned += 1
        elif ticket.queue_id not in selectors.queues_with_spare_capacity([ticket.queue_id]):
            full.add(ticket.queue_id)
    return assigned


def agent_tickets_pull(*, agent_id: int, trigger: str, at: datetime | None = None) -> int:
    """Route the waiting tickets of the routed queues ``agent_id`` works in, after the
    agent came online or freed capacity; they go to whichever agent routing picks
    (usually this one). Returns how many were assigned. Safe to repeat."""
    user = User.objects.filter(pk=agent_id).first()
    if user is None:
        return 0
    queue_ids = selectors.routed_queue_ids(member=user)
    return tickets_waiting_route(queue_ids=queue_ids, trigger=trigger, at=at)


def waiting_tickets_route_all(*, at: datetime | None = None) -> int:
    """Route waiting tickets of every routed queue: tickets left waiting while no agent
    could take them (working hours that opened since, a task that was lost)."""
    return tickets_waiting_route(queue_ids=selectors.routed_queue_ids(), trigger=Trigger.WAITING, at=at)


def agent_profile_ensure(
    *,
    user: User,
    availability: str | None = None,
    capacity: int | None = None,
) -> AgentProfile:
    """The agent's routing profile, created (offline, default capacity, or the values given)
    when missing; an existing profile is returned unchanged. Idempotent on the user (unique)."""
    if not is_agent(user):
        raise PermissionDenied(_("Only agents take tickets."))
    defaults: dict[str, object] = {}
    if availability is not None:
        if availability not in Availability.values:
            raise InvalidAvailability(_("Unknown availability."), field="availability")
        defaults["availability"] = availability
    if capacity is not None:
        defaults["capacity"] = capacity
    profile, _created = AgentProfile.objects.get_or_create(user=user, defaults=defaults)
    return profile


def agent_availability_set(*, agent: User, availability: str, at: datetime | None = None) -> AgentProfile:
    """Set an agent's availability (online, away, offline), recorded as an AvailabilityChange.

    Coming online enqueues, after commit, the routing of the waiting tickets of
    the agent's queues. Raises InvalidAvailability (field ``availability``) for
    an unknown value and PermissionDenied for a user without a desk role;
    nothing is written then. Setting the current value again is a no-op.
    """
    at = at or timezone.now()
    if availability not in Availability.values:
        raise InvalidAvailability(_("Choose online, away or offline."), field="availability")
    with transaction.atomic():
        agent_profile_ensure(user=agent)
        profile = row_lock(AgentProfile, user=agent)
        if profile.availability == availability:
            return profile
        before = profile.availability
        profile.availability = availability
        profile.availability_changed_at = at
        profile.save(update_fields=["availability", "availability_changed_at"])
        AvailabilityChange.objects.create(agent=agent, before=before, after=availability, at=at)
        if availability == Availability.ONLINE:
            agent_id = agent.pk
            transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.AGENT_ONLINE))
    return profile


def queue_routing_set(
    *,
    queue: Queue,
    mode: str,
    match_language: bool = False,
    match_topic: bool = False,
    match_channel: bool = False,
    required_skills: Iterable[Skill] = (),
) -> QueueRouting:
    """Configure how ``queue`` assigns its tickets (replaces the previous configuration).

    Raises ApplicationError (field ``mode``) for an unknown mode. Idempotent on
    the queue (one row per queue).
    """
    if mode not in RoutingMode.values:
        raise ApplicationError(_("Unknown assignment mode."), field="mode")
    with transaction.atomic():
        routing, _created = QueueRouting.objects.update_or_create(
            queue=queue,
            defaults={
                "mode": mode,
                "match_language": match_language,
                "match_topic": match_topic,
                "match_channel": match_channel,
            },
        )
        routing.required_skills.set(list(required_skills))
    return routing


def skill_get_or_create(*, kind: str, value: str) -> Skill:
    """The skill (kind, value) with the value in its stored form; ApplicationError (field
    ``value``) for an invalid one. Idempotent on (kind, value) (unique)."""
    try:
        cleaned = skill_value_clean(kind, value)
    except ValueError as exc:
        raise ApplicationError(str(exc), field="value") from exc
    skill, _created = Skill.objects.get_or_create(kind=kind, value=cleaned)
    return skill


def pull_enqueue(*, agent_id: int, trigger: str) -> None:
    """Enqueue the routing of an agent's waiting tickets. Call after commit; a broker
    that is down loses nothing for good: the periodic retry routes them."""
    from servicedesk.routing import tasks

    task_enqueue(tasks.agent_tickets_pull_task, agent_id, trigger)


def route_enqueue(*, ticket_id: int, trigger: str) -> None:
    """Enqueue the routing of one ticket (after commit); see pull_enqueue."""
    from servicedesk.routing import tasks

    task_enqueue(tasks.ticket_route_task, ticket_id, trigger)


def drain_enqueue(*, queue_id: int) -> None:
    """Enqueue the routing of one queue's waiting tickets (after commit); see pull_enqueue."""
    from servicedesk.routing import tasks

    task_enqueue(tasks.queue_tickets_route_task, queue_id)
