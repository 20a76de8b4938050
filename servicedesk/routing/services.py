"""Routing writes: assign a ticket automatically, drain waiting tickets, set availability
and keep presence (heartbeats, expiry).

See docs/architecture.md, "Routing" and "Presence". Lock order: the ticket
first, then the candidates' AgentProfile rows by ascending id, so two routings
never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, PermissionDenied
from servicedesk.routing import selectors
from servicedesk.routing.models import (
    CHAT_CAPACITY_MAX,
    PRESENCE_STATE,
    AgentProfile,
    Assignment,
    Availability,
    QueueRouting,
    RoutingMode,
    Skill,
    Trigger,
    skill_value_clean,
)
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import row_lock, rows_lock, ticket_lock
from servicedesk.tickets.models import Queue, Ticket, TicketEvent
from servicedesk.tickets.models.sessions import PresenceSource
from servicedesk.tickets.services.sessions import agent_presence_record_many
from servicedesk.tickets.services.tickets import ticket_touch

ROUTING_SOURCE = "routing"
# A heartbeat writes ``seen_at`` only when the stored one is older than this:
# a desk pinging every ~25 s writes once per ping, ten open tabs still once per
# interval. Presence expiry (PRESENCE_TIMEOUT_SECONDS) must be well above it.
HEARTBEAT_INTERVAL = timedelta(seconds=15)


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
    at: datetime | None = None,
) -> AgentProfile:
    """The agent's routing profile, created (offline, default capacity, or the values given)
    when missing; an existing profile is returned unchanged. Idempotent on the user (unique).

    A profile created with an availability other than offline records it as a
    presence row at ``at`` (default now) in the same transaction, so the
    current state is always the latest row of the presence history.
    """
    if not is_agent(user):
        raise PermissionDenied(_("Only agents take tickets."))
    defaults: dict[str, object] = {}
    if availability is not None:
        if availability not in Availability.values:
            raise InvalidAvailability(_("Unknown availability."), field="availability")
        defaults["availability"] = availability
    if capacity is not None:
        defaults["capacity"] = capacity
    if defaults.get("availability", Availability.OFFLINE) == Availability.OFFLINE:
        profile, _created = AgentProfile.objects.get_or_create(user=user, defaults=defaults)
        return profile
    with transaction.atomic():
        profile, created = AgentProfile.objects.get_or_create(user=user, defaults=defaults)
        if created:
            _availability_write(profile, profile.availability, at or timezone.now())
    return profile


def _availability_write(profile: AgentProfile, availability: str, at: datetime, *, auto_offline_from: str = "") -> None:
    """Make ``availability`` the agent's current state from ``at`` and record it in the
    presence history (a ``desk`` row), in the caller's transaction, ``profile`` locked
    or just created.

    The row is written at ``at``, or at the previous change's instant when the
    clock went back (another server's), so it is always the agent's latest row
    and the cached state stays the history's last word; at the same instant the
    upsert on (agent, at) keeps the newer state. Coming online enqueues, after
    commit, the routing of the waiting tickets of the agent's queues.
    """
    if profile.availability_changed_at is not None and at < profile.availability_changed_at:
        at = profile.availability_changed_at
    profile.availability = availability
    profile.availability_changed_at = at
    profile.auto_offline_from = auto_offline_from
    profile.save(update_fields=["availability", "availability_changed_at", "auto_offline_from"])
    agent_presence_record_many(
        rows=[(profile.user_id, at, PRESENCE_STATE[Availability(availability)])], source=PresenceSource.DESK
    )
    if availability == Availability.ONLINE:
        agent_id = profile.user_id
        transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.AGENT_ONLINE))


def agent_availability_set(*, agent: User, availability: str, at: datetime | None = None) -> AgentProfile:
    """Set an agent's availability (online, away, offline): their current state and a row of
    the presence history (``tickets.AgentPresence``: ready, not ready, offline) in one
    transaction.

    Coming online enqueues, after commit, the routing of the waiting tickets of
    the agent's queues. Raises InvalidAvailability (field ``availability``) for
    an unknown value and PermissionDenied for a user without a desk role;
    nothing is written then. Setting the current value again writes no row; it
    only ends an offline by presence expiry (the agent chose offline, so their
    next heartbeat leaves them offline).
    """
    at = at or timezone.now()
    if availability not in Availability.values:
        raise InvalidAvailability(_("Choose online, away or offline."), field="availability")
    with transaction.atomic():
        agent_profile_ensure(user=agent)
        profile = row_lock(AgentProfile, user=agent)
        if profile.availability == availability:
            if profile.auto_offline_from:
                profile.auto_offline_from = ""
                profile.save(update_fields=["auto_offline_from"])
            return profile
        _availability_write(profile, availability, at)
    return profile


# One statement on the profile's unique user id. It writes only a heartbeat
# older than the interval, or any heartbeat while the agent is offline by
# expiry (so a restore that failed is retried by the next ping), never moves
# seen_at back, and returns what expiry took the agent offline from.
_HEARTBEAT_SQL = """
UPDATE {profile}
SET seen_at = CASE WHEN seen_at IS NULL OR seen_at < %s THEN %s ELSE seen_at END
WHERE user_id = %s AND (seen_at IS NULL OR seen_at < %s OR auto_offline_from <> '')
RETURNING auto_offline_from
"""


def agent_heartbeat(*, user_id: int, at: datetime | None = None) -> None:
    """The agent's desk is open at ``at`` (default now): a desk socket connected or pinged.

    Cheap, for every ping of every open tab: one UPDATE that stores ``seen_at``
    only when the stored one is older than HEARTBEAT_INTERVAL (15 s); nothing
    else is read or written. Only when presence expiry had taken the agent
    offline (``auto_offline_from``) does it, under the profile's lock, give back
    the availability they had, recording the presence row (and, for online, the
    routing of their queues' waiting tickets) as any change does. An agent
    without a routing profile, or who chose offline, stays offline. Safe to call
    concurrently and repeatedly: two heartbeats restore once.
    """
    at = at or timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _HEARTBEAT_SQL.format(profile=connection.ops.quote_name(AgentProfile._meta.db_table)),
            [adapt(at), adapt(at), user_id, adapt(at - HEARTBEAT_INTERVAL)],
        )
        row = cursor.fetchone()
    if row is None or not row[0]:
        return
    with transaction.atomic():
        profile = row_lock(AgentProfile, user_id=user_id)
        # Another heartbeat restored them, or they chose an availability, meanwhile.
        if not profile.auto_offline_from or profile.availability != Availability.OFFLINE:
            return
        _availability_write(profile, profile.auto_offline_from, at)


def agents_presence_expire(*, at: datetime | None = None) -> int:
    """Take offline the agents whose desk went quiet; returns how many.

    Online or away agents whose last heartbeat (``seen_at``) is older than
    PRESENCE_TIMEOUT_SECONDS before ``at`` become offline, with
    ``auto_offline_from`` = the availability they had (their next heartbeat
    gives it back) and an ``offline`` presence row at ``at``, all in one
    transaction: the profiles locked in ascending id order, one UPDATE, one
    INSERT. Agents who never had a desk socket (``seen_at`` null, API only)
    are left alone. A heartbeat that commits first keeps its agent. Safe to
    run concurrently and repeatedly: an agent already offline is not touched.
    """
    at = at or timezone.now()
    stale = AgentProfile.objects.filter(
        availability__in=[Availability.ONLINE, Availability.AWAY],
        seen_at__lt=at - selectors.presence_timeout(),
    )
    with transaction.atomic():
        # The (availability, seen_at) index finds them; the lock re-checks each row.
        user_ids = [profile.user_id for profile in rows_lock(stale.only("pk", "user_id"))]
        if not user_ids:
            return 0
        AgentProfile.objects.filter(user_id__in=user_ids).update(
            auto_offline_from=F("availability"),
            availability=Availability.OFFLINE,
            availability_changed_at=at,
        )
        agent_presence_record_many(
            rows=[(user_id, at, PRESENCE_STATE[Availability.OFFLINE]) for user_id in user_ids],
            source=PresenceSource.DESK,
        )
    return len(user_ids)


def agent_chat_capacity_set(*, agent: User, chat_capacity: int, actor: User) -> AgentProfile:
    """Set how many chats ``agent`` is offered at the same time at most (0: none).

    ``actor`` needs the permission to change agent profiles (managers and
    admins, as in the Django admin), unless the value is the current one:
    setting it again is a no-op for anyone, so a client may send back what it
    read. Raises ApplicationError (field ``chat_capacity``) outside 0..20,
    PermissionDenied for an actor without the permission or an agent without
    a desk role; nothing is written then. Idempotent.
    """
    if not 0 <= chat_capacity <= CHAT_CAPACITY_MAX:
        raise ApplicationError(
            _("A chat capacity is a whole number from 0 to %(maximum)d.") % {"maximum": CHAT_CAPACITY_MAX},
            field="chat_capacity",
        )
    with transaction.atomic():
        agent_profile_ensure(user=agent)
        profile = row_lock(AgentProfile, user=agent)
        if profile.chat_capacity == chat_capacity:
            return profile
        if not actor.has_perm("routing.change_agentprofile"):
            raise PermissionDenied(_("Only managers and admins change a chat capacity."), field="chat_capacity")
        profile.chat_capacity = chat_capacity
        profile.save(update_fields=["chat_capacity"])
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
