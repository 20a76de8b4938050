"""Offering waiting chats to agents, and the periodic tick that keeps chats moving.

A waiting chat is offered to one agent at a time: a member of its queue who
is online, has a desk open (presence by heartbeat), is inside their working
hours, holds the skills the queue's routing asks for, and holds fewer chats
(active ones and open offers) than their chat capacity. Chats of higher
customer tiers go first, then the longest waiting. An offer not accepted
within the widget's offer timeout goes to the next agent, and the first is
set away. See docs/chat-protocol.md, "Routing".
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from servicedesk.routing.models import AgentProfile, Availability, QueueRouting
from servicedesk.routing.selectors import agents_eligible, chat_agents_available
from servicedesk.tickets.locks import row_lock, rows_lock
from servicedesk.tickets.models import Queue

from .models import ChatConversation, ChatStatus

log = logging.getLogger(__name__)


def tier_rank(conversation: ChatConversation) -> int:
    """As ticket routing ranks tiers (SD_ROUTING_TIER_ORDER, first = 0); others come last."""
    order = list(settings.SERVICEDESK["ROUTING_TIER_ORDER"])
    organization = conversation.customer.organization
    tier = organization.tier if organization is not None else None
    return order.index(tier) if tier in order else len(order)


def chat_agents_for_queue(*, queue_id: int, at: datetime) -> list[AgentProfile]:
    """Agents who may take chats of ``queue_id`` now (skills aside): members, online, desk open, in hours."""
    members = Queue.members.through.objects.filter(queue_id=queue_id).values("user_id")
    return list(chat_agents_available(at=at).filter(user_id__in=members).select_related("user"))


def _skilled(conversation: ChatConversation, profiles: list[AgentProfile]) -> list[AgentProfile]:
    routing = QueueRouting.objects.filter(queue_id=conversation.queue_id).prefetch_related("required_skills").first()
    if routing is None:
        return profiles
    allowed = set(agents_eligible(ticket=conversation.ticket, routing=routing).values_list("user_id", flat=True))
    return [p for p in profiles if p.user_id in allowed]


def agent_chat_loads(user_ids: list[int]) -> Counter[int]:
    """Per agent: active chats plus open offers (one query)."""
    loads: Counter[int] = Counter()
    if not user_ids:
        return loads
    for row in (
        ChatConversation.objects.filter(status=ChatStatus.ACTIVE, agent_id__in=user_ids)
        .values("agent_id")
        .annotate(n=Count("id"))
    ):
        loads[row["agent_id"]] += row["n"]
    for row in (
        ChatConversation.objects.filter(status=ChatStatus.WAITING, offered_to_id__in=user_ids)
        .values("offered_to_id")
        .annotate(n=Count("id"))
    ):
        loads[row["offered_to_id"]] += row["n"]
    return loads


def chat_offers_dispatch(*, queue_id: int | None = None, at: datetime | None = None) -> int:
    """Offer every waiting chat without an open offer to the best free agent; returns how many.

    Safe to run in several processes at once: each takes the waiting chats no
    other run holds (SKIP LOCKED). Accepting re-checks the capacity under the
    agent's lock, so an offer never pushes an agent over it.
    """
    from .services import _push_agents

    at = at or timezone.now()
    offered = 0
    with transaction.atomic():
        waiting_q = ChatConversation.objects.filter(status=ChatStatus.WAITING, offered_to__isnull=True)
        if queue_id is not None:
            waiting_q = waiting_q.filter(queue_id=queue_id)
        waiting = rows_lock(
            waiting_q.filter(
                pk__in=list(waiting_q.order_by("requested_at", "pk").values_list("pk", flat=True)[:200])
            ).select_related("customer__organization", "ticket__topic", "widget"),
            skip_locked=True,
        )
        if not waiting:
            return 0
        waiting.sort(key=lambda c: (tier_rank(c), c.requested_at, c.pk))
        per_queue: dict[int, list[AgentProfile]] = {}
        for conversation in waiting:
            if conversation.queue_id not in per_queue:
                per_queue[conversation.queue_id] = chat_agents_for_queue(queue_id=conversation.queue_id, at=at)
        loads = agent_chat_loads(sorted({p.user_id for ps in per_queue.values() for p in ps}))
        for conversation in waiting:
            declined = set(conversation.declined_by or [])
            free = [
                p
                for p in per_queue[conversation.queue_id]
                if p.user_id not in declined and loads[p.user_id] < p.chat_capacity
            ]
            free = _skilled(conversation, free) if free else free
            if not free:
                continue
            chosen = min(free, key=lambda p: (loads[p.user_id], p.last_assigned_at or at, p.user_id))
            conversation.offered_to_id = chosen.user_id
            conversation.offer_expires_at = at + timedelta(seconds=conversation.widget.offer_timeout_seconds)
            conversation.save(update_fields=["offered_to", "offer_expires_at"])
            loads[chosen.user_id] += 1
            offered += 1
            _push_agents(conversation, chosen.user_id, event="offer")
            log.info("Chat %s offered to agent %s", conversation.pk, chosen.user_id)
    return offered


def chat_offers_expire(*, at: datetime | None = None) -> int:
    """Offers not accepted in time: the agent is set away and the chat goes to the next one."""
    from servicedesk.routing.services import agent_availability_set

    from .services import _push_agents

    at = at or timezone.now()
    expired = 0
    with transaction.atomic():
        rows = rows_lock(
            ChatConversation.objects.filter(
                status=ChatStatus.WAITING, offered_to__isnull=False, offer_expires_at__lte=at
            ).select_related("offered_to"),
            skip_locked=True,
        )
        away: set[int] = set()
        for conversation in rows:
            agent = conversation.offered_to
            conversation.declined_by = sorted({*(conversation.declined_by or []), conversation.offered_to_id})
            conversation.offered_to = None
            conversation.offer_expires_at = None
            conversation.save(update_fields=["declined_by", "offered_to", "offer_expires_at"])
            expired += 1
            if agent is not None:
                _push_agents(conversation, agent.pk, event="offer")
                if agent.pk not in away:
                    away.add(agent.pk)
                    profile = AgentProfile.objects.filter(user=agent).only("availability").first()
                    if profile is not None and profile.availability == Availability.ONLINE:
                        agent_availability_set(agent=agent, availability=Availability.AWAY, at=at)
                log.info("Chat %s: offer to agent %s expired; agent set away", conversation.pk, agent.pk)
    return expired


def chat_tick(*, at: datetime | None = None) -> dict[str, int]:
    """What time alone changes: offers expire, waiting visitors who left abandon, idle chats
    end, and waiting chats are offered. Run every few seconds by the beat."""
    from .services import _abandon, chat_end

    at = at or timezone.now()
    counts = {"expired": chat_offers_expire(at=at), "abandoned": 0, "idle": 0}
    # Waiting visitors gone longer than the grace: closed socket, or no frame at all (a dead process).
    candidates = ChatConversation.objects.filter(status=ChatStatus.WAITING).filter(
        Q(visitor_left_at__isnull=False) | Q(visitor_seen_at__lte=at - timedelta(seconds=30))
    )
    for conversation_id, left_at, seen_at, grace in candidates.values_list(
        "pk", "visitor_left_at", "visitor_seen_at", "widget__abandon_grace_seconds"
    ):
        gone_since = left_at or seen_at + timedelta(seconds=VISITOR_PING_SECONDS)
        if at - gone_since <= timedelta(seconds=grace):
            continue
        with transaction.atomic():
            conversation = row_lock(ChatConversation, conversation_id)
            if conversation.status != ChatStatus.WAITING or (
                conversation.visitor_left_at is None and conversation.visitor_seen_at > seen_at
            ):
                continue
            from .services import _push_visitor, _was_answered

            if _was_answered(conversation):
                chat_end(conversation_id=conversation.pk, by="visitor", at=gone_since)
            else:
                _abandon(conversation, gone_since)
                _push_visitor(conversation)
            counts["abandoned"] += 1
    # Every idle timeout is at least a minute: only chats quiet that long are read.
    idle = ChatConversation.objects.filter(
        status=ChatStatus.ACTIVE, last_activity_at__lte=at - timedelta(seconds=60)
    ).values_list("pk", "last_activity_at", "widget__idle_timeout_seconds")
    for conversation_id, last_activity, timeout in idle:
        if at - last_activity > timedelta(seconds=timeout):
            chat_end(conversation_id=conversation_id, by="idle", at=at)
            counts["idle"] += 1
    counts["offered"] = chat_offers_dispatch(at=at)
    return counts


# The visitor's socket sends a frame at least this often (the widget's ping).
VISITOR_PING_SECONDS = 20
