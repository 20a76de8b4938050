"""Rules every list page and desk section follows (docs/conventions.md): a page past the last, or not a
number, is 404 on every paginated page and in the API; an agent without the role for a section gets 403;
the customer page dates the customer from their first contact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.api.conftest import client_for
from tests.factories import CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(queue, customer):
    return ticket_make(customer=customer, queue=queue, subject="Only one")


@pytest.mark.parametrize(
    "path",
    ["/desk/", "/desk/customers/{customer}/", "/desk/quarantine/", "/desk/notifications/"],
)
@pytest.mark.parametrize("page", ["999", "0", "abc", "1.5"])
def test_a_page_that_does_not_exist_is_404_on_every_desk_list(client, manager, customer, listed, path, page):
    client.force_login(manager)

    response = client.get(path.format(customer=customer.pk), {"page": page})

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/desk/", "/desk/customers/{customer}/", "/desk/quarantine/", "/desk/notifications/"])
def test_the_first_page_exists_even_when_empty(client, manager, customer, listed, path):
    client.force_login(manager)

    assert client.get(path.format(customer=customer.pk), {"page": "1"}).status_code == 200
    assert client.get("/desk/", {"page": "1", "status": "closed"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/tickets/", "/api/v1/customers/", "/api/v1/reports/"])
def test_the_api_follows_the_same_rule(manager, listed, path):
    response = client_for(manager).get(path, {"page": "999"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


@pytest.mark.parametrize("path", ["/desk/reports/", "/desk/quarantine/"])
def test_an_agent_without_the_manager_role_gets_access_denied_on_every_manager_section(client, agent, path):
    client.force_login(agent)

    response = client.get(path)

    assert response.status_code == 403
    assert "<h1>Access denied</h1>" in response.content.decode()


def test_an_agent_still_gets_not_found_for_a_ticket_they_cannot_see(client, agent):
    hidden = ticket_make(customer=CustomerFactory(), queue=QueueFactory(slug="billing"), subject="Elsewhere")
    client.force_login(agent)

    assert client.get(f"/desk/tickets/{hidden.reference}/").status_code == 404


def test_customer_since_is_the_first_contact_not_the_record_creation(client, manager, queue):
    # An import creates the record today with history from years ago.
    customer = CustomerFactory(name="Old Friend", email="old@example.com")
    ticket_make(customer=customer, queue=queue, subject="From 2019", at=datetime(2019, 5, 4, 10, 0, tzinfo=UTC))
    client.force_login(manager)

    page = client.get(f"/desk/customers/{customer.pk}/").content.decode()

    assert "Customer since</dt><dd>2019-05-04</dd>" in page


def test_customer_since_counts_the_earliest_message_and_merged_records(client, manager, queue):
    customer = CustomerFactory(name="Kept", email="kept@example.com")
    inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="old-mail",
            sender=SenderIdentity(kind="email", value="kept@example.com", name="Kept"),
            subject="Old mail",
            text="Hello",
            received_at=datetime(2018, 1, 2, 8, 0, tzinfo=UTC),
        )
    )
    older = CustomerFactory(name="Merged away", email="merged@example.com")
    ticket_make(customer=older, queue=queue, subject="Older still", at=datetime(2017, 3, 1, 0, 0, tzinfo=UTC))
    older.merged_into = customer
    older.save(update_fields=["merged_into"])
    client.force_login(manager)

    page = client.get(f"/desk/customers/{customer.pk}/").content.decode()

    assert "Customer since</dt><dd>2017-03-01</dd>" in page


@pytest.mark.parametrize("value", ["1.5", "abc", "-2", "9" * 30])
def test_the_inbox_refuses_a_customer_filter_that_is_not_an_id(client, manager, listed, value):
    client.force_login(manager)

    response = client.get("/desk/", {"customer": value})

    assert response.status_code == 400
    assert "Customer: give the customer&#x27;s id, a whole number." in response.content.decode()


def test_the_inbox_filters_by_a_whole_customer_id(client, manager, customer, listed):
    client.force_login(manager)

    response = client.get("/desk/", {"customer": str(customer.pk)})

    assert response.status_code == 200
    assert [t.reference for t in response.context["page"].object_list] == [listed.reference]
