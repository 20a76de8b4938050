"""core/prepared.py: a query compiled once per connection and run with new values, as the ORM would."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.db.models.sql.compiler import SQLCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.core.prepared import PreparedQuery, row_insert, row_update
from servicedesk.tickets.models import Channel, Identity, Message, MessageKind, Ticket, TicketEvent
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


# --- row_insert / row_update ---------------------------------------------------------------------------------


def _row(instance):  # type: ignore[no-untyped-def]
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def _message(ticket, **extra):  # type: ignore[no-untyped-def]
    return Message(
        ticket=ticket,
        kind=MessageKind.PUBLIC_ENDUSER,
        channel=Channel.CHAT,
        author_customer=ticket.customer,
        text="Hello",
        recipients=["a@example.com"],
        dropped_attachments=[{"name": "x.exe", "reason": "type"}],
        created_at=timezone.now(),
        **extra,
    )


@pytest.fixture
def writes_compiled(monkeypatch):
    """How many times the ORM compiled an INSERT or an UPDATE."""
    calls: list[str] = []
    for compiler in (SQLInsertCompiler, SQLUpdateCompiler):
        original = compiler.as_sql

        def counting(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(compiler, "as_sql", counting)
    return calls


def test_row_insert_stores_what_save_stores_with_one_statement_compiled_once(writes_compiled):
    ticket = ticket_make()
    writes_compiled.clear()
    by_save = _message(ticket, external_id="by-save")
    by_save.save(force_insert=True)
    assert writes_compiled == ["SQLInsertCompiler"]
    writes_compiled.clear()
    with CaptureQueriesContext(connection) as queries:
        rows = [_message(ticket, external_id=f"by-row-{n}") for n in range(3)]
        for row in rows:
            row_insert(row)
    assert len(queries) == 3
    assert all(q["sql"].startswith("INSERT INTO") for q in queries.captured_queries)
    assert writes_compiled == []
    assert len({row.pk for row in rows}) == 3 and all(row.pk > by_save.pk for row in rows)
    assert rows[0]._state.adding is False and rows[0]._state.db == "default"
    stored, saved = Message.objects.get(pk=rows[0].pk), Message.objects.get(pk=by_save.pk)
    differ = {k for k in _row(stored) if _row(stored)[k] != _row(saved)[k]}
    assert differ == {"id", "external_id", "created_at"}
    assert stored.recipients == ["a@example.com"]
    assert stored.dropped_attachments == [{"name": "x.exe", "reason": "type"}]


def test_row_insert_takes_a_related_row_saved_after_it_was_assigned():
    ticket = ticket_make()
    message = _message(ticket)
    event = TicketEvent(ticket=ticket, kind=TicketEvent.Kind.MESSAGE, at=timezone.now(), message=message)
    row_insert(message)
    row_insert(event)
    assert TicketEvent.objects.get(pk=event.pk).message_id == message.pk


def test_row_insert_refuses_an_unsaved_related_row_as_save_does():
    ticket = ticket_make()
    event = TicketEvent(ticket=ticket, kind=TicketEvent.Kind.MESSAGE, at=timezone.now(), message=_message(ticket))
    with pytest.raises(ValueError, match="unsaved related object"):
        row_insert(event)


def test_row_insert_and_update_leave_receivers_their_signals():
    seen: list[tuple[str, bool]] = []

    def receiver(sender, instance, created, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((type(instance).__name__, created))

    post_save.connect(receiver, sender=Message)
    try:
        message = _message(ticket_make())
        row_insert(message)
        message.text = "Changed"
        row_update(message, ["text"])
    finally:
        post_save.disconnect(receiver, sender=Message)
    assert seen == [("Message", True), ("Message", False)]


def test_row_update_saves_only_the_fields_named_and_fails_on_a_gone_row(writes_compiled):
    ticket = ticket_make()
    Ticket.objects.filter(pk=ticket.pk).update(subject="Changed elsewhere")
    writes_compiled.clear()
    ticket.version += 1
    ticket.priority = "high"
    with CaptureQueriesContext(connection) as queries:
        row_update(ticket, ["version", "priority"])
    assert len(queries) == 1 and queries.captured_queries[0]["sql"].startswith("UPDATE")
    assert writes_compiled == []
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.version, stored.priority, stored.subject) == (ticket.version, "high", "Changed elsewhere")
    Ticket.objects.filter(pk=ticket.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        row_update(ticket, ["priority"])


def test_row_update_by_a_foreign_keys_name_or_column_and_an_unknown_name_as_save():
    ticket = ticket_make()
    other = CustomerFactory()
    ticket.customer = other
    row_update(ticket, ["customer"])
    assert Ticket.objects.get(pk=ticket.pk).customer_id == other.pk
    ticket.customer_id = ticket_make().customer_id
    row_update(ticket, ["customer_id"])
    assert Ticket.objects.get(pk=ticket.pk).customer_id == ticket.customer_id
    with pytest.raises(ValueError, match="do not exist"):
        row_update(ticket, ["no_such_field"])


def test_an_expression_goes_through_save_as_before():
    ticket = ticket_make()
    version = ticket.version
    ticket.version = F("version") + 2
    row_update(ticket, ["version"])
    assert Ticket.objects.get(pk=ticket.pk).version == version + 2
