"""PUT /api/v1/me/availability/ and the availability switch in the workspace header."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from servicedesk.routing.models import AgentProfile
from servicedesk.tickets.models import AgentPresence
from tests.api.conftest import client_for
from tests.factories import UserFactory
from tests.routing.conftest import profile

pytestmark = pytest.mark.django_db

URL = "/api/v1/me/availability/"


def test_an_agent_reads_and_sets_their_availability(agent):
    api = client_for(agent)
    response = api.get(URL)
    assert response.status_code == 200
    assert response.json() == {
        "availability": "offline",
        "changed_at": None,
        "capacity": 10,
        "chat_capacity": 2,
        "open_tickets": 0,
    }
    response = api.put(URL, {"availability": "online"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["availability"], body["capacity"], body["open_tickets"]) == ("online", 10, 0)
    assert body["changed_at"] is not None
    assert profile(agent).availability == "online"
    assert list(AgentPresence.objects.values_list("agent_id", "state", "source", "at")) == [
        (agent.pk, "ready", "desk", profile(agent).availability_changed_at)
    ]


@pytest.mark.parametrize("payload", [{"availability": "busy"}, {"availability": ""}, {}, {"availability": ["online"]}])
def test_bad_values_are_field_errors_and_change_nothing(agent, payload):
    api = client_for(agent)
    response = api.put(URL, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()["availability"]) and response.json()["detail"] == "Invalid input."
    assert not AgentPresence.objects.exists()
    assert AgentProfile.objects.filter(user=agent, availability="online").count() == 0


def test_customers_are_refused_and_visitors_must_sign_in(customer):
    user = UserFactory(username="alice", email="alice@example.com")
    customer.user = user
    customer.save(update_fields=["user"])
    api = client_for(user)
    assert api.put(URL, {"availability": "online"}, format="json").status_code == 403
    assert api.get(URL).status_code == 403
    assert APIClient().put(URL, {"availability": "online"}, format="json").status_code == 401
    assert not AgentProfile.objects.exists()


def test_the_desk_header_switch_sets_availability(client, agent):
    client.force_login(agent)
    page = client.get("/desk/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'action="/desk/routing/availability/"' in html
    assert '<option value="offline" selected>' in html
    response = client.post("/desk/routing/availability/", {"availability": "away", "next": "/desk/?status=open"})
    assert response.status_code == 302 and response["Location"] == "/desk/?status=open"
    assert profile(agent).availability == "away"
    assert '<option value="away" selected>' in client.get("/desk/").content.decode()


def test_the_switch_refuses_bad_values_foreign_redirects_and_non_agents(client, agent, customer):
    client.force_login(agent)
    response = client.post("/desk/routing/availability/", {"availability": "busy"})
    assert response.status_code == 302 and response["Location"] == "/desk/"
    assert not AgentProfile.objects.filter(user=agent).exclude(availability="offline").exists()
    response = client.post("/desk/routing/availability/", {"availability": "online", "next": "https://evil.example/"})
    assert response["Location"] == "/desk/"
    assert client.get("/desk/routing/availability/").status_code == 405
    client.logout()
    response = client.post("/desk/routing/availability/", {"availability": "online"})
    assert response.status_code == 302 and response["Location"].startswith("/desk/login/")
    user = UserFactory(username="alice")
    client.force_login(user)
    assert client.post("/desk/routing/availability/", {"availability": "online"}).status_code == 404
    assert AgentProfile.objects.filter(user=user).count() == 0
