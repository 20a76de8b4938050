"""With the Celery broker unreachable (a real connection to a closed port), requests that
enqueue work still answer normally: the change is stored and the work waits for the broker."""

from __future__ import annotations

import logging
import time

import pytest
from django.core import mail

from servicedesk.notifications.models import Notification
from servicedesk.notifications.services import notification_send
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.outage import CLOSED_PORT_REDIS, celery_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_ticket(queue, customer):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<m1@example.com>",
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject="Printer on fire",
            text="Smoke is coming out of the printer.",
        )
    ).ticket


@pytest.fixture
def broker_down():
    with celery_broker(CLOSED_PORT_REDIS) as app:
        yield app


def test_an_agent_reply_is_stored_queued_and_the_page_answers(
    client, agent, email_ticket, broker_down, caplog, django_capture_on_commit_callbacks
):
    client.force_login(agent)
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "Please unplug it.", "kind": "reply"}
        )

    assert response.status_code == 302
    reply = Message.objects.get(ticket=email_ticket, kind="public_agent")
    assert (reply.text, reply.delivery_status) == ("Please unplug it.", "queued")
    assert f"Could not enqueue tickets.message_deliver({reply.pk},): the broker is unreachable" in {
        record.getMessage() for record in caplog.records
    }
    assert mail.outbox == []


def test_a_notification_is_stored_when_its_email_cannot_be_enqueued(
    agent, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notification = notification_send(
            user=agent, kind="sla_breach", key="k-1", title="SD-1001 breached its first reply target"
        )

    assert notification is not None
    assert list(Notification.objects.values_list("user_id", "title", "emailed_at")) == [
        (agent.pk, "SD-1001 breached its first reply target", None)
    ]


def test_the_health_check_says_the_broker_is_down_within_seconds(client, broker_down):
    started = time.monotonic()
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": True, "broker": False}
    assert time.monotonic() - started < 10
