"""A customer's token: their own tickets only; another customer's tickets do not exist."""

from __future__ import annotations

import pytest

from servicedesk.tickets.models import Message, Ticket, TicketEvent
from tests.api.conftest import client_for
from tests.factories import CustomerFactory, QueueFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets(queue, customer):
    bob = CustomerFactory(name="Bob Stone", email="bob@example.com")
    own_web = ticket_make(customer=customer, queue=queue, subject="Mine by web", channel="web")
    own_phone = ticket_make(
        customer=customer, queue=QueueFactory(slug="billing"), subject="Mine by phone", channel="phone"
    )
    other = ticket_make(customer=bob, queue=queue, subject="Bob's")
    return {"own_web": own_web, "own_phone": own_phone, "other": other}


def test_list_shows_only_own_tickets_from_every_queue(customer_api, tickets):
    response = customer_api.get("/api/v1/tickets/")

    assert response.status_code == 200
    assert [item["reference"] for item in response.json()["results"]] == [
        tickets["own_phone"].reference,
        tickets["own_web"].reference,
    ]


def test_other_customers_ticket_is_404_everywhere(customer_api, tickets):
    reference = tickets["other"].reference

    detail = customer_api.get(f"/api/v1/tickets/{reference}/")
    messages = customer_api.get(f"/api/v1/tickets/{reference}/messages/")
    post = customer_api.post(f"/api/v1/tickets/{reference}/messages/", {"text": "Let me in"}, format="json")
    change = customer_api.patch(f"/api/v1/tickets/{reference}/", {"status": "solved"}, format="json")

    assert [r.status_code for r in (detail, messages, post, change)] == [404, 404, 404, 404]
    assert detail.json() == messages.json() == post.json() == change.json() == {"detail": "Not found."}
    assert Message.objects.filter(ticket=tickets["other"]).count() == 0


def test_customer_reads_own_ticket_but_cannot_change_it(customer_api, tickets, customer):
    own = tickets["own_web"]

    detail = customer_api.get(f"/api/v1/tickets/{own.reference}/")
    change = customer_api.patch(f"/api/v1/tickets/{own.reference}/", {"status": "solved"}, format="json")

    assert detail.status_code == 200
    assert detail.json()["customer"] == {
        "id": customer.pk,
        "name": "Alice Byrne",
        "identities": [{"kind": "email", "value": "alice@example.com"}],
    }
    assert change.status_code == 403
    assert change.json() == {"detail": "Only agents can change tickets."}
    assert Ticket.objects.get(pk=own.pk).status == "new"
    assert TicketEvent.objects.filter(ticket=own).count() == 1


def test_customer_ticket_filter_cannot_reach_others(customer_api, tickets):
    response = customer_api.get(f"/api/v1/tickets/?customer={tickets['other'].customer_id}")

    assert response.json()["count"] == 0


def test_signed_in_user_without_customer_record_sees_nothing(tickets):
    stranger = client_for(UserFactory(username="stranger"))

    listing = stranger.get("/api/v1/tickets/")
    detail = stranger.get(f"/api/v1/tickets/{tickets['own_web'].reference}/")
    customers = stranger.get("/api/v1/customers/")

    assert listing.json() == {"count": 0, "next": None, "previous": None, "count_capped": False, "results": []}
    assert detail.status_code == 404
    assert customers.json() == {"count": 0, "next": None, "previous": None, "count_capped": False, "results": []}


def test_customers_do_not_get_the_desks_tags_and_sla_fields(customer_api, agent_api, tickets):
    own = tickets["own_web"]
    agent_only = {"tags", "is_spam", "is_deleted", "sla_policy", "sla_due_at", "sla_targets"}

    listed = customer_api.get("/api/v1/tickets/").json()["results"]
    detail = customer_api.get(f"/api/v1/tickets/{own.reference}/").json()
    created = customer_api.post("/api/v1/tickets/", {"subject": "Another", "text": "Hello"}, format="json")

    assert created.status_code == 201
    for body in (*listed, detail, created.json()):
        assert agent_only.isdisjoint(body), body
        assert {"reference", "status", "priority", "created_at", "first_reply_at"} <= set(body)
    agent_detail = agent_api.get(f"/api/v1/tickets/{own.reference}/").json()
    assert agent_only <= set(agent_detail)


def refs(response) -> list[str]:
    return [item["reference"] for item in response.json()["results"]]


def test_a_customers_list_ignores_the_sla_filters_and_sort(customer_api, tickets):
    newest_update_first = refs(customer_api.get("/api/v1/tickets/"))
    for query in (
        {"due": "overdue"},
        {"due": "hour"},
        {"breaching_within": "60"},
        {"due_before": "2000-01-01T00:00:00Z"},
        {"breaching_within": "not a number"},
        {"ordering": "sla_due_at"},
        {"sort": "-due"},
    ):
        response = customer_api.get("/api/v1/tickets/", query)
        assert response.status_code == 200, query
        assert refs(response) == newest_update_first, query
