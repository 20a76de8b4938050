"""Email identities in one canonical form: an internationalised address is one identity whether
its domain is written as A-labels (xn--) or U-labels, and an address that is none is refused
before anything is written."""

from __future__ import annotations

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Customer, Identity, Message, Ticket
from servicedesk.tickets.services.customers import (
    InvalidIdentity,
    customer_find_by_identity,
    customer_identity_add,
    customer_resolve,
    identity_normalize,
)
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_identity_normalize_keeps_the_lower_case_rule_for_every_address():
    assert identity_normalize(kind="email", value=" Alice@Example.COM ") == "alice@example.com"
    assert identity_normalize(kind="email", value="JOSÉ@XN--BCHER-KVA.example") == "josé@bücher.example"


def test_a_label_and_u_label_domains_are_the_same_customer():
    first, created_first = customer_resolve(kind="email", value="user@xn--bcher-kva.example", name="Uwe")
    second, created_second = customer_resolve(kind="email", value="User@Bücher.example")

    assert (created_first, created_second) == (True, False)
    assert second.pk == first.pk
    assert list(Identity.objects.values_list("customer_id", "kind", "value")) == [
        (first.pk, "email", "user@bücher.example")
    ]
    assert customer_find_by_identity(kind="email", value="USER@XN--BCHER-KVA.EXAMPLE") == first


def test_adding_the_other_form_of_an_address_finds_the_identity_it_has():
    customer = CustomerFactory(name="José", email="josé@bücher.example")
    identity = customer.identities.get()

    again = customer_identity_add(customer=customer, kind="email", value="JOSÉ@xn--bcher-kva.example")

    assert again.pk == identity.pk
    assert list(customer.identities.values_list("value", flat=True)) == ["josé@bücher.example"]


def test_the_other_form_of_another_customers_address_is_refused():
    CustomerFactory(name="José", email="josé@bücher.example")
    other = CustomerFactory(name="Other", email="other@example.com")

    with pytest.raises(InvalidIdentity) as excinfo:
        customer_identity_add(customer=other, kind="email", value="josé@xn--bcher-kva.example")

    assert excinfo.value.message == "This address belongs to another customer; merge the customers instead."
    assert list(other.identities.values_list("value", flat=True)) == ["other@example.com"]


def test_intake_from_either_form_lands_on_one_customer(queue):
    def contact(external_id: str, address: str) -> Ticket:
        return inbound_message_receive(
            inbound=InboundMessage(
                channel="web",
                external_id=external_id,
                sender=SenderIdentity(kind="email", value=address, name="José Núñez"),
                subject="Pedido",
                text="¿Dónde está mi pedido?",
            )
        ).ticket

    first = contact("w-1", "josé@xn--bcher-kva.example")
    second = contact("w-2", "José@Bücher.example")

    assert first.customer_id == second.customer_id
    assert list(Identity.objects.values_list("value", flat=True)) == ["josé@bücher.example"]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("jo sé@example.com", "The part before the @ contains a space or a character not allowed there."),
        ("josé@bü cher.example", "The domain after the @ is not a valid domain name."),
        ("josé.example.com", "Enter an email address with one @, such as name@example.com."),
    ],
)
def test_intake_refuses_an_address_that_is_none_and_writes_nothing(queue, address, message):
    with pytest.raises(InvalidIdentity) as excinfo:
        inbound_message_receive(
            inbound=InboundMessage(
                channel="web",
                external_id="w-bad",
                sender=SenderIdentity(kind="email", value=address, name="José"),
                subject="Pedido",
                text="Hola",
            )
        )

    assert (excinfo.value.message, excinfo.value.field) == (message, "email")
    assert (Customer.objects.count(), Identity.objects.count(), Ticket.objects.count(), Message.objects.count()) == (
        0,
        0,
        0,
        0,
    )


def test_identities_stored_before_the_canonical_form_are_brought_to_it():
    """The data migration: lookups now normalise, so stored values must be in the canonical form."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("servicedesk.tickets.migrations.0016_email_identities_canonical")
    stored = {
        "a_label": "uwe@xn--bcher-kva.example",
        "decomposed": "jose\u0301@example.com",
        "taken": "ana@xn--bcher-kva.example",  # its canonical form belongs to another customer
        "canonical": "ana@bücher.example",
        "ascii": "alice@example.com",
        "refused": "jo sé@example.com",  # no address by today's rule: kept, it still names its customer
    }
    customers = {key: CustomerFactory(name=key, email=value) for key, value in stored.items()}

    migration.identities_canonical(apps, None)

    assert {key: customers[key].identities.get().value for key in stored} == {
        "a_label": "uwe@bücher.example",
        "decomposed": "josé@example.com",
        "taken": "ana@xn--bcher-kva.example",
        "canonical": "ana@bücher.example",
        "ascii": "alice@example.com",
        "refused": "jo sé@example.com",
    }
    assert customer_find_by_identity(kind="email", value="UWE@Bücher.example") == customers["a_label"]
