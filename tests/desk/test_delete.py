"""Deleting a ticket: managers delete and restore; agents no longer see it; reports count it by as_of."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reports.services import report_compute
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import TicketEvent
from servicedesk.tickets.services.tickets import ticket_create, ticket_delete_set
from tests.api.conftest import client_for
from tests.desk.conftest import references
from tests.factories import ticket_make
from tests.reports.test_core_report import dublin  # noqa: F401

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 20, 9, tzinfo=UTC)


def test_a_manager_deletes_a_ticket_and_restores_it(client, manager, agent, queue, customer):
    gone = ticket_make(customer=customer, queue=queue, subject="Duplicate by mistake")
    kept = ticket_make(customer=customer, queue=queue, subject="Invoice")
    client.force_login(manager)
    assert "Delete" in client.get(f"/desk/tickets/{gone.reference}/").content.decode()

    response = client.post(f"/desk/tickets/{gone.reference}/delete/", {"deleted": "1"})
    assert response.status_code == 302 and response["Location"] == "/desk/"
    gone.refresh_from_db()
    assert gone.is_deleted
    event = TicketEvent.objects.get(ticket=gone, kind="deleted")
    assert (event.before, event.after, event.source, event.actor_user) == (False, True, "ui", manager)
    assert references(client.get("/desk/")) == [kept.reference]
    deleted_view = client.get("/desk/?deleted=1").content.decode()
    assert gone.reference in deleted_view and "<h1>Deleted</h1>" in deleted_view
    page = client.get(f"/desk/tickets/{gone.reference}/").content.decode()
    assert "Restore" in page and '<span class="event-after">Deleted</span>' in page

    # The agent of the queue no longer sees it anywhere: page, list, API.
    client.force_login(agent)
    assert client.get(f"/desk/tickets/{gone.reference}/").status_code == 404
    assert references(client.get("/desk/?deleted=1")) == []
    assert client_for(agent).get(f"/api/v1/tickets/{gone.reference}/").status_code == 404

    client.force_login(manager)
    client.post(f"/desk/tickets/{gone.reference}/delete/", {"deleted": "0"})
    gone.refresh_from_db()
    assert not gone.is_deleted
    client.force_login(agent)
    assert client.get(f"/desk/tickets/{gone.reference}/").status_code == 200


def test_agents_may_not_delete(agent_client, agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    assert "delete-form" not in agent_client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert agent_client.post(f"/desk/tickets/{ticket.reference}/delete/", {"deleted": "1"}).status_code == 403
    response = client_for(agent).patch(f"/api/v1/tickets/{ticket.reference}/", {"is_deleted": True}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only managers and admins delete or restore tickets."}
    ticket.refresh_from_db()
    assert not ticket.is_deleted and not TicketEvent.objects.filter(kind="deleted").exists()


def test_a_manager_deletes_through_the_api(manager, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    response = client_for(manager).patch(f"/api/v1/tickets/{ticket.reference}/", {"is_deleted": True}, format="json")
    assert response.status_code == 200 and response.json()["is_deleted"] is True
    assert TicketEvent.objects.filter(ticket=ticket, kind="deleted", source="api").count() == 1


def test_reports_count_a_ticket_by_whether_it_was_deleted_at_as_of(dublin, queue, customer):  # noqa: F811
    actor = Actor.of_customer(customer)
    deleted = ticket_create(customer=customer, subject="A", channel="email", actor=actor, queue=queue, at=T0)
    ticket_delete_set(ticket=deleted, deleted=True, actor=Actor.system(), at=T0 + timedelta(hours=2))
    restored = ticket_create(
        customer=customer, subject="B", channel="email", actor=actor, queue=queue, at=T0, is_deleted=True
    )
    ticket_delete_set(ticket=restored, deleted=False, actor=Actor.system(), at=T0 + timedelta(hours=4))

    def in_scope(as_of: datetime) -> int:
        return report_compute(start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=as_of)["tickets"]["in_scope"]

    assert in_scope(T0 + timedelta(hours=1)) == 1  # A; B deleted then
    assert in_scope(T0 + timedelta(hours=3)) == 0
    assert in_scope(T0 + timedelta(hours=5)) == 1  # B restored
