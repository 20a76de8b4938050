"""GET /api/v1/tickets/?search=: full text, ranked, access on every match, notes for agents only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from servicedesk.tickets.models import Message
from servicedesk.tickets.services.replies import ticket_note_create
from tests.api.conftest import client_for
from tests.factories import QueueFactory, ticket_make


@pytest.fixture(autouse=True)
def _postgres(postgres_only):
    """The search documents are PostgreSQL's: these tests fail (never skip) elsewhere."""


def says(ticket, text: str, kind: str = "public_enduser") -> None:
    Message.objects.create(ticket=ticket, kind=kind, channel="web", text=text, created_at=timezone.now())


def subjects(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [item["subject"] for item in response.json()["results"]]


@pytest.fixture
def tickets(db, queue, customer, manager):
    billing = QueueFactory(slug="billing", name="Billing")
    mine = ticket_make(customer=customer, queue=queue, subject="Router keeps rebooting")
    says(mine, "The routers reboot every night at two.")
    ticket_note_create(ticket=mine, author=manager, text="Firmware regression suspected, escalate to Zyxel.")
    hidden = ticket_make(queue=billing, subject="Router invoice")
    says(hidden, "Invoice for the routers, also Zyxel.")
    zh = ticket_make(customer=customer, queue=queue, subject="退款申请")
    says(zh, "我想申请退款 订单号 8812")
    return {"mine": mine, "hidden": hidden, "zh": zh}


def test_agents_find_text_notes_and_chinese_within_their_queues(tickets, agent):
    api = client_for(agent)
    assert subjects(api.get("/api/v1/tickets/?search=routers")) == ["Router keeps rebooting"]
    assert subjects(api.get("/api/v1/tickets/?search=zyxel")) == ["Router keeps rebooting"]
    assert subjects(api.get("/api/v1/tickets/?search=退款")) == ["退款申请"]
    assert subjects(api.get(f"/api/v1/tickets/?search={tickets['hidden'].reference}")) == []


def test_managers_find_every_queue_ranked_by_matches(tickets, manager_api):
    # Equal matches (the subject and one message each): the newer ticket first.
    assert subjects(manager_api.get("/api/v1/tickets/?search=router")) == ["Router invoice", "Router keeps rebooting"]
    says(tickets["mine"], "router router router")
    assert subjects(manager_api.get("/api/v1/tickets/?search=router")) == ["Router keeps rebooting", "Router invoice"]
    combined = manager_api.get("/api/v1/tickets/?search=router&queue=billing")
    assert subjects(combined) == ["Router invoice"]


def test_customers_never_match_internal_notes_or_other_customers(tickets, customer_api):
    assert subjects(customer_api.get("/api/v1/tickets/?search=firmware")) == []
    assert subjects(customer_api.get("/api/v1/tickets/?search=reboot")) == ["Router keeps rebooting"]
    assert subjects(customer_api.get("/api/v1/tickets/?search=invoice")) == []


@pytest.mark.parametrize("term", ['"unbalanced', "or - or", "!!&&||", "%00", "(", "a" * 10_240])
def test_malformed_searches_answer_200_with_nothing(tickets, agent_api, term):
    assert subjects(agent_api.get("/api/v1/tickets/", {"search": term})) == []
