"""Intake under concurrency, on PostgreSQL: two deliveries at once still store one contact."""

from __future__ import annotations

import pytest

from servicedesk.tickets.inbound import InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Customer, Identity, Message, Ticket
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.concurrency import run_at_once
from tests.factories import QueueFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_same_message_delivered_concurrently_is_stored_once():
    QueueFactory(slug="support")

    def deliver(_i: int):
        return inbound_message_receive(
            inbound=InboundMessage(
                channel="web",
                external_id="same-id",
                sender=SenderIdentity("email", "race@example.com"),
                subject="Race",
                text="hello",
            )
        )

    results = run_at_once(6, deliver)
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(IntakeOutcome.CREATED) == 1
    assert outcomes.count(IntakeOutcome.DUPLICATE) == 5
    assert Ticket.objects.count() == 1
    assert Message.objects.filter(kind="public_enduser").count() == 1
    assert Message.objects.filter(purpose="acknowledgement").count() == 1
    assert Customer.objects.count() == 1


def test_first_contacts_of_one_person_at_once_make_one_customer():
    QueueFactory(slug="support")

    def deliver(i: int):
        return inbound_message_receive(
            inbound=InboundMessage(
                channel="web",
                external_id=f"id-{i}",
                sender=SenderIdentity("email", "new@example.com"),
                subject=f"Question {i}",
                text="hello",
            )
        )

    results = run_at_once(6, deliver)
    assert {r.outcome for r in results} == {IntakeOutcome.CREATED}
    assert Customer.objects.count() == 1 and Identity.objects.count() == 1
    assert Ticket.objects.filter(customer=Customer.objects.get()).count() == 6
