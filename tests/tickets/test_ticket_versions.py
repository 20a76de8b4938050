"""The ticket version and the refusal of changes made on a stale read (services)."""

from __future__ import annotations

import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.replies import AgentDraft, ticket_respond
from servicedesk.tickets.services.tickets import (
    TicketConflict,
    TicketVersionMismatch,
    ticket_priority_change,
    ticket_update,
)
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket(queue, customer):
    return ticket_make(customer=customer, queue=queue)


def test_each_change_increments_the_version_once_per_field(ticket, agent):
    assert ticket.version == 1

    ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="high", status="open")
    ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="high")

    ticket.refresh_from_db()
    assert ticket.version == 3


def test_a_stale_version_is_refused_and_nothing_is_written(ticket, agent):
    ticket_priority_change(ticket=ticket, priority="urgent", actor=Actor.system())
    events = TicketEvent.objects.filter(ticket=ticket).count()

    with pytest.raises(TicketVersionMismatch) as refused:
        ticket_update(ticket=ticket, actor=Actor.agent(agent), version=1, status="pending")

    assert (refused.value.status_code, refused.value.version, refused.value.extra) == (412, 2, {"version": 2})
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("new", 2)
    assert TicketEvent.objects.filter(ticket=ticket).count() == events


def test_a_conflict_names_the_field_its_value_and_who(ticket, agent, manager):
    ticket_priority_change(ticket=ticket, priority="urgent", actor=Actor.agent(manager))

    with pytest.raises(TicketConflict) as refused:
        ticket_respond(
            ticket=ticket,
            author=agent,
            actor=Actor.agent(agent),
            draft=AgentDraft(kind="reply", text="Lowering this."),
            changes={"priority": "low", "status": "open"},
            originals={"priority": "normal", "status": "new"},
            version=1,
        )

    conflict = refused.value
    assert conflict.status_code == 409
    assert [(c.field, c.current, c.current_label, c.changed_by) for c in conflict.conflicts] == [
        ("priority", "urgent", "Urgent", "Max")
    ]
    assert conflict.message == "Priority was changed to Urgent by Max after you opened this ticket."
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.status, ticket.version) == ("urgent", "new", 2)
    assert not Message.objects.filter(ticket=ticket, kind="public_agent").exists()


def test_an_unchanged_version_means_nothing_changed_since(ticket, agent):
    ticket_respond(
        ticket=ticket,
        author=agent,
        actor=Actor.agent(agent),
        draft=None,
        changes={"priority": "high"},
        originals={"priority": "low"},
        version=1,
    )

    ticket.refresh_from_db()
    assert (ticket.priority, ticket.version) == ("high", 2)
