"""The inbox's search box: full text, access, filters combined, malformed input, constant queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.tickets.models import Message
from servicedesk.tickets.services.replies import ticket_note_create
from tests.factories import QueueFactory, ticket_make


@pytest.fixture(autouse=True)
def _postgres(postgres_only):
    """The search documents are PostgreSQL's: these tests fail (never skip) elsewhere."""


def says(ticket, text: str) -> None:
    Message.objects.create(ticket=ticket, kind="public_enduser", channel="web", text=text, created_at=timezone.now())


def rows(response) -> list[str]:  # type: ignore[no-untyped-def]
    """The references of the inbox's rows."""
    assert response.status_code == 200
    return re.findall(r'<tr class="ticket-row" data-reference="([^"]+)"', response.content.decode())


@pytest.fixture
def tickets(db, queue, manager):
    other = QueueFactory(slug="billing", name="Billing")
    visible = ticket_make(queue=queue, subject="Headset crackles")
    says(visible, "Static noise in the headsets since the update.")
    ticket_note_create(ticket=visible, author=manager, text="Known driver bug, see vendor case 55.")
    hidden = ticket_make(queue=other, subject="Headset refund")
    says(hidden, "Refund the headsets please.")
    return {"visible": visible, "hidden": hidden}


def test_the_search_box_finds_messages_and_notes_of_visible_tickets_only(tickets, agent_client):
    assert rows(agent_client.get("/desk/", {"q": "headsets"})) == [tickets["visible"].reference]
    assert rows(agent_client.get("/desk/", {"q": "driver bug"})) == [tickets["visible"].reference]
    assert tickets["hidden"].reference not in rows(agent_client.get("/desk/", {"q": "refund"}))
    assert tickets["hidden"].reference not in rows(agent_client.get("/desk/", {"q": tickets["hidden"].reference}))


def test_search_combines_with_the_status_filter(tickets, manager_client):
    both = rows(manager_client.get("/desk/", {"q": "headset"}))
    assert tickets["visible"].reference in both and tickets["hidden"].reference in both
    billing = rows(manager_client.get("/desk/", {"q": "headset", "queue": "billing"}))
    assert tickets["hidden"].reference in billing and tickets["visible"].reference not in billing
    assert tickets["visible"].reference not in rows(manager_client.get("/desk/", {"q": "headset", "status": "closed"}))


@pytest.mark.parametrize("term", ['"open', "- or", "x" * 10_240])
def test_malformed_searches_answer_200_with_nothing(tickets, agent_client, term):
    assert rows(agent_client.get("/desk/", {"q": term})) == []


def test_a_nul_in_the_search_is_refused_with_a_reason(tickets, agent_client):
    response = agent_client.get("/desk/", {"q": "head\x00set"})
    assert response.status_code == 400


def test_queries_do_not_grow_with_the_matches(db, queue, agent_client):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            rows(agent_client.get("/desk/", {"q": "keyboard"}))
        return len(captured)

    for n in range(2):
        says(ticket_make(queue=queue, subject=f"Keyboard {n}"), "keyboard")
    few = count()
    for n in range(20):
        says(ticket_make(queue=queue, subject=f"Keyboard {n}"), "keyboard")
    assert len(rows(agent_client.get("/desk/", {"q": "keyboard"}))) == 22
    assert count() == few
