"""POST /api/v1/tickets/<reference>/messages/<id>/resend/: a failed message, sent again once."""

from __future__ import annotations

import pytest
from django.core import mail

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.delivery import INTERRUPTED
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.api.conftest import client_for
from tests.factories import AgentFactory, QueueFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_reply(queue, customer, agent):
    ticket = inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<resend-1@example.com>",
            sender=SenderIdentity("email", "alice@example.com", "Alice Byrne"),
            subject="Invoice twice",
            text="I was charged twice.",
            acknowledge=False,
        )
    ).ticket
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Refunded.", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="failed", delivery_error=INTERRUPTED)
    return reply


def _url(reply: Message) -> str:
    return f"/api/v1/tickets/{reply.ticket.reference}/messages/{reply.pk}/resend/"


def test_agent_sends_a_failed_message_again(agent_api, agent, failed_reply, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_api.post(_url(failed_reply))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["delivery_status"], body["delivery_error"]) == (failed_reply.pk, "queued", "")
    failed_reply.refresh_from_db()
    assert failed_reply.delivery_status == "sent"
    assert [m.to for m in mail.outbox] == [["Alice Byrne <alice@example.com>"]]
    event = TicketEvent.objects.get(kind="delivery", message=failed_reply, before="failed")
    assert (event.after, event.actor_user, event.source) == ({"status": "queued"}, agent, "api")

    again = agent_api.post(_url(failed_reply))

    assert again.status_code == 409
    assert again.json() == {"detail": "Only a message whose delivery failed can be sent again."}
    assert len(mail.outbox) == 1


def test_customer_cannot_resend(customer_api, failed_reply):
    response = customer_api.post(_url(failed_reply))

    assert response.status_code == 403
    assert response.json() == {"detail": "Only agents can send a message again."}
    failed_reply.refresh_from_db()
    assert (failed_reply.delivery_status, mail.outbox) == ("failed", [])


def test_an_agent_of_another_queue_and_a_wrong_message_get_404(failed_reply, agent_api):
    stranger = AgentFactory(username="sam", queues=[QueueFactory(slug="billing")])

    assert client_for(stranger).post(_url(failed_reply)).status_code == 404
    other_ticket_url = f"/api/v1/tickets/{failed_reply.ticket.reference}/messages/{failed_reply.pk + 1000}/resend/"
    assert agent_api.post(other_ticket_url).status_code == 404
    failed_reply.refresh_from_db()
    assert failed_reply.delivery_status == "failed"
