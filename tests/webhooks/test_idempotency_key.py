"""Opening a ticket through the API: the Idempotency-Key is kept with the request's digest, not matched by time."""

from __future__ import annotations

import pytest

from servicedesk.tickets.models import IdempotencyKey, Message, Ticket
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

REUSED = (
    "This Idempotency-Key was already used with a different request (method, address or body). "
    "Send the same request to repeat it, or use a new key for a new request."
)


@pytest.mark.parametrize("initiator", ["inbound", "outbound"])
def test_same_key_same_body_replays_other_body_is_422(agent, queue, initiator):
    api = client_for(agent)
    body = {"customer_email": "dora@example.com", "subject": "Parcel", "text": "Lost.", "initiator": initiator}

    first = api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "order-1"})
    again = api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "order-1"})
    other = api.post(
        "/api/v1/tickets/", {**body, "text": "Found it."}, format="json", headers={"Idempotency-Key": "order-1"}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
    assert first.json() == again.json()
    assert other.json() == {"detail": REUSED, "Idempotency-Key": [REUSED]}
    assert Ticket.objects.count() == 1
    assert Message.objects.exclude(kind="system").count() == 1
    assert IdempotencyKey.objects.get().message == Message.objects.exclude(kind="system").get()


def test_a_customer_reusing_a_key_for_another_ticket_is_422(customer_api, customer, queue):
    body = {"subject": "Invoice", "text": "Wrong amount."}

    first = customer_api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "c-1"})
    again = customer_api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "c-1"})
    other = customer_api.post(
        "/api/v1/tickets/", {**body, "subject": "Refund"}, format="json", headers={"Idempotency-Key": "c-1"}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
    assert first.json()["reference"] == again.json()["reference"]
    assert Ticket.objects.count() == 1


def test_an_invalid_body_under_a_used_key_is_its_400_and_the_key_still_replays(agent, queue):
    api = client_for(agent)
    body = {"customer_email": "dora@example.com", "subject": "Parcel", "text": "Lost.", "initiator": "outbound"}
    first = api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "order-2"})

    invalid = api.post(
        "/api/v1/tickets/", {**body, "subject": ""}, format="json", headers={"Idempotency-Key": "order-2"}
    )
    again = api.post("/api/v1/tickets/", body, format="json", headers={"Idempotency-Key": "order-2"})
    other = api.post(
        "/api/v1/tickets/", {**body, "subject": "Refund"}, format="json", headers={"Idempotency-Key": "order-2"}
    )

    assert (first.status_code, invalid.status_code, again.status_code, other.status_code) == (201, 400, 200, 422)
    assert "subject" in invalid.json()
    assert again.json()["reference"] == first.json()["reference"]
    assert Ticket.objects.count() == 1
    assert IdempotencyKey.objects.get().message.ticket.reference == first.json()["reference"]
