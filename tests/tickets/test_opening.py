"""The opening services the API calls: one ticket per idempotency key, a reused key refused, nothing half-written."""

from __future__ import annotations

import pytest

from servicedesk.tickets.inbound import SenderIdentity
from servicedesk.tickets.models import Customer, Message, Ticket, TicketEvent
from servicedesk.tickets.services.opening import (
    IdempotencyKeyReused,
    ticket_open_for_agent,
    ticket_open_for_customer,
)
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("initiator", ["inbound", "outbound"])
def test_the_same_key_opens_one_ticket(agent, queue, initiator, django_capture_on_commit_callbacks):
    def open_once():
        return ticket_open_for_agent(
            agent=agent,
            customer_email="Dora@Example.com",
            customer_name="Dora Lind",
            subject="Parcel",
            text="Lost.",
            initiator=initiator,
            external_id=f"{agent.pk}:k-1",
        )

    with django_capture_on_commit_callbacks(execute=True):
        first = open_once()
        second = open_once()
    assert (first.created, second.created, second.ticket.pk) == (True, False, first.ticket.pk)
    assert first.address == "dora@example.com"
    assert Ticket.objects.count() == 1
    assert Customer.objects.get().name == "Dora Lind"
    created = TicketEvent.objects.get(kind="created")
    assert (created.actor_user_id, created.source) == (agent.pk, "api")


def test_an_empty_message_writes_nothing(agent, queue):
    from servicedesk.tickets.services.intake import EmptyMessage

    with pytest.raises(EmptyMessage):
        ticket_open_for_agent(agent=agent, customer_email="e@example.com", subject="S", text="  ")
    assert (Ticket.objects.count(), Customer.objects.count(), Message.objects.count()) == (0, 0, 0)


def test_a_key_that_joined_a_ticket_is_refused(customer, queue):
    ticket = ticket_make(customer=customer, queue=queue)
    sender = SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne")
    from servicedesk.tickets.inbound import InboundMessage
    from servicedesk.tickets.services.intake import inbound_message_receive

    inbound_message_receive(
        inbound=InboundMessage(
            channel="api",
            external_id="7:k-2",
            sender=sender,
            text="On the old ticket.",
            ticket_reference=ticket.reference,
            reference_trusted=True,
        )
    )
    with pytest.raises(IdempotencyKeyReused) as refused:
        ticket_open_for_customer(sender=sender, subject="New", text="Another thing.", external_id="7:k-2")
    assert refused.value.field == "Idempotency-Key"
    assert Ticket.objects.count() == 1
