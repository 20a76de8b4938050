"""Opening a ticket shows an agent no more of a customer than they could already see.

A customer known only to the billing queue (name, phone, organization, a
billing ticket): an agent of support opens a ticket for their email address.
The ticket belongs to that customer (one customer per identity), but on every
path the support agent sees only the address they typed: the API's answer and
later reads, the ticket page, the inbox, the customer page and every search.
Once the customer writes on the ticket, support knows them like any customer
who wrote in.
"""

from __future__ import annotations

import pytest
from django.test import Client

from servicedesk.tickets import access
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Customer, Identity, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.opening import ticket_open_for_agent
from tests.api.conftest import client_for
from tests.factories import CustomerFactory, OrganizationFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

NAME, PHONE, ORGANIZATION = "Hedda Hidden", "+4930123456", "Secret Holdings"


@pytest.fixture
def hidden(db):
    customer = CustomerFactory(name=NAME, email="hedda@example.com")
    customer.organization = OrganizationFactory(name=ORGANIZATION)
    customer.save(update_fields=["organization"])
    Identity.objects.create(customer=customer, kind="phone", value=PHONE)
    ticket_make(customer=customer, queue=QueueFactory(slug="billing"), subject="Invoice question")
    return customer


def open_by_api(agent, **fields) -> dict:
    response = client_for(agent).post(
        "/api/v1/tickets/",
        {"customer_email": "Hedda@Example.com", "subject": "Printer", "text": "Call me back.", **fields},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def desk_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("initiator", ["inbound", "outbound"])
def test_the_answer_shows_only_the_address_typed(agent, hidden, initiator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = open_by_api(agent, initiator=initiator)

    ticket = Ticket.objects.get(reference=body["reference"])
    assert ticket.customer_id == hidden.pk
    assert Customer.objects.count() == 1
    assert body["customer"] == {
        "id": hidden.pk,
        "name": "",
        "identities": [{"kind": "email", "value": "hedda@example.com"}],
    }
    # The agent opened it: that is what keeps the customer's record from them.
    assert TicketEvent.objects.get(ticket=ticket, kind="created").actor_user_id == agent.pk


def test_later_api_reads_show_a_stand_in(agent, hidden):
    reference = open_by_api(agent)["reference"]
    api = client_for(agent)

    detail = api.get(f"/api/v1/tickets/{reference}/").json()
    assert detail["customer"] == {"id": hidden.pk, "name": "", "identities": []}
    listed = api.get("/api/v1/tickets/").json()["results"]
    assert [(item["reference"], item["customer"]) for item in listed] == [(reference, {"id": hidden.pk, "name": ""})]
    messages = api.get(f"/api/v1/tickets/{reference}/messages/").json()["results"]
    assert [m["author"] for m in messages] == [{"type": "customer", "id": hidden.pk, "name": f"#{hidden.pk}"}]
    assert api.get(f"/api/v1/customers/{hidden.pk}/").status_code == 404
    assert api.get("/api/v1/customers/").json()["results"] == []
    assert api.get("/api/v1/customers/", {"search": "Hedda"}).json()["results"] == []
    assert api.get("/api/v1/tickets/", {"search": "Hedda"}).json()["results"] == []
    assert api.get("/api/v1/tickets/", {"search": PHONE}).json()["results"] == []


def test_the_workspace_shows_no_name_phone_or_organization(agent, hidden):
    reference = open_by_api(agent)["reference"]
    desk = desk_client(agent)

    page = desk.get(f"/desk/tickets/{reference}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert reference in html
    for secret in (NAME, "Hedda Hidden", PHONE, ORGANIZATION, "Invoice question"):
        assert secret not in html
    inbox = desk.get("/desk/").content.decode()
    assert reference in inbox and NAME not in inbox
    assert reference not in desk.get("/desk/", {"q": "Hedda"}).content.decode()
    assert desk.get(f"/desk/customers/{hidden.pk}/").status_code == 404


def test_a_manager_still_sees_the_whole_customer(agent, manager, hidden):
    reference = open_by_api(agent)["reference"]
    detail = client_for(manager).get(f"/api/v1/tickets/{reference}/").json()
    assert detail["customer"]["name"] == NAME
    assert sorted(i["value"] for i in detail["customer"]["identities"]) == [PHONE, "hedda@example.com"]
    assert NAME in desk_client(manager).get(f"/desk/tickets/{reference}/").content.decode()


def test_once_the_customer_writes_on_the_ticket_the_queue_knows_them(agent, hidden):
    reference = open_by_api(agent)["reference"]
    inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<reply-1@example.com>",
            sender=SenderIdentity(kind="email", value="hedda@example.com", name=NAME),
            text="Thanks, I am at my desk.",
            ticket_reference=reference,
            reference_trusted=True,
        )
    )
    api = client_for(agent)
    assert api.get(f"/api/v1/tickets/{reference}/").json()["customer"]["name"] == NAME
    assert api.get(f"/api/v1/customers/{hidden.pk}/").status_code == 200
    assert NAME in desk_client(agent).get(f"/desk/customers/{hidden.pk}/").content.decode()


def test_a_customer_the_agent_creates_is_theirs_to_see(agent):
    opening = ticket_open_for_agent(
        agent=agent, customer_email="new@example.com", customer_name="Nina New", subject="S", text="T"
    )
    assert list(access.customers_visible_to(agent).values_list("name", flat=True)) == ["Nina New"]
    assert opening.created is True


def test_a_customer_who_wrote_to_the_queue_is_seen(agent, customer, queue):
    ticket_make(customer=customer, queue=queue)
    assert list(access.customers_visible_to(agent)) == [customer]


def test_no_acknowledgement_names_the_customer_to_the_agent(agent, hidden, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        reference = open_by_api(agent, acknowledge=True)["reference"]
    assert not Message.objects.filter(ticket__reference=reference, purpose="acknowledgement").exists()
    messages = client_for(agent).get(f"/api/v1/tickets/{reference}/messages/").json()["results"]
    assert [m["text"] for m in messages] == ["Call me back."]


def test_the_workspace_links_nowhere_for_a_stand_in(agent, manager, hidden):
    """The customer page answers 404 to this agent: no link leads there, and no history of the customer is shown."""
    first = open_by_api(agent)["reference"]
    second = open_by_api(agent, subject="Scanner")["reference"]
    customer_page = f'href="/desk/customers/{hidden.pk}/"'
    desk = desk_client(agent)

    html = desk.get(f"/desk/tickets/{first}/").content.decode()
    assert customer_page not in html
    assert f'<p class="customer-name customer-concealed">#{hidden.pk}</p>' in html
    assert "Other tickets" not in html and second not in html
    inbox = desk.get("/desk/").content.decode()
    assert customer_page not in inbox
    assert inbox.count(f'<span class="customer-concealed">#{hidden.pk}</span>') == 2
    # Whoever may open the customer page still has the link and the history.
    html = desk_client(manager).get(f"/desk/tickets/{first}/").content.decode()
    assert f'<a href="/desk/customers/{hidden.pk}/">{NAME}</a>' in html
    assert f'<li data-reference="{second}">' in html


def test_sorting_by_customer_treats_a_stand_in_as_nameless(agent, manager, hidden, queue):
    """By the hidden name, Hedda would sort between Anna and Zoe; as a stand-in she has no name, so she comes first."""
    anna = ticket_make(customer=CustomerFactory(name="Anna Able"), queue=queue).reference
    zoe = ticket_make(customer=CustomerFactory(name="Zoe Zed"), queue=queue).reference
    hedda = open_by_api(agent)["reference"]
    api = client_for(agent)

    def desk_order(user, sort: str) -> list[str]:
        import re

        html = desk_client(user).get("/desk/", {"sort": sort}).content.decode()
        return re.findall(r'<tr class="ticket-row" data-reference="([^"]+)"', html)

    def api_order(client, sort: str) -> list[str]:
        return [item["reference"] for item in client.get("/api/v1/tickets/", {"sort": sort}).json()["results"]]

    assert desk_order(agent, "customer") == api_order(api, "customer") == [hedda, anna, zoe]
    assert desk_order(agent, "-customer") == api_order(api, "-customer") == [zoe, anna, hedda]
    by_ordering = api.get("/api/v1/tickets/", {"ordering": "customer"}).json()["results"]
    assert [item["reference"] for item in by_ordering] == [hedda, anna, zoe]
    # A manager sees the customer, and her billing ticket too, under her name.
    invoice = Ticket.objects.get(subject="Invoice question").reference
    expected = [anna, invoice, hedda, zoe]
    assert desk_order(manager, "customer") == api_order(client_for(manager), "customer") == expected


def test_the_assignee_is_not_told_the_hidden_name(agent, hidden):
    """The notice of a customer's message names its author as the assignee sees them: the stand-in."""
    from servicedesk.notifications.services import customer_message_notify
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.services.tickets import ticket_assign

    reference = open_by_api(agent)["reference"]
    ticket = Ticket.objects.get(reference=reference)
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(agent))
    message = Message.objects.get(ticket=ticket, author_customer=hidden)

    notice = customer_message_notify(message_id=message.pk)

    assert notice is not None
    assert notice.title == f"[{reference}] New message from #{hidden.pk}"


def test_the_timeline_names_a_customer_who_acted_as_the_thread_does(agent, manager, hidden, queue):
    """Sam wrote to support; merged into a customer support may see, Sam's own record is no
    longer one of theirs: the thread and the history both show the stand-in."""
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.services.customers import customer_merge

    sam = CustomerFactory(name="Sam Source", email="sam@example.com")
    inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<sam-1@example.com>",
            sender=SenderIdentity(kind="email", value="sam@example.com", name="Sam Source"),
            subject="Router",
            text="It blinks.",
            queue=queue.slug,
            acknowledge=False,  # its greeting would name Sam in the text of the thread
        )
    )
    customer_merge(source=sam, target=hidden, actor=Actor.system())
    ticket = Ticket.objects.get(subject="Router")
    assert (ticket.customer_id, ticket.queue_id) == (hidden.pk, queue.pk)

    html = desk_client(agent).get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert "Sam Source" not in html
    assert f'<span class="event-actor">#{sam.pk}</span>' in html
    assert f"<strong>#{sam.pk}</strong>" in html
    assert (
        '<span class="event-actor">Sam Source</span>'
        in desk_client(manager).get(f"/desk/tickets/{ticket.reference}/").content.decode()
    )
