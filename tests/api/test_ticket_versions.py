"""The ticket detail's ETag, and PATCH and the messages POST with If-Match: a change made on
a stale read is refused with 412 and the current values, nothing written; PATCH writes only
the fields sent; a replayed Idempotency-Key replays whatever its If-Match."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import IdempotencyKey, Message, TicketEvent
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


# --- A message that also changes the status: POST /tickets/<ref>/messages/ -----------------


def messages_url(ticket) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/tickets/{ticket.reference}/messages/"


def write(client, ticket, body, **headers):  # type: ignore[no-untyped-def]
    return client.post(messages_url(ticket), body, format="json", headers=headers)


STALE = "The ticket was changed since you loaded it (it is now at version 2)."


@pytest.mark.parametrize("kind", ["reply", "note"])
def test_a_message_with_the_current_if_match_is_written_and_answers_with_the_next_etag(agent_api, ticket, kind):
    response = write(agent_api, ticket, {"kind": kind, "text": "Refunded.", "status": "solved"}, **{"If-Match": '"1"'})

    assert response.status_code == 201
    # The message and the status change: two versions on from 1.
    assert response["ETag"] == '"3"'
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("solved", 3)
    assert list(Message.objects.filter(ticket=ticket).values_list("text", flat=True)) == ["Refunded."]
    assert agent_api.get(url(ticket))["ETag"] == '"3"'


@pytest.mark.parametrize("kind", ["reply", "note"])
def test_a_message_on_a_stale_if_match_is_412_and_writes_neither_message_nor_status(
    agent_api, colleague_api, ticket, kind
):
    colleague_api.patch(url(ticket), {"status": "pending"}, format="json")
    before = list(TicketEvent.objects.filter(ticket=ticket).values_list("id", flat=True))

    response = write(agent_api, ticket, {"kind": kind, "text": "Refunded.", "status": "solved"}, **{"If-Match": '"1"'})

    assert response.status_code == 412
    body = response.json()
    assert (body["detail"], body["version"]) == (STALE, 2)
    assert (body["current"]["reference"], body["current"]["status"], body["current"]["version"]) == (
        ticket.reference,
        "pending",
        2,
    )
    assert response["ETag"] == '"2"'
    ticket.refresh_from_db()
    assert (ticket.status, ticket.solved_at, ticket.version) == ("pending", None, 2)
    assert Message.objects.filter(ticket=ticket).count() == 0
    assert list(TicketEvent.objects.filter(ticket=ticket).values_list("id", flat=True)) == before


@pytest.mark.parametrize("header", ["garbage", '"abc"', '"7"'])
def test_a_message_with_an_if_match_that_is_no_current_version_is_412(agent_api, ticket, header):
    response = write(agent_api, ticket, {"text": "Hello", "status": "pending"}, **{"If-Match": header})

    assert response.status_code == 412
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("new", 1)
    assert Message.objects.filter(ticket=ticket).count() == 0


def test_a_message_without_if_match_writes_only_its_status_and_answers_with_the_etag(agent_api, colleague_api, ticket):
    colleague_api.patch(url(ticket), {"priority": "urgent"}, format="json")

    response = write(agent_api, ticket, {"text": "On it.", "status": "pending"})

    assert response.status_code == 201
    assert response["ETag"] == '"4"'
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.version) == ("pending", "urgent", 4)


def test_a_replay_of_an_applied_message_replays_though_its_if_match_is_now_stale(agent_api, ticket):
    body = {"text": "Refunded.", "status": "solved"}
    headers = {"If-Match": '"1"', "Idempotency-Key": "refund-1"}

    first = write(agent_api, ticket, body, **headers)
    again = write(agent_api, ticket, body, **headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first["ETag"] == '"3"'
    # A replay does not claim to know the ticket's version: its first answer may be long past.
    assert "ETag" not in again
    assert again.json() == first.json()
    assert Message.objects.filter(ticket=ticket).count() == 1
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("solved", 3)


def test_a_refused_if_match_leaves_the_idempotency_key_unused(agent_api, colleague_api, ticket):
    colleague_api.patch(url(ticket), {"priority": "high"}, format="json")
    body = {"text": "Refunded.", "status": "solved"}

    refused = write(agent_api, ticket, body, **{"If-Match": '"1"', "Idempotency-Key": "refund-2"})
    assert (refused.status_code, IdempotencyKey.objects.count(), Message.objects.count()) == (412, 0, 0)

    retried = write(agent_api, ticket, body, **{"If-Match": refused["ETag"], "Idempotency-Key": "refund-2"})

    assert retried.status_code == 201
    assert retried["ETag"] == '"4"'
    assert IdempotencyKey.objects.get().message == Message.objects.get(ticket=ticket)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == ("solved", "high")


def test_a_key_first_used_before_keys_were_kept_replays_though_its_if_match_is_stale(agent, agent_api, ticket):
    from servicedesk.tickets.services.replies import ticket_reply_create

    earlier = ticket_reply_create(ticket=ticket, author=agent, text="Refunded.", external_id=f"{agent.pk}:old-key")

    response = write(agent_api, ticket, {"text": "Refunded."}, **{"If-Match": '"1"', "Idempotency-Key": "old-key"})

    assert response.status_code == 200
    assert response.json()["id"] == earlier.pk
    assert Message.objects.filter(ticket=ticket).count() == 1


def test_the_schema_documents_if_match_and_the_412_on_patch_and_on_the_message_post():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    for path, method in (("/api/v1/tickets/{reference}/", "patch"), ("/api/v1/tickets/{reference}/messages/", "post")):
        operation = schema["paths"][path][method]
        headers = {p["name"]: p["description"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers["If-Match"] == "The ETag the ticket was read with; a changed ticket answers 412."
        assert operation["responses"]["412"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TicketVersionMismatch"
        }
    post_headers = [p["name"] for p in schema["paths"]["/api/v1/tickets/{reference}/messages/"]["post"]["parameters"]]
    assert "Idempotency-Key" in post_headers
    mismatch = schema["components"]["schemas"]["TicketVersionMismatch"]["properties"]
    assert sorted(mismatch) == ["current", "detail", "version"]


def test_a_customer_message_on_a_stale_if_match_is_412_and_writes_nothing(customer_api, agent_api, ticket):
    agent_api.patch(url(ticket), {"status": "pending"}, format="json")

    response = write(customer_api, ticket, {"text": "Any news?"}, **{"If-Match": '"1"'})

    assert response.status_code == 412
    body = response.json()
    assert (body["detail"], body["version"], body["current"]["status"]) == (STALE, 2, "pending")
    assert "tags" not in body["current"]  # the customer's view of the ticket
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("pending", 2)
    assert Message.objects.filter(ticket=ticket).count() == 0


def test_a_customer_message_with_the_current_if_match_is_written_and_answers_with_the_next_etag(
    customer_api, agent_api, ticket
):
    agent_api.patch(url(ticket), {"status": "pending"}, format="json")

    response = write(customer_api, ticket, {"text": "Any news?"}, **{"If-Match": '"2"'})

    assert response.status_code == 201
    # One change: the message, with the customer's answer moving a pending ticket back to open.
    assert response["ETag"] == '"3"'
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("open", 3)
    assert list(Message.objects.filter(ticket=ticket).values_list("text", flat=True)) == ["Any news?"]
