"""Routing under concurrency, on PostgreSQL: tickets arriving at once never push an agent over capacity."""

from __future__ import annotations

from collections import Counter

import pytest

from servicedesk.routing.models import Assignment
from servicedesk.routing.selectors import agent_loads
from servicedesk.routing.services import agent_profile_ensure, queue_routing_set
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.concurrency import run_at_once
from tests.factories import AgentFactory, QueueFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def deliver(i: int):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=f"race-{i}",
            sender=SenderIdentity("email", f"c{i}@example.com"),
            subject=f"Question {i}",
            text="hello",
            queue="support",
        )
    )


def agents(queue, *capacities: int) -> list:
    made = []
    for n, capacity in enumerate(capacities):
        user = AgentFactory(username=f"agent{n}", queues=[queue])
        agent_profile_ensure(user=user, availability="online", capacity=capacity)
        made.append(user)
    return made


@pytest.mark.parametrize("mode", ["round_robin", "least_loaded"])
def test_tickets_arriving_at_once_give_an_agent_of_capacity_one_exactly_one(mode):
    queue = QueueFactory(slug="support")
    queue_routing_set(queue=queue, mode=mode)
    (ann,) = agents(queue, 1)
    results = run_at_once(8, deliver)
    assert Ticket.objects.count() == 8
    assert Ticket.objects.filter(assignee=ann).count() == 1
    assert Ticket.objects.filter(assignee__isnull=True).count() == 7
    assert Assignment.objects.count() == 1
    assert sum(1 for r in results if r.ticket.assignee_id == ann.pk) == 1


def test_many_arrivals_fill_several_agents_exactly_to_capacity():
    queue = QueueFactory(slug="support")
    queue_routing_set(queue=queue, mode="round_robin")
    team = agents(queue, 2, 3, 1)
    run_at_once(12, deliver)
    loads = agent_loads(a.pk for a in team)
    assert loads == {team[0].pk: 2, team[1].pk: 3, team[2].pk: 1}
    assert Ticket.objects.filter(assignee__isnull=True).count() == 6
    assert Counter(Assignment.objects.values_list("load_before", flat=True)) == Counter({0: 3, 1: 2, 2: 1})


def test_heartbeats_of_many_tabs_at_once_restore_an_expired_agent_once():
    from datetime import UTC, datetime, timedelta

    from servicedesk.routing.models import AgentProfile
    from servicedesk.routing.services import agent_availability_set, agent_heartbeat, agents_presence_expire
    from servicedesk.tickets.models import AgentPresence

    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    ann = AgentFactory(username="ann")
    agent_availability_set(agent=ann, availability="online", at=t0)
    agent_heartbeat(user_id=ann.pk, at=t0)
    assert agents_presence_expire(at=t0 + timedelta(seconds=46)) == 1
    run_at_once(6, lambda i: agent_heartbeat(user_id=ann.pk, at=t0 + timedelta(seconds=60, milliseconds=i)))
    profile = AgentProfile.objects.get(user=ann)
    assert (profile.availability, profile.auto_offline_from) == ("online", "")
    states = list(AgentPresence.objects.filter(agent=ann).order_by("at").values_list("state", flat=True))
    assert states == ["ready", "offline", "ready"]


def test_a_heartbeat_racing_expiry_leaves_the_agent_online_with_a_consistent_history():
    from datetime import UTC, datetime, timedelta

    from servicedesk.routing.models import AgentProfile
    from servicedesk.routing.services import agent_availability_set, agent_heartbeat, agents_presence_expire
    from servicedesk.tickets.models import AgentPresence

    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    team = [AgentFactory(username=f"agent{n}") for n in range(4)]
    for user in team:
        agent_availability_set(agent=user, availability="online", at=t0)
        agent_heartbeat(user_id=user.pk, at=t0)
    late = t0 + timedelta(seconds=50)

    def act(i: int) -> None:
        if i == 0:
            agents_presence_expire(at=late)
        else:
            agent_heartbeat(user_id=team[i - 1].pk, at=late)

    run_at_once(len(team) + 1, act)
    for user in team:
        profile = AgentProfile.objects.get(user=user)
        states = list(AgentPresence.objects.filter(agent=user).order_by("at").values_list("state", flat=True))
        # The heartbeat won (no offline row) or expiry did and the heartbeat restored at the same
        # instant (the row at ``late`` takes the newer state): either way online, and the last row says so.
        assert (profile.availability, profile.auto_offline_from) == ("online", "")
        assert states == ["ready", "ready"] or states == ["ready"]
