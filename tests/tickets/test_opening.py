"""The opening services the API calls: one ticket per idempotency key and request, a key reused with another
request refused, nothing half-written."""

from __future__ import annotations

import pytest

from servicedesk.tickets.inbound import SenderIdentity
from servicedesk.tickets.models import Customer, IdempotencyKey, Message, Ticket, TicketEvent
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
            idempotency_key="k-1",
            request_digest="digest-1",
        )

    with django_capture_on_commit_callbacks(execute=True):
        first = open_once()
        second = open_once()
    assert (first.created, second.created, second.ticket.pk) == (True, False, first.ticket.pk)
    assert (first.address, second.address) == ("dora@example.com", "dora@example.com")
    assert Ticket.objects.count() == 1
    key = IdempotencyKey.objects.get()
    assert (key.user, key.key, key.request_digest, key.message) == (agent, "k-1", "digest-1", first.message)
    assert Customer.objects.get().name == "Dora Lind"
    created = TicketEvent.objects.get(kind="created")
    assert (created.actor_user_id, created.source) == (agent.pk, "api")


def test_an_empty_message_writes_nothing(agent, queue):
    from servicedesk.tickets.services.intake import EmptyMessage

    with pytest.raises(EmptyMessage):
        ticket_open_for_agent(agent=agent, customer_email="e@example.com", subject="S", text="  ")
    assert (Ticket.objects.count(), Customer.objects.count(), Message.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize("initiator", ["inbound", "outbound"])
def test_the_same_key_with_another_request_is_refused_and_writes_nothing(agent, queue, initiator):
    def open_with(digest: str, text: str) -> object:
        return ticket_open_for_agent(
            agent=agent,
            customer_email="dora@example.com",
            subject="Parcel",
            text=text,
            initiator=initiator,
            idempotency_key="k-1",
            request_digest=digest,
        )

    first = open_with("digest-1", "Lost.")
    messages = Message.objects.count()
    with pytest.raises(IdempotencyKeyReused) as refused:
        open_with("digest-2", "Found.")

    assert refused.value.field == "Idempotency-Key"
    assert refused.value.status_code == 422
    assert (Ticket.objects.get(), Message.objects.count()) == (first.ticket, messages)  # type: ignore[attr-defined]
    assert IdempotencyKey.objects.get().request_digest == "digest-1"


def test_a_refused_opening_leaves_the_key_unused(agent, queue):
    from servicedesk.tickets.services.intake import EmptyMessage

    with pytest.raises(EmptyMessage):
        ticket_open_for_agent(
            agent=agent, customer_email="e@example.com", subject="S", text=" ", idempotency_key="k", request_digest="a"
        )
    opening = ticket_open_for_agent(
        agent=agent, customer_email="e@example.com", subject="S", text="T", idempotency_key="k", request_digest="b"
    )

    assert opening.created is True
    assert IdempotencyKey.objects.get().request_digest == "b"


def test_a_key_that_joined_a_ticket_is_refused(customer, queue):
    from servicedesk.tickets.inbound import InboundMessage
    from servicedesk.tickets.services.intake import inbound_message_receive
    from tests.factories import UserFactory

    user = UserFactory(username="alice")
    ticket = ticket_make(customer=customer, queue=queue)
    sender = SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne")
    # A message stored under the key before keys were kept with their request: it joined a ticket.
    inbound_message_receive(
        inbound=InboundMessage(
            channel="api",
            external_id=f"{user.pk}:k-2",
            sender=sender,
            text="On the old ticket.",
            ticket_reference=ticket.reference,
            reference_trusted=True,
        )
    )
    with pytest.raises(IdempotencyKeyReused) as refused:
        ticket_open_for_customer(
            user=user, sender=sender, subject="New", text="Another thing.", idempotency_key="k-2", request_digest="d"
        )
    assert refused.value.field == "Idempotency-Key"
    assert Ticket.objects.count() == 1
    assert IdempotencyKey.objects.count() == 0


def test_a_customer_opening_twice_with_one_key_opens_one_ticket(customer, queue):
    from tests.factories import UserFactory

    user = UserFactory(username="alice")
    sender = SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne")

    first = ticket_open_for_customer(
        user=user, sender=sender, subject="New", text="Hello", idempotency_key="c-1", request_digest="d"
    )
    second = ticket_open_for_customer(
        user=user, sender=sender, subject="New", text="Hello", idempotency_key="c-1", request_digest="d"
    )

    assert (first.created, second.created, second.ticket) == (True, False, first.ticket)
    assert Ticket.objects.count() == 1
