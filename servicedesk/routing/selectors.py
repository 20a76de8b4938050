"""Reads for routing: who may take a ticket or a chat, how loaded agents are, which tickets wait.

The rules are in docs/architecture.md, "Routing" and "Presence".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ROLES
from servicedesk.core.process_cache import ProcessCached
from servicedesk.routing.models import (
    AgentProfile,
    Availability,
    QueueRouting,
    RoutingMode,
    SkillKind,
    language_primary,
)
from servicedesk.sla.calendars import CalendarSpec, business_microseconds, calendar_spec
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Queue, Ticket
from servicedesk.tickets.models.tickets import priority_rank
from servicedesk.tickets.statuses import UNSOLVED_STATUSES

OPEN_STATUSES = sorted(UNSOLVED_STATUSES)
_MICROSECOND = timedelta(microseconds=1)


def open_tickets() -> QuerySet[Ticket]:
    """Tickets that count against an agent's capacity: unsolved, not merged away, not deleted or spam."""
    return Ticket.objects.filter(
        status__in=OPEN_STATUSES,
        merged_into__isnull=True,
        is_deleted=False,
        is_spam=False,
    )


def agent_loads(user_ids: Iterable[int]) -> dict[int, int]:
    """Open tickets per agent, for the given agents (absent: 0). One grouped query."""
    ids = list(user_ids)
    if not ids:
        return {}
    rows = (
        open_tickets()
        .filter(assignee_id__in=ids)
        .order_by()
        .values("assignee_id")
        .annotate(n=Count("pk"))
        .values_list("assignee_id", "n")
    )
    return {user_id: n for user_id, n in rows}


def is_open(spec: CalendarSpec, instant: datetime) -> bool:
    """Whether ``instant`` lies inside an opening window of ``spec``.

    By the edge rules of business time (``servicedesk.sla.calendars``): a
    window includes its opening instant and excludes its closing one.
    """
    return business_microseconds(spec, instant, instant + _MICROSECOND) == 1


def calendars_open(calendar_ids: Iterable[int], at: datetime) -> dict[int, bool]:
    """For each calendar id, whether it is open at ``at``."""
    result = {}
    for calendar in BusinessCalendar.objects.filter(pk__in=set(calendar_ids)):
        result[calendar.pk] = is_open(calendar_spec(calendar), at)
    return result


def _routings_load() -> dict[int, QueueRouting]:
    return {
        routing.queue_id: routing
        for routing in QueueRouting.objects.exclude(mode=RoutingMode.MANUAL).prefetch_related("required_skills")
    }


_routings = ProcessCached("routing.queues", _routings_load, depends_on=[QueueRouting])


def queue_routing(queue_id: int) -> QueueRouting | None:
    """The routing of a queue, or None when it is assigned by hand (read once per
    process and again when a queue's routing changes: ``core/process_cache.py``)."""
    return _routings.get().get(queue_id)


def _role_holder() -> Q:
    groups = User.groups.through.objects.filter(user_id=OuterRef("user_id"), group__name__in=ROLES)
    return Q(user__is_superuser=True) | Q(Exists(groups))


def _has_skill(**skill: object) -> Exists:
    through = AgentProfile.skills.through.objects.filter(agentprofile_id=OuterRef("pk"))
    return Exists(through.filter(**{f"skill__{key}": value for key, value in skill.items()}))


def agents_eligible(*, ticket: Ticket, routing: QueueRouting) -> QuerySet[AgentProfile]:
    """Profiles of the agents who may take ``ticket``, capacity and working hours aside.

    Eligible: an active user with a desk role, a member of the ticket's queue,
    online, holding every required skill of the queue and, per ``match_*``
    flag, a skill equal to the ticket's language (primary subtag), topic or
    channel. A ticket without a language or topic needs no such skill. The
    routing service locks these rows, then counts open tickets against the
    capacity (agent_loads) and checks working hours (working_now).
    """
    members = Queue.members.through.objects.filter(user_id=OuterRef("user_id"), queue_id=ticket.queue_id)
    profiles = (
        AgentProfile.objects.filter(availability=Availability.ONLINE, user__is_active=True)
        .filter(Exists(members))
        .filter(_role_holder())
    )
    for skill_id in [skill.pk for skill in routing.required_skills.all()]:
        profiles = profiles.filter(_has_skill(pk=skill_id))
    if routing.match_language and ticket.language and language_primary(ticket.language):
        profiles = profiles.filter(_has_skill(kind=SkillKind.LANGUAGE, value=language_primary(ticket.language)))
    if routing.match_topic and ticket.topic_id:
        topic_slug = ticket.topic.slug if ticket.topic else ""
        profiles = profiles.filter(_has_skill(kind=SkillKind.TOPIC, value=topic_slug.lower()))
    if routing.match_channel:
        profiles = profiles.filter(_has_skill(kind=SkillKind.CHANNEL, value=ticket.channel))
    return profiles


def working_now(profiles: list[AgentProfile], at: datetime) -> list[AgentProfile]:
    """Of ``profiles``, those without working hours or inside them at ``at`` (order kept)."""
    calendar_ids = {p.working_hours_id for p in profiles if p.working_hours_id is not None}
    if not calendar_ids:
        return profiles
    open_now = calendars_open(calendar_ids, at)
    return [p for p in profiles if p.working_hours_id is None or open_now.get(p.working_hours_id, False)]


def presence_timeout() -> timedelta:
    """How long a desk agent stays online or away without a heartbeat (PRESENCE_TIMEOUT_SECONDS)."""
    return timedelta(seconds=int(settings.SERVICEDESK["PRESENCE_TIMEOUT_SECONDS"]))


def chat_agents_available(*, at: datetime) -> QuerySet[AgentProfile]:
    """Profiles of the agents who may be offered a chat at ``at``, queues, skills and chat load aside.

    Available: an active user with a desk role, online, whose desk sent a
    heartbeat at most PRESENCE_TIMEOUT_SECONDS before ``at`` (an agent who
    closed the last desk tab drops out at once, before presence expiry takes
    them offline; one who never had a desk socket is never offered chats),
    with a chat capacity above 0, and inside their working hours if they have a
    calendar (``is_open``, as ticket routing's ``working_now``). Served by the
    (availability, seen_at) index; the calendars of the candidates are read and
    evaluated once, the rest stays one query the chat router narrows further.
    """
    profiles = (
        AgentProfile.objects.filter(
            availability=Availability.ONLINE,
            seen_at__gte=at - presence_timeout(),
            chat_capacity__gt=0,
            user__is_active=True,
        )
        .filter(_role_holder())
        .order_by("user_id")
    )
    calendar_ids = set(
        profiles.filter(working_hours__isnull=False).order_by().values_list("working_hours_id", flat=True).distinct()
    )
    if not calendar_ids:
        return profiles
    open_ids = [calendar_id for calendar_id, is_open_now in calendars_open(calendar_ids, at).items() if is_open_now]
    return profiles.filter(Q(working_hours__isnull=True) | Q(working_hours_id__in=open_ids))


def queues_with_spare_capacity(queue_ids: Iterable[int]) -> set[int]:
    """Of ``queue_ids``, those with an online agent below capacity (skills and hours not considered)."""
    ids = list(queue_ids)
    if not ids:
        return set()
    load = (
        open_tickets()
        .filter(assignee_id=OuterRef("user_id"))
        .order_by()
        .values("assignee_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    spare = (
        AgentProfile.objects.filter(availability=Availability.ONLINE, user__is_active=True)
        .annotate(open_load=Coalesce(Subquery(load, output_field=IntegerField()), 0))
        .filter(open_load__lt=F("capacity"))
        .values("user_id")
    )
    return set(
        Queue.members.through.objects.filter(queue_id__in=ids, user_id__in=spare)
        .values_list("queue_id", flat=True)
        .distinct()
    )


def tier_rank() -> Case:
    """The customer's organization tier as a rank, first tier of ROUTING_TIER_ORDER = 0;
    unknown tiers and customers without an organization come last."""
    order = list(settings.SERVICEDESK["ROUTING_TIER_ORDER"])
    return Case(
        *(When(customer__organization__tier=tier, then=Value(rank)) for rank, tier in enumerate(order)),
        default=Value(len(order)),
        output_field=IntegerField(),
    )


def routed_queue_ids(*, member: User | None = None) -> list[int]:
    """Queues with automatic assignment, optionally only those ``member`` works in."""
    routings = QueueRouting.objects.exclude(mode=RoutingMode.MANUAL)
    if member is not None:
        routings = routings.filter(queue__members=member)
    return sorted(routings.values_list("queue_id", flat=True))


def tickets_waiting(*, queue_ids: Iterable[int], limit: int) -> list[Ticket]:
    """Unassigned open tickets of ``queue_ids``, in the order routing serves them:
    higher customer tier first, then higher priority, then older, then lower id.

    Found through the (assignee, status) index: assignee null, status unsolved.
    """
    ids = list(queue_ids)
    if not ids:
        return []
    return list(
        open_tickets()
        .filter(assignee__isnull=True, queue_id__in=ids)
        .annotate(routing_tier=tier_rank(), routing_priority=priority_rank())
        .order_by("routing_tier", "-routing_priority", "created_at", "pk")
        .select_related("topic")[:limit]
    )
