"""Idempotency-Key on the API: same key and same request replay the first result; the same key with
another request is 422 with the reason; two requests with one key at once have one effect."""

from __future__ import annotations

import json

import pytest
from django.core import mail

from servicedesk.tickets.models import IdempotencyKey, Message, Ticket
from servicedesk.tickets.services.idempotency import request_digest
from tests.api.conftest import client_for
from tests.concurrency import run_at_once
from tests.factories import ticket_make

REUSED = (
    "This Idempotency-Key was already used with a different request (method, address or body). "
    "Send the same request to repeat it, or use a new key for a new request."
)


def open_ticket(client, body, key):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/tickets/", json.dumps(body), content_type="application/json", headers={"Idempotency-Key": key}
    )


def test_the_digest_is_the_same_for_the_same_body_in_another_key_order():
    one = request_digest(method="post", path="/api/v1/tickets/", body={"a": 1, "b": [1, {"c": "x", "d": None}]})
    two = request_digest(method="POST", path="/api/v1/tickets/", body={"b": [1, {"d": None, "c": "x"}], "a": 1})

    assert one == two
    assert one != request_digest(method="POST", path="/api/v1/tickets/", body={"a": 1, "b": [1, {"c": "y"}]})
    assert one != request_digest(method="POST", path="/api/v1/other/", body={"a": 1, "b": [1, {"c": "x", "d": None}]})


@pytest.mark.django_db
def test_same_key_and_same_body_replays_the_first_ticket(agent_api, agent, queue, customer):
    body = {"customer_email": "alice@example.com", "subject": "Key test", "text": "Once.", "initiator": "outbound"}

    first = open_ticket(agent_api, body, "k-1")
    second = open_ticket(agent_api, dict(reversed(list(body.items()))), "k-1")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Ticket.objects.count() == 1
    record = IdempotencyKey.objects.get()
    assert (record.user, record.key, record.message) == (agent, "k-1", Message.objects.get())
    assert record.request_digest == request_digest(method="POST", path="/api/v1/tickets/", body=body)


@pytest.mark.django_db
def test_same_key_with_another_body_is_422_and_writes_nothing(agent_api, queue, customer):
    body = {"customer_email": "alice@example.com", "subject": "Key test", "text": "Once.", "initiator": "outbound"}
    first = open_ticket(agent_api, body, "k-2")
    outbox = len(mail.outbox)

    second = open_ticket(agent_api, {**body, "text": "Something else."}, "k-2")

    assert (first.status_code, second.status_code) == (201, 422)
    assert second.json() == {"detail": REUSED, "Idempotency-Key": [REUSED]}
    assert (Ticket.objects.count(), Message.objects.count(), len(mail.outbox)) == (1, 1, outbox)


@pytest.mark.django_db
def test_a_customer_reusing_a_key_on_another_ticket_is_422(customer_api, queue, customer):
    one = ticket_make(customer=customer, queue=queue, subject="One")
    two = ticket_make(customer=customer, queue=queue, subject="Two")
    headers = {"Idempotency-Key": "c-9"}

    first = customer_api.post(
        f"/api/v1/tickets/{one.reference}/messages/", {"text": "Hi"}, format="json", headers=headers
    )
    again = customer_api.post(
        f"/api/v1/tickets/{one.reference}/messages/", {"text": "Hi"}, format="json", headers=headers
    )
    other = customer_api.post(
        f"/api/v1/tickets/{two.reference}/messages/", {"text": "Hi"}, format="json", headers=headers
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
    assert first.json()["id"] == again.json()["id"]
    assert other.json() == {"detail": REUSED, "Idempotency-Key": [REUSED]}
    assert (one.messages.count(), two.messages.count()) == (1, 0)


@pytest.mark.django_db
def test_a_refused_request_leaves_the_key_unused(agent_api, queue, customer):
    refused = open_ticket(agent_api, {"customer_email": "alice@example.com", "subject": "", "text": "x"}, "k-3")
    body = {"customer_email": "alice@example.com", "subject": "Now valid", "text": "x", "initiator": "outbound"}
    accepted = open_ticket(agent_api, body, "k-3")

    assert (refused.status_code, accepted.status_code) == (400, 201)
    assert Ticket.objects.get().subject == "Now valid"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
@pytest.mark.parametrize("initiator", ["outbound", "inbound"])
def test_concurrent_requests_with_one_key_have_one_effect(agent, queue, customer, initiator):
    body = {
        "customer_email": "alice@example.com",
        "subject": "At once",
        "text": "Twice at once.",
        "initiator": initiator,
    }
    clients = [client_for(agent) for _ in range(4)]

    responses = run_at_once(4, lambda i: open_ticket(clients[i], body, "same"))

    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["reference"] for r in responses}) == 1
    assert Ticket.objects.count() == 1
    assert Message.objects.exclude(kind="system").count() == 1
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_concurrent_replies_with_one_key_have_one_effect(agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue, subject="Reply race")
    clients = [client_for(agent) for _ in range(4)]
    url = f"/api/v1/tickets/{ticket.reference}/messages/"

    responses = run_at_once(
        4, lambda i: clients[i].post(url, {"text": "Once."}, format="json", headers={"Idempotency-Key": "r"})
    )

    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert ticket.messages.filter(kind="public_agent").count() == 1


@pytest.mark.django_db
def test_a_key_first_used_before_keys_were_recorded_replays_its_ticket(agent_api, agent, queue, customer):
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.services.replies import ticket_open_outbound

    earlier = ticket_open_outbound(
        customer=customer,
        subject="Before the upgrade",
        text="Hi",
        author=agent,
        channel="api",
        actor=Actor.agent(agent, source="api"),
        external_id=f"{agent.pk}:old-key",
    )
    body = {
        "customer_email": "alice@example.com",
        "subject": "Before the upgrade",
        "text": "Hi",
        "initiator": "outbound",
    }

    response = open_ticket(agent_api, body, "old-key")

    assert response.status_code == 200, response.content
    assert response.json()["reference"] == earlier.ticket.reference
    assert Ticket.objects.count() == 1
    assert IdempotencyKey.objects.get().message == earlier
