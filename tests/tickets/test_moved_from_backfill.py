"""The migration that added ``moved_from`` fills it for merges and splits made before it, from their events."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Session
from servicedesk.tickets.services.history import ticket_customer_message_record
from servicedesk.tickets.services.merging import ticket_merge, ticket_split
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
backfill = importlib.import_module("servicedesk.tickets.migrations.0028_moved_from").moved_from_backfill


def test_backfill_sets_the_first_ticket_each_row_was_moved_off(customer, queue, agent):
    actor = Actor.agent(agent)
    tickets = [ticket_make(customer=customer, queue=queue, channel="chat", at=T0) for _ in range(4)]
    first, second, target, split_off = tickets
    written = {}
    for n, ticket in enumerate(tickets):
        written[ticket.pk] = ticket_customer_message_record(
            ticket=ticket, customer=customer, text="Hello", at=T0 + timedelta(minutes=n), external_id=f"b{n}"
        )
    second_question = ticket_customer_message_record(
        ticket=split_off, customer=customer, text="And another thing", at=T0 + timedelta(hours=1), external_id="b9"
    )
    session = Session.objects.create(channel="chat", customer=customer, ticket=first, requested_at=T0)
    ticket_merge(source=first, target=second, actor=actor, at=T0 + timedelta(hours=2))
    ticket_merge(source=second, target=target, actor=actor, at=T0 + timedelta(hours=3))
    new = ticket_split(ticket=split_off, message=second_question, actor=actor, at=T0 + timedelta(hours=4))
    recorded = dict(Message.objects.values_list("pk", "moved_from_id"))
    assert recorded[written[first.pk].pk] == first.pk  # moved twice: keeps the first
    assert recorded[written[second.pk].pk] == second.pk
    assert recorded[written[target.pk].pk] is None
    assert recorded[second_question.pk] == split_off.pk
    assert Message.objects.get(pk=second_question.pk).ticket_id == new.pk

    # As a database from before the migration holds them.
    Message.objects.update(moved_from=None)
    Session.objects.update(moved_from=None)
    backfill(apps, None)
    backfill(apps, None)  # a second run changes nothing

    assert dict(Message.objects.values_list("pk", "moved_from_id")) == recorded
    session.refresh_from_db()
    assert (session.ticket_id, session.moved_from_id) == (target.pk, first.pk)
