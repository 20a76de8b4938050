"""Subjects and names lose bidirectional overrides and control characters at the service layer,
as file names do, whichever path they come by (API, intake, importer, agent edits)."""

from __future__ import annotations

import pytest

from servicedesk.core.text import clean_line
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.services.customers import customer_resolve, organization_get_or_create
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_subject_change
from tests.api.conftest import client_for
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db

OVERRIDES = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("char", OVERRIDES)
def test_clean_line_removes_each_override(char):
    assert clean_line(f"invoice{char}fdp.exe\x00\n x") == "invoicefdp.exe x"


def test_ticket_subjects_are_cleaned_when_created_and_changed(queue, customer):
    ticket = ticket_make(customer=customer, queue=queue, subject="Refund \u202egnp.exe")
    assert ticket.subject == "Refund gnp.exe"

    changed = ticket_subject_change(ticket=ticket, subject="\u2067Paid\u2069 twice", actor=Actor.system())

    assert changed.subject == "Paid twice"
    ticket.refresh_from_db()
    assert ticket.subject == "Paid twice"


def test_customer_and_organization_names_are_cleaned():
    customer, created = customer_resolve(kind="email", value="eve@example.com", name="Eve \u202eynnahS")
    organization = organization_get_or_create(name="\u202dACME\u202c Ltd")

    assert (created, customer.name, organization.name) == (True, "Eve ynnahS", "ACME Ltd")


def test_intake_cleans_the_subject_and_the_sender_name(queue):
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id="bidi-1",
            sender=SenderIdentity(kind="email", value="mallory@example.com", name="Mal\u202elory"),
            subject="Order \u2066#42\u2069",
            text="Hello",
        )
    )

    assert (result.ticket.subject, result.customer.name) == ("Order #42", "Mallory")


def test_the_api_stores_a_clean_subject_and_name(agent, queue):
    response = client_for(agent).post(
        "/api/v1/tickets/",
        {
            "customer_email": "zed@example.com",
            "customer_name": "Zed \u202eyraM",
            "subject": "Invoice \u202efdp.exe",
            "text": "Hi",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert (response.json()["subject"], response.json()["customer"]["name"]) == ("Invoice fdp.exe", "Zed yraM")
