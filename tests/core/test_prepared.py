"""core/prepared.py: a query compiled once per connection and run with new values, as the ORM would."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.core.prepared import PreparedQuery
from servicedesk.tickets.models import Channel, Identity, Message, MessageKind, Ticket
from tests.factories import CustomerFactory, OrganizationFactory, ticket_make

pytestmark = pytest.mark.django_db(transaction=True)

IDENTITY = PreparedQuery(
    lambda kind, value: (
        Identity.objects.select_related("customer__organization").filter(kind=kind, value=value).order_by("pk")[:1]
    ),
    kind=str,
    value=str,
)


@pytest.fixture
def compiles(monkeypatch):
    """How many times the ORM compiled a SELECT."""
    calls: list[int] = []
    original = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    return calls


def test_first_returns_what_the_orm_returns_with_its_related_rows_in_one_statement():
    organization = OrganizationFactory(name="Acme")
    customer = CustomerFactory(organization=organization, email="ann@example.com")
    expected = Identity.objects.select_related("customer__organization").get(value="ann@example.com")
    with CaptureQueriesContext(connection) as queries:
        found = IDENTITY.first(kind="email", value="ann@example.com")
        assert found is not None
        assert found.customer.organization is not None
        organization_name = found.customer.organization.name
    assert len(queries) == 1
    assert organization_name == "Acme"
    assert found.customer == customer
    assert {f.attname: getattr(found, f.attname) for f in Identity._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in Identity._meta.concrete_fields
    }
    assert found._state.adding is False
    assert found._state.db == "default"


def test_a_missing_related_row_is_none_and_no_row_is_none():
    CustomerFactory(organization=None, email="solo@example.com")
    found = IDENTITY.first(kind="email", value="solo@example.com")
    assert found is not None
    assert found.customer.organization is None
    assert IDENTITY.first(kind="email", value="nobody@example.com") is None


def _customer_message(*, channel: str, external_id: str, **fields: object) -> Message:
    return Message.objects.create(
        ticket=ticket_make(),
        kind=MessageKind.PUBLIC_ENDUSER,
        channel=channel,
        external_id=external_id,
        text="Hello",
        created_at=timezone.now(),
        **fields,
    )


def test_values_are_converted_as_the_orm_converts_them():
    _customer_message(channel="email", external_id="ext-1", recipients=["a@example.com", "b@example.com"])
    by_external_id = PreparedQuery(
        lambda external_id: Message.objects.filter(external_id=external_id).order_by("pk")[:1], external_id=str
    )
    found = by_external_id.first(external_id="ext-1")
    assert found is not None
    assert found.recipients == ["a@example.com", "b@example.com"]
    assert found.created_at == Message.objects.get(external_id="ext-1").created_at
    assert found.created_at.tzinfo is not None


def test_exists():
    _customer_message(channel=Channel.CHAT, external_id="x")
    seen = PreparedQuery(
        lambda channel, external_id: Message.objects.filter(channel=channel, external_id=external_id),
        channel=str,
        external_id=str,
    )
    assert seen.exists(channel="chat", external_id="x") is True
    # A choices member is sent as its value ("chat"), as the ORM sends it.
    assert seen.exists(channel=Channel.CHAT, external_id="x") is True
    assert seen.exists(channel="email", external_id="x") is False
    assert seen.exists(channel="chat", external_id="y") is False


def test_compiled_once_per_connection_and_run_with_each_calls_values(compiles):
    for n in range(3):
        CustomerFactory(email=f"c{n}@example.com")
    query = PreparedQuery(
        lambda kind, value: Identity.objects.filter(kind=kind, value=value).order_by("pk")[:1], kind=str, value=str
    )
    compiles.clear()
    found = [query.first(kind="email", value=f"c{n}@example.com") for n in range(3)]
    assert [identity.value for identity in found if identity] == [f"c{n}@example.com" for n in range(3)]
    assert len(compiles) == 1


def test_another_thread_compiles_for_its_own_connection(compiles):
    CustomerFactory(email="t@example.com")
    query = PreparedQuery(
        lambda value: Identity.objects.filter(value=value).order_by("pk")[:1],
        value=str,
    )
    assert query.first(value="t@example.com") is not None
    compiles.clear()
    answers: list[object] = []

    def other() -> None:
        try:
            answers.append(query.first(value="t@example.com"))
        finally:
            connection.close()

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert answers and answers[0] is not None
    assert len(compiles) == 1


def test_integer_parameters():
    ticket = ticket_make()
    by_id = PreparedQuery(lambda pk: Ticket.objects.filter(pk=pk).order_by("pk")[:1], pk=int)
    found = by_id.first(pk=ticket.pk)
    assert found is not None
    assert found.reference == ticket.reference
    assert by_id.first(pk=ticket.pk + 1000) is None


def test_a_parameter_the_orm_changes_is_refused_when_compiled():
    contains = PreparedQuery(lambda value: Identity.objects.filter(value__contains=value)[:1], value=str)
    with pytest.raises(ValueError, match="do not reach the SQL unchanged"):
        contains.first(value="example")


def test_only_str_and_int_parameters_and_exactly_the_named_ones():
    with pytest.raises(TypeError):
        PreparedQuery(lambda at: Message.objects.filter(created_at=at), at=float)
    with pytest.raises(TypeError):
        IDENTITY.first(kind="email")
    with pytest.raises(TypeError, match="takes a str"):
        IDENTITY.first(kind="email", value=None)  # type: ignore[arg-type]
    by_id = PreparedQuery(lambda pk: Ticket.objects.filter(pk=pk).order_by("pk")[:1], pk=int)
    with pytest.raises(TypeError, match="takes a int"):
        by_id.first(pk=True)
    with pytest.raises(TypeError, match="takes a int"):
        by_id.first(pk="1")


def test_a_locking_query_needs_a_transaction_as_in_the_orm():
    ticket = ticket_make()
    lock = PreparedQuery(
        lambda reference: Ticket.objects.filter(reference=reference).select_for_update().order_by("pk")[:1],
        reference=str,
    )
    with pytest.raises(TransactionManagementError):
        lock.first(reference=ticket.reference)
    with transaction.atomic():
        locked = lock.first(reference=ticket.reference)
    assert locked == ticket
