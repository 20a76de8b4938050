"""/api/v1/customers/: one customer record and their history on every channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from servicedesk.tickets.models import Identity
from tests.factories import CustomerFactory, OrganizationFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def people(queue, customer):
    org = OrganizationFactory(name="Acme", tier="gold")
    customer.organization = org
    customer.created_at = T0
    customer.save(update_fields=["organization", "created_at"])
    Identity.objects.create(customer=customer, kind="phone", value="+4930123456")
    bob = CustomerFactory(name="Bob Stone", email="bob@example.com", created_at=T0)
    carol = CustomerFactory(name="Carol Diaz", email="carol@example.com", created_at=T0)
    billing = QueueFactory(slug="billing")
    history = [
        ticket_make(customer=customer, queue=queue, subject="By email", channel="email", at=T0),
        ticket_make(customer=customer, queue=queue, subject="By phone", channel="phone", at=T0 + timedelta(days=1)),
        ticket_make(
            customer=customer, queue=billing, subject="Billing chat", channel="chat", at=T0 + timedelta(days=2)
        ),
    ]
    ticket_make(customer=bob, queue=queue, at=T0)
    ticket_make(customer=carol, queue=billing, at=T0)
    return {"alice": customer, "bob": bob, "carol": carol, "history": history}


def test_agent_lists_customers_of_their_queues(agent_api, people):
    response = agent_api.get("/api/v1/customers/")

    alice, bob = people["alice"], people["bob"]
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "count_capped": False,
        "results": [
            {
                "id": alice.pk,
                "name": "Alice Byrne",
                "organization": {"name": "Acme", "tier": "gold"},
                "identities": [
                    {"kind": "email", "value": "alice@example.com"},
                    {"kind": "phone", "value": "+4930123456"},
                ],
                "created_at": "2025-03-01T09:00:00Z",
                "url": f"http://testserver/api/v1/customers/{alice.pk}/",
            },
            {
                "id": bob.pk,
                "name": "Bob Stone",
                "organization": None,
                "identities": [{"kind": "email", "value": "bob@example.com"}],
                "created_at": "2025-03-01T09:00:00Z",
                "url": f"http://testserver/api/v1/customers/{bob.pk}/",
            },
        ],
    }


def test_search_by_name_or_address(manager_api, people):
    by_name = manager_api.get("/api/v1/customers/?search=diaz").json()
    by_address = manager_api.get("/api/v1/customers/?search=BOB@example").json()
    by_phone = manager_api.get("/api/v1/customers/?search=30123").json()

    assert [c["name"] for c in by_name["results"]] == ["Carol Diaz"]
    assert [c["name"] for c in by_address["results"]] == ["Bob Stone"]
    assert [c["name"] for c in by_phone["results"]] == ["Alice Byrne"]


def test_search_finds_an_idn_address_by_either_form_of_its_domain(manager_api, people):
    CustomerFactory(name="José Núñez", email="josé@bücher.example")

    for term in ("xn--bcher-kva", "José@XN--BCHER-KVA.example", "bücher"):
        found = manager_api.get("/api/v1/customers/", {"search": term}).json()
        assert [c["identities"] for c in found["results"]] == [[{"kind": "email", "value": "josé@bücher.example"}]]


def test_detail_has_history_the_agent_may_see_newest_first(agent_api, manager_api, people):
    alice = people["alice"]
    email, phone, chat = people["history"]

    agent_view = agent_api.get(f"/api/v1/customers/{alice.pk}/").json()
    manager_view = manager_api.get(f"/api/v1/customers/{alice.pk}/").json()

    assert agent_view["tickets"] == [
        {
            "reference": phone.reference,
            "subject": "By phone",
            "channel": "phone",
            "status": "new",
            "created_at": "2025-03-02T09:00:00Z",
        },
        {
            "reference": email.reference,
            "subject": "By email",
            "channel": "email",
            "status": "new",
            "created_at": "2025-03-01T09:00:00Z",
        },
    ]
    assert [t["reference"] for t in manager_view["tickets"]] == [chat.reference, phone.reference, email.reference]
    assert (manager_view["name"], manager_view["organization"]) == ("Alice Byrne", {"name": "Acme", "tier": "gold"})


def test_history_holds_at_most_100_tickets(manager_api, queue):
    busy = CustomerFactory(name="Busy", created_at=timezone.now())
    tickets = [ticket_make(customer=busy, queue=queue, at=T0 + timedelta(minutes=i)) for i in range(101)]

    response = manager_api.get(f"/api/v1/customers/{busy.pk}/")

    history = response.json()["tickets"]
    assert len(history) == 100
    assert history[0]["reference"] == tickets[-1].reference
    assert history[-1]["reference"] == tickets[1].reference


def test_customer_outside_the_agents_queues_is_404(agent_api, people):
    response = agent_api.get(f"/api/v1/customers/{people['carol'].pk}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_customer_token_sees_only_themselves(customer_api, people):
    alice, bob = people["alice"], people["bob"]

    listing = customer_api.get("/api/v1/customers/").json()
    own = customer_api.get(f"/api/v1/customers/{alice.pk}/")
    other = customer_api.get(f"/api/v1/customers/{bob.pk}/")

    assert [c["id"] for c in listing["results"]] == [alice.pk]
    assert own.status_code == 200
    assert [t["reference"] for t in own.json()["tickets"]] == [t.reference for t in reversed(people["history"])]
    assert other.status_code == 404
