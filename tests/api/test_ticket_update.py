"""PATCH /api/v1/tickets/<reference>/: agents change fields; each change leaves its event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_status_change, ticket_tags_set
from tests.factories import AgentFactory, QueueFactory, TopicFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ticket(queue, customer):
    ticket = ticket_make(customer=customer, queue=queue, subject="Invoice twice", at=T0)
    ticket_tags_set(ticket=ticket, tags=["billing"], actor=Actor.system(), at=T0)
    return ticket


def patch(client, ticket, data):  # type: ignore[no-untyped-def]
    return client.patch(f"/api/v1/tickets/{ticket.reference}/", data, format="json")


def events(ticket) -> list[tuple[str, object, object, int | None, str]]:  # type: ignore[no-untyped-def]
    return list(
        TicketEvent.objects.filter(ticket=ticket, at__gt=T0)
        .order_by("id")
        .values_list("kind", "before", "after", "actor_user_id", "source")
    )


def test_patch_status_priority_assignee_tags_records_events(agent_api, agent, ticket):
    response = patch(
        agent_api, ticket, {"status": "pending", "priority": "high", "assignee": agent.pk, "tags": ["VIP", " refund "]}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["priority"], body["assignee"], body["tags"]) == (
        "pending",
        "high",
        {"id": agent.pk, "name": "Ann"},
        ["refund", "vip"],
    )
    assert events(ticket) == [
        ("priority", "normal", "high", agent.pk, "api"),
        ("assignee", None, agent.pk, agent.pk, "api"),
        ("tags", ["billing"], ["refund", "vip"], agent.pk, "api"),
        ("status", "new", "pending", agent.pk, "api"),
    ]
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.assignee_id) == ("pending", "high", agent.pk)


def test_patch_queue_topic_subject_and_unassign(manager_api, manager, agent, ticket):
    billing = QueueFactory(slug="billing")
    topic = TopicFactory(slug="refunds")
    patch(manager_api, ticket, {"assignee": agent.pk})

    response = patch(manager_api, ticket, {"queue": "billing", "topic": "refunds", "subject": "  Charged   twice "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["queue"], body["topic"], body["subject"], body["assignee"]) == (
        "billing",
        "refunds",
        "Charged twice",
        None,
    )
    assert events(ticket) == [
        ("assignee", None, agent.pk, manager.pk, "api"),
        ("subject", "Invoice twice", "Charged twice", manager.pk, "api"),
        ("queue", "support", "billing", manager.pk, "api"),
        ("assignee", agent.pk, None, manager.pk, "api"),
        ("topic", None, "refunds", manager.pk, "api"),
    ]
    ticket.refresh_from_db()
    assert (ticket.queue_id, ticket.topic_id) == (billing.pk, topic.pk)


def test_unchanged_values_record_nothing(agent_api, ticket):
    response = patch(agent_api, ticket, {"status": "new", "priority": "normal", "tags": ["billing"]})

    assert response.status_code == 200
    assert events(ticket) == []


def test_invalid_transition_is_400_and_nothing_changes(agent_api, ticket):
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system(), at=T0)

    response = patch(agent_api, ticket, {"priority": "urgent", "status": "pending"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A ticket cannot go from Closed to Pending.",
        "status": ["A ticket cannot go from Closed to Pending."],
    }
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == ("closed", "normal")
    assert events(ticket) == []


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"status": "done"}, {"status": ['"done" is not a valid choice.']}),
        ({"priority": "asap"}, {"priority": ['"asap" is not a valid choice.']}),
        ({"assignee": 999999}, {"assignee": ["Unknown agent: 999999."]}),
        ({"queue": "nowhere"}, {"queue": ["Unknown queue, or not one of your queues: nowhere."]}),
        ({"topic": "nope"}, {"topic": ["Unknown topic: nope."]}),
        ({"tags": "vip"}, {"tags": ['Expected a list of items but got type "str".']}),
        ({"subject": ""}, {"subject": ["This field may not be blank."]}),
    ],
)
def test_invalid_fields_are_400(agent_api, ticket, data, errors):
    response = patch(agent_api, ticket, {"priority": "high", **data})

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", **errors}
    assert events(ticket) == []


def test_assignee_outside_the_queue_is_400(agent_api, ticket):
    outsider = AgentFactory(username="otto", queues=[QueueFactory(slug="billing")])

    response = patch(agent_api, ticket, {"priority": "high", "assignee": outsider.pk})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "This agent does not work in the ticket's queue.",
        "assignee": ["This agent does not work in the ticket's queue."],
    }
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"
    assert events(ticket) == []


def test_agent_cannot_move_a_ticket_to_a_queue_not_theirs(agent_api, ticket):
    QueueFactory(slug="billing")

    response = patch(agent_api, ticket, {"queue": "billing"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "queue": ["Unknown queue, or not one of your queues: billing."],
    }


def test_ticket_in_another_queue_is_404(agent_api, customer):
    hidden = ticket_make(customer=customer, queue=QueueFactory(slug="billing"))

    detail = agent_api.get(f"/api/v1/tickets/{hidden.reference}/")
    change = patch(agent_api, hidden, {"priority": "high"})
    messages = agent_api.get(f"/api/v1/tickets/{hidden.reference}/messages/")

    assert (detail.status_code, change.status_code, messages.status_code) == (404, 404, 404)
    assert detail.json() == change.json() == messages.json() == {"detail": "Not found."}
    assert Ticket.objects.get(pk=hidden.pk).priority == "normal"


def test_unknown_reference_is_404(agent_api, queue):
    response = agent_api.get("/api/v1/tickets/SD-424242/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_put_is_not_allowed(agent_api, ticket):
    response = agent_api.put(f"/api/v1/tickets/{ticket.reference}/", {"priority": "high"}, format="json")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "PUT" not allowed.'}
