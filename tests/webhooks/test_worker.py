"""End to end: a ticket opened through the API reaches a real HTTP receiver through a real Celery worker."""

from __future__ import annotations

import json
import time

import pytest

from servicedesk.webhooks.models import WebhookDelivery
from servicedesk.webhooks.signing import signature_verify
from tests.api.conftest import client_for
from tests.e2e.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worker_delivers_a_signed_event(celery_live, receiver, endpoint_for, agent, queue):
    created = endpoint_for(receiver.url, ["ticket.created", "message.created"])

    response = client_for(agent).post(
        "/api/v1/tickets/",
        {"customer_email": "dora@example.com", "subject": "Parcel", "text": "Lost.", "initiator": "inbound"},
        format="json",
    )

    assert response.status_code == 201, response.content
    wait_until(lambda: len(receiver.requests) == 2, timeout=30, what="two webhook requests")
    by_type = {r.headers["Servicedesk-Event-Type"]: r for r in receiver.requests}
    for request in by_type.values():
        assert signature_verify(
            secret=created.secret,
            header=request.headers["Servicedesk-Signature"],
            body=request.body,
            now=int(time.time()),
        )
    assert json.loads(by_type["ticket.created"].body)["data"]["ticket"]["reference"] == response.json()["reference"]
    assert json.loads(by_type["message.created"].body)["data"]["message"]["text"] == "Lost."
    assert wait_until(
        lambda: list(WebhookDelivery.objects.values_list("state", flat=True)) == ["succeeded", "succeeded"],
        timeout=10,
        what="both deliveries marked delivered",
    )
