"""Ticket state changes: exact values, one event per change, refusals change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from servicedesk.tickets import statuses
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket, TicketEvent
from servicedesk.tickets.services.tickets import (
    InvalidAssignee,
    InvalidMerge,
    InvalidStatusTransition,
    ticket_assign,
    ticket_merge,
    ticket_priority_change,
    ticket_queue_change,
    ticket_rate,
    ticket_status_change,
    ticket_tags_set,
    ticket_update,
)
from servicedesk.tickets.statuses import Status
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def events(ticket: Ticket, kind: str) -> list[tuple]:
    return list(
        TicketEvent.objects.filter(ticket=ticket, kind=kind).order_by("at", "id").values_list("before", "after")
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b, targets in statuses.TRANSITIONS.items() for a in targets],
)
def test_every_allowed_transition_is_applied_with_one_event(queue, agent, before, after):
    ticket = ticket_make(queue=queue, at=T0)
    Ticket.objects.filter(pk=ticket.pk).update(status=before)
    result = ticket_status_change(ticket=ticket, status=after, actor=Actor.agent(agent), at=T0 + timedelta(hours=1))
    assert result.status == after
    assert events(ticket, "status") == [(before, after)]
    event = TicketEvent.objects.get(ticket=ticket, kind="status")
    assert event.actor_user == agent and event.at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b in Status.values for a in Status.values if a != b and a not in statuses.TRANSITIONS[b]],
)
def test_forbidden_transitions_change_nothing(queue, agent, before, after):
    ticket = ticket_make(queue=queue, at=T0)
    Ticket.objects.filter(pk=ticket.pk).update(status=before)
    with pytest.raises(InvalidStatusTransition):
        ticket_status_change(ticket=ticket, status=after, actor=Actor.agent(agent))
    ticket.refresh_from_db()
    assert ticket.status == before
    assert events(ticket, "status") == []


def test_solve_and_reopen_set_and_clear_solved_at(queue, agent):
    ticket = ticket_make(queue=queue, at=T0)
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(agent), at=T0 + timedelta(hours=2))
    ticket.refresh_from_db()
    assert ticket.solved_at == T0 + timedelta(hours=2)
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.agent(agent), at=T0 + timedelta(hours=3))
    ticket.refresh_from_db()
    assert ticket.solved_at == T0 + timedelta(hours=2)  # solved -> closed is not a new solve
    ticket_status_change(ticket=ticket, status="open", actor=Actor.agent(agent), at=T0 + timedelta(hours=4))
    ticket.refresh_from_db()
    assert ticket.solved_at is None
    assert events(ticket, "status") == [("new", "solved"), ("solved", "closed"), ("closed", "open")]


def test_same_status_is_a_no_op(queue, agent):
    ticket = ticket_make(queue=queue)
    ticket_status_change(ticket=ticket, status="new", actor=Actor.agent(agent))
    assert events(ticket, "status") == []


def test_priority_change_records_before_and_after(queue, agent):
    ticket = ticket_make(queue=queue)
    ticket_priority_change(ticket=ticket, priority="urgent", actor=Actor.agent(agent))
    assert events(ticket, "priority") == [("normal", "urgent")]
    with pytest.raises(Exception, match="Unknown priority"):
        ticket_priority_change(ticket=ticket, priority="critical", actor=Actor.agent(agent))
    ticket.refresh_from_db()
    assert ticket.priority == "urgent"


def test_assign_only_to_agents_of_the_queue(queue, agent):
    other_queue = QueueFactory(slug="billing")
    outsider = AgentFactory(username="bob", queues=[other_queue])
    manager = AgentFactory(username="max", role="manager")
    ticket = ticket_make(queue=queue)
    with pytest.raises(InvalidAssignee):
        ticket_assign(ticket=ticket, assignee=outsider, actor=Actor.agent(agent))
    ticket.refresh_from_db()
    assert ticket.assignee is None and events(ticket, "assignee") == []
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(agent))
    ticket_assign(ticket=ticket, assignee=manager, actor=Actor.agent(agent))
    ticket_assign(ticket=ticket, assignee=None, actor=Actor.agent(agent))
    assert events(ticket, "assignee") == [(None, agent.pk), (agent.pk, manager.pk), (manager.pk, None)]


def test_customer_cannot_be_assigned(queue, agent):
    from servicedesk.accounts.models import User

    customer_user = User.objects.create_user("cust", password="x")
    ticket = ticket_make(queue=queue)
    with pytest.raises(InvalidAssignee):
        ticket_assign(ticket=ticket, assignee=customer_user, actor=Actor.agent(agent))


def test_queue_change_unassigns_an_agent_who_does_not_work_there(queue, agent):
    billing = QueueFactory(slug="billing")
    ticket = ticket_make(queue=queue)
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(agent))
    ticket_queue_change(ticket=ticket, queue=billing, actor=Actor.agent(agent))
    ticket.refresh_from_db()
    assert ticket.queue == billing and ticket.assignee is None
    assert events(ticket, "queue") == [("support", "billing")]
    assert events(ticket, "assignee") == [(None, agent.pk), (agent.pk, None)]


def test_tags_are_normalised_and_recorded(queue, agent):
    ticket = ticket_make(queue=queue)
    ticket_tags_set(ticket=ticket, tags=["VIP ", "refund", "vip", ""], actor=Actor.agent(agent))
    assert sorted(ticket.tags.values_list("name", flat=True)) == ["refund", "vip"]
    ticket_tags_set(ticket=ticket, tags=["refund", "vip"], actor=Actor.agent(agent))
    assert events(ticket, "tags") == [([], ["refund", "vip"])]


def test_update_is_all_or_nothing(queue, agent):
    ticket = ticket_make(queue=queue)
    Ticket.objects.filter(pk=ticket.pk).update(status="closed")
    with pytest.raises(InvalidStatusTransition):
        ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="high", tags=["x"], status="pending")
    ticket.refresh_from_db()
    assert ticket.priority == "normal" and list(ticket.tags.all()) == []
    assert TicketEvent.objects.filter(ticket=ticket).exclude(kind="created").count() == 0


def test_merge_closes_the_source_and_points_it_to_the_target(queue, agent):
    customer = CustomerFactory()
    target = ticket_make(queue=queue, customer=customer, at=T0)
    source = ticket_make(queue=queue, customer=customer, at=T0)
    at = T0 + timedelta(hours=1)
    ticket_merge(source=source, target=target, actor=Actor.agent(agent), at=at)
    source.refresh_from_db()
    assert source.status == "closed" and source.merged_into == target and source.solved_at == at
    assert events(source, "status") == [("new", "closed")]
    # Each event names the other ticket (and lists what moved: tests/tickets/test_merge_split.py).
    assert [(before, after["reference"]) for before, after in events(source, "merged")] == [(None, target.reference)]
    assert [(before, after["reference"]) for before, after in events(target, "merged_in")] == [(None, source.reference)]
    # Idempotent for the same pair.
    ticket_merge(source=source, target=target, actor=Actor.agent(agent))
    assert TicketEvent.objects.filter(kind__in=["merged", "merged_in"]).count() == 2


def test_merge_refusals(queue, agent):
    a = ticket_make(queue=queue)
    b = ticket_make(queue=queue)  # another customer
    with pytest.raises(InvalidMerge):
        ticket_merge(source=a, target=a, actor=Actor.agent(agent))
    with pytest.raises(InvalidMerge):
        ticket_merge(source=a, target=b, actor=Actor.agent(agent))
    a.refresh_from_db()
    assert a.status == "new" and a.merged_into is None


def test_rating_bounds(queue):
    ticket = ticket_make(queue=queue)
    rating = ticket_rate(ticket=ticket, score=5, comment="Great", actor=Actor.system(), at=T0)
    assert (rating.score, rating.comment, rating.at) == (5, "Great", T0)
    with pytest.raises(Exception, match="1 to 5"):
        ticket_rate(ticket=ticket, score=6, actor=Actor.system())
    assert ticket.ratings.count() == 1
    assert events(ticket, "rating") == [(None, {"score": 5})]


def test_rating_and_customer_merge_move_updated_at(queue):
    ticket = ticket_make(queue=queue, at=T0)
    ticket_rate(ticket=ticket, score=4, actor=Actor.system(), at=T0 + timedelta(days=1))
    ticket.refresh_from_db()
    assert ticket.updated_at == T0 + timedelta(days=1)

    from servicedesk.tickets.services.customers import customer_merge

    other = CustomerFactory()
    moved = ticket_make(queue=queue, customer=other, at=T0)
    customer_merge(source=other, target=ticket.customer, actor=Actor.system(), at=T0 + timedelta(days=2))
    moved.refresh_from_db()
    assert moved.customer == ticket.customer and moved.updated_at == T0 + timedelta(days=2)
    assert events(moved, "customer") == [({"customer": other.pk}, {"customer": ticket.customer.pk})]
