import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.replies import ticket_note_create
from tests.desk.conftest import references
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets(queue, billing, billing_agent, customer):
    """One ticket in Support (Ann's queue) and one in Billing, each with an attachment."""
    support = ticket_make(customer=customer, queue=queue, subject="Support case")
    other = CustomerFactory(name="Dora Billing", email="dora@example.com")
    billing_ticket = ticket_make(customer=other, queue=billing, subject="Billing case")
    keys = {}
    for ticket in (support, billing_ticket):
        note = ticket_note_create(
            ticket=ticket,
            author=billing_agent,
            text="Log attached.",
            actor=Actor.agent(billing_agent),
            attachments=[InboundAttachment(filename="log.txt", content_type="text/plain", content=b"log")],
        )
        keys[ticket.pk] = note.attachments.get().key
    return {"support": support, "billing": billing_ticket, "keys": keys, "dora": other}


def desk_urls(ticket: Ticket, key: str, customer_id: int) -> dict[str, tuple[str, str]]:
    return {
        "page": ("get", f"/desk/tickets/{ticket.reference}/"),
        "reply": ("post", f"/desk/tickets/{ticket.reference}/reply/"),
        "update": ("post", f"/desk/tickets/{ticket.reference}/update/"),
        "spam": ("post", f"/desk/tickets/{ticket.reference}/spam/"),
        "delete": ("post", f"/desk/tickets/{ticket.reference}/delete/"),
        "attachment": ("get", f"/desk/attachments/{key}/"),
        "customer": ("get", f"/desk/customers/{customer_id}/"),
    }


@pytest.mark.parametrize("name", ["page", "reply", "update", "spam", "delete", "attachment", "customer"])
def test_agent_gets_not_found_for_another_queue(agent_client, tickets, name):
    billing_ticket = tickets["billing"]
    method, url = desk_urls(billing_ticket, tickets["keys"][billing_ticket.pk], tickets["dora"].pk)[name]
    events_before = TicketEvent.objects.filter(ticket=billing_ticket).count()
    data = (
        {"text": "Hello", "kind": "reply", "status": "solved", "priority": "urgent", "spam": "1", "deleted": "1"}
        if method == "post"
        else None
    )

    response = getattr(agent_client, method)(url, data)

    assert response.status_code == 404
    billing_ticket.refresh_from_db()
    assert (billing_ticket.status, billing_ticket.priority, billing_ticket.is_spam) == ("new", "normal", False)
    assert TicketEvent.objects.filter(ticket=billing_ticket).count() == events_before
    assert Message.objects.filter(ticket=billing_ticket).count() == 1


def test_agent_never_sees_another_queue_in_lists(agent_client, tickets):
    assert references(agent_client.get("/desk/")) == [tickets["support"].reference]
    assert references(agent_client.get("/desk/", {"q": tickets["billing"].reference})) == []
    assert references(agent_client.get("/desk/", {"queue": "billing"})) == []


@pytest.mark.parametrize("which", ["support", "billing"])
def test_manager_sees_both_queues(manager_client, tickets, which):
    ticket = tickets[which]
    customer_id = ticket.customer_id

    assert manager_client.get(f"/desk/tickets/{ticket.reference}/").status_code == 200
    assert manager_client.get(f"/desk/attachments/{tickets['keys'][ticket.pk]}/").status_code == 200
    assert manager_client.get(f"/desk/customers/{customer_id}/").status_code == 200
    assert ticket.reference in manager_client.get("/desk/").content.decode()


def test_manager_can_update_a_ticket_in_any_queue(manager_client, manager, tickets):
    ticket = tickets["billing"]

    response = manager_client.post(f"/desk/tickets/{ticket.reference}/update/", {"assignee": manager.pk})

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.assignee_id == manager.pk


def test_unknown_ticket_and_attachment_are_not_found(agent_client, tickets):
    assert agent_client.get("/desk/tickets/SD-999999/").status_code == 404
    assert agent_client.get("/desk/attachments/no-such-key/").status_code == 404
    assert agent_client.get("/desk/customers/999999/").status_code == 404


def test_reply_and_update_refuse_get(agent_client, tickets):
    reference = tickets["support"].reference

    assert agent_client.get(f"/desk/tickets/{reference}/reply/").status_code == 405
    assert agent_client.get(f"/desk/tickets/{reference}/update/").status_code == 405
    assert agent_client.get(f"/desk/tickets/{reference}/spam/").status_code == 405
    assert agent_client.get(f"/desk/tickets/{reference}/delete/").status_code == 405
