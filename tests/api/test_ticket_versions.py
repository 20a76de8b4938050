"""The ticket detail's ETag and PATCH with If-Match: a change made on a stale read is
refused with 412 and the current values; PATCH writes only the fields sent."""

from __future__ import annotations

import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import TicketEvent
from servicedesk.tickets.services.tickets import ticket_priority_change
from tests.api.conftest import client_for
from tests.factories import AgentFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket(queue, customer):
    return ticket_make(customer=customer, queue=queue, subject="Invoice twice")


@pytest.fixture
def colleague_api(queue):
    return client_for(AgentFactory(username="cid", display_name="Cid", queues=[queue]))


def url(ticket) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/tickets/{ticket.reference}/"


def test_detail_answers_with_the_version_as_etag(agent_api, ticket):
    response = agent_api.get(url(ticket))

    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert response.json()["version"] == 1


def test_if_match_with_the_current_version_applies_and_returns_the_next_etag(agent_api, ticket):
    response = agent_api.patch(url(ticket), {"priority": "urgent"}, format="json", HTTP_IF_MATCH='"1"')

    assert response.status_code == 200
    assert response["ETag"] == '"2"'
    assert (response.json()["priority"], response.json()["version"]) == ("urgent", 2)


def test_if_match_with_a_stale_version_is_412_with_the_current_values(agent_api, colleague_api, ticket):
    etag = agent_api.get(url(ticket))["ETag"]
    colleague_api.patch(url(ticket), {"priority": "urgent"}, format="json", HTTP_IF_MATCH=etag)
    before = TicketEvent.objects.filter(ticket=ticket).count()

    response = agent_api.patch(url(ticket), {"status": "pending"}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 412
    body = response.json()
    assert body["detail"] == "The ticket was changed since you loaded it (it is now at version 2)."
    assert body["version"] == 2
    assert (body["current"]["priority"], body["current"]["status"], body["current"]["version"]) == (
        "urgent",
        "new",
        2,
    )
    assert response["ETag"] == '"2"'
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.version) == ("new", "urgent", 2)
    assert TicketEvent.objects.filter(ticket=ticket).count() == before


@pytest.mark.parametrize("header", ["garbage", '"abc"', 'W/"7"'])
def test_an_if_match_that_is_no_current_version_is_412(agent_api, ticket, header):
    response = agent_api.patch(url(ticket), {"priority": "high"}, format="json", HTTP_IF_MATCH=header)

    assert response.status_code == 412
    ticket.refresh_from_db()
    assert ticket.priority == "normal"


def test_weak_and_star_if_match_apply(agent_api, ticket):
    weak = agent_api.patch(url(ticket), {"priority": "high"}, format="json", HTTP_IF_MATCH='W/"1"')
    star = agent_api.patch(url(ticket), {"priority": "low"}, format="json", HTTP_IF_MATCH="*")

    assert (weak.status_code, star.status_code) == (200, 200)
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.version) == ("low", 3)


def test_patch_without_if_match_writes_only_the_fields_sent(agent_api, colleague_api, agent, ticket):
    colleague_api.patch(url(ticket), {"priority": "urgent", "tags": ["vip"]}, format="json")

    response = agent_api.patch(url(ticket), {"status": "pending"}, format="json")

    assert response.status_code == 200
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == ("pending", "urgent")
    assert list(ticket.tags.values_list("name", flat=True)) == ["vip"]
    assert list(TicketEvent.objects.filter(ticket=ticket, actor_user=agent).values_list("kind", "before", "after")) == [
        ("status", "new", "pending")
    ]


def test_every_change_increments_the_version(agent_api, ticket):
    ticket_priority_change(ticket=ticket, priority="high", actor=Actor.system())
    ticket_priority_change(ticket=ticket, priority="high", actor=Actor.system())  # no change, no new version

    assert agent_api.get(url(ticket))["ETag"] == '"2"'
