"""Routing fixtures: a routed queue and agents with profiles, built through the services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest

from servicedesk.accounts.models import User
from servicedesk.routing.models import AgentProfile, Skill
from servicedesk.routing.services import agent_profile_ensure, queue_routing_set, skill_get_or_create
from servicedesk.tickets.models import Queue
from tests.factories import AgentFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def skill(kind: str, value: str) -> Skill:
    return skill_get_or_create(kind=kind, value=value)


@pytest.fixture
def make_agent(db) -> Callable[..., User]:
    """An agent of ``queues`` with a routing profile (online unless told otherwise)."""

    def make(
        username: str,
        *,
        queues: Iterable[Queue],
        capacity: int = 10,
        availability: str = "online",
        skills: Iterable[Skill] = (),
        role: str = "agent",
    ) -> User:
        user = AgentFactory(username=username, queues=list(queues), role=role)
        profile = agent_profile_ensure(user=user, availability=availability, capacity=capacity)
        profile.skills.set(list(skills))
        return user

    return make


@pytest.fixture
def routed(queue) -> Queue:
    """The support queue, round robin, without skill requirements."""
    queue_routing_set(queue=queue, mode="round_robin")
    return queue


def profile(user: User) -> AgentProfile:
    return AgentProfile.objects.get(user=user)
