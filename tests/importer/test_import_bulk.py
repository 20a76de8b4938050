"""The bulk path: the same rows as the record-by-record path, re-runs, bad records, strict mode."""

import io

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from servicedesk.accounts.models import User
from servicedesk.tickets.ids import ids_allocate
from servicedesk.tickets.importer import HistoryImporter
from servicedesk.tickets.models import (
    Customer,
    Identity,
    ImportedRecord,
    Message,
    Organization,
    Queue,
    Rating,
    Ticket,
    TicketEvent,
    Topic,
)
from servicedesk.tickets.services.tickets import reference_for
from tests.importer.conftest import FIXTURES

pytestmark = pytest.mark.django_db

FILES = ("history.jsonl", "history_paths.jsonl")
MODELS = (User, Customer, Identity, Organization, Queue, Topic, Ticket, Message, TicketEvent, Rating, ImportedRecord)


class _Rollback(Exception):
    pass


def run(
    path: str, *, bulk: bool = True, batch_size: int = 500, strict: bool = False
) -> tuple[HistoryImporter, list[str]]:
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr, bulk=bulk, batch_size=batch_size, strict=strict)
    with open(path, "rb") as handle:
        importer.import_lines(path, handle)
    return importer, stderr.getvalue().splitlines()


def rows() -> dict:
    """Every imported row, with ids replaced by the external ids they stand for."""
    users = dict(User.objects.values_list("pk", "external_id"))
    customers = dict(Customer.objects.values_list("pk", "external_id"))
    tickets = dict(Ticket.objects.values_list("pk", "external_id"))
    by_reference = dict(Ticket.objects.values_list("reference", "external_id"))
    messages = dict(Message.objects.values_list("pk", "external_id"))
    queues = dict(Queue.objects.values_list("pk", "slug"))
    topics = dict(Topic.objects.values_list("pk", "slug"))
    organizations = dict(Organization.objects.values_list("pk", "name"))

    def ticket_row(row: dict) -> dict:
        assert row.pop("reference") == reference_for(row.pop("id"))
        assert len(row.pop("portal_key")) == 32
        # A concurrency counter, not history: the record-by-record path counts each
        # change it makes through the services, the bulk path writes the end state once.
        assert row.pop("version") >= 1
        for key, names in (
            ("customer_id", customers),
            ("assignee_id", users),
            ("merged_into_id", tickets),
            ("same_issue_as_id", tickets),
            ("queue_id", queues),
            ("topic_id", topics),
        ):
            row[key] = names.get(row[key])
        return row

    def event_value(kind: str, value):
        if value is None:
            return None
        if kind == "assignee":
            return users[value]
        if kind == "customer":
            return {"customer": customers[value["customer"]]}
        if kind in ("merged", "merged_in"):
            # {"reference": the other ticket's, and what moved}: the reference compared by ticket.
            return {**value, "reference": by_reference[value["reference"]]}
        return value

    def event_row(row: dict) -> dict:
        row.pop("id")
        row["ticket_id"] = tickets[row["ticket_id"]]
        row["actor_user_id"] = users.get(row["actor_user_id"])
        row["actor_customer_id"] = customers.get(row["actor_customer_id"])
        row["message_id"] = messages.get(row["message_id"])
        row["before"] = event_value(row["kind"], row["before"])
        row["after"] = event_value(row["kind"], row["after"])
        return row

    def message_row(row: dict) -> dict:
        row.pop("id")
        row["ticket_id"] = tickets[row["ticket_id"]]
        row["author_user_id"] = users.get(row["author_user_id"])
        row["author_customer_id"] = customers.get(row["author_customer_id"])
        return row

    def rating_row(row: dict) -> dict:
        row.pop("id")
        pk = row["ticket_id"]
        row["ticket_id"] = tickets[pk]
        row["external_key"] = row["external_key"].replace(f":{pk}:", f":{tickets[pk]}:")
        return row

    return {
        "users": sorted(
            (
                u.external_id,
                u.username,
                u.email,
                u.display_name,
                u.is_active,
                sorted(u.groups.values_list("name", flat=True)),
                sorted(u.queues.values_list("slug", flat=True)),
            )
            for u in User.objects.exclude(external_id=None)
        ),
        "customers": sorted(
            (
                c["external_id"],
                c["name"],
                organizations.get(c["organization_id"]),
                customers.get(c["merged_into_id"]),
                c["language"],
                c["user_id"],
            )
            for c in Customer.objects.values()
        ),
        "organizations": sorted(Organization.objects.values_list("name", "tier")),
        "identities": sorted(
            (customers[c], k, v, b)
            for c, k, v, b in Identity.objects.values_list("customer_id", "kind", "value", "is_bouncing")
        ),
        "queues": sorted(Queue.objects.values_list("slug", "name")),
        "topics": sorted(
            (slug, name, queues.get(queue)) for slug, name, queue in Topic.objects.values_list("slug", "name", "queue")
        ),
        "tickets": [ticket_row(row) for row in Ticket.objects.order_by("pk").values()],
        "messages": [message_row(row) for row in Message.objects.order_by("pk").values()],
        "events": [event_row(row) for row in TicketEvent.objects.order_by("pk").values()],
        "ratings": [rating_row(row) for row in Rating.objects.order_by("pk").values()],
        "ledger": sorted(ImportedRecord.objects.values_list("key", "kind")),
    }


def imported_rows(*, bulk: bool, batch_size: int) -> tuple[dict, list[str]]:
    """Import the fixtures, take the rows, and roll the database back."""
    errors: list[str] = []
    try:
        with transaction.atomic():
            for name in FILES:
                importer, lines = run(str(FIXTURES / name), bulk=bulk, batch_size=batch_size)
                errors += lines
                assert importer.stats.errors == 0
            result = rows()
            raise _Rollback
    except _Rollback:
        pass
    return result, errors


@pytest.mark.parametrize("batch_size", [1, 4, 500])
def test_bulk_rows_equal_record_by_record_rows(batch_size):
    expected, expected_errors = imported_rows(bulk=False, batch_size=500)
    actual, errors = imported_rows(bulk=True, batch_size=batch_size)
    assert errors == expected_errors == []
    for table in expected:
        assert actual[table] == expected[table], table
    # The paths the fixture is meant to cover.
    status_changes = [(e["ticket_id"], e["before"], e["after"]) for e in actual["events"] if e["kind"] == "status"]
    assert ("P1", "solved", "open") in status_changes and ("P1", "closed", "open") in status_changes
    assert ("P1", "solved", "closed") in status_changes and ("P4", "new", "solved") in status_changes
    p1 = next(t for t in actual["tickets"] if t["external_id"] == "P1")
    assert (p1["status"], p1["priority"], p1["assignee_id"]) == ("closed", "urgent", None)
    assert [e["after"] for e in actual["events"] if e["kind"] == "assignee" and e["ticket_id"] == "P1"] == [
        "a1",
        "a2",
        "m1",
        None,
    ]
    assert {m["ticket_id"] for m in actual["messages"]} == {"T1", "T2", "T3", "P1", "P2", "P3", "P4"}
    assert len(actual["ratings"]) == 4


def test_rerun_changes_nothing():
    path = str(FIXTURES / "history_paths.jsonl")
    first, errors = run(path)
    assert errors == [] and first.stats.applied == 37 and first.stats.skipped == 1
    counts = {model.__name__: model.objects.count() for model in MODELS}
    last_ids = {model.__name__: model.objects.order_by("-pk").values_list("pk", flat=True).first() for model in MODELS}
    snapshot = rows()
    again, errors = run(path, batch_size=7)
    assert errors == []
    assert (again.stats.read, again.stats.applied, again.stats.skipped, again.stats.errors) == (38, 0, 38, 0)
    assert {model.__name__: model.objects.count() for model in MODELS} == counts
    assert {
        model.__name__: model.objects.order_by("-pk").values_list("pk", flat=True).first() for model in MODELS
    } == last_ids
    assert rows() == snapshot


def test_record_by_record_rerun_of_a_bulk_import(import_history):
    path = str(FIXTURES / "history_paths.jsonl")
    run(path)
    counts = {model.__name__: model.objects.count() for model in MODELS}
    again, errors = run(path, bulk=False)
    assert errors == [] and (again.stats.applied, again.stats.skipped) == (0, 38)
    assert {model.__name__: model.objects.count() for model in MODELS} == counts


CUSTOMER = '{"kind":"customer","id":"alice","name":"Alice","emails":["alice@example.com"]}'


def ticket(n: int) -> list[str]:
    return [
        f'{{"kind":"ticket","id":"T{n}","at":"2025-10-24T15:30:00Z","channel":"email","customer":"alice","subject":"Hi {n}"}}',
        f'{{"kind":"message","id":"m{n}","ticket":"T{n}","at":"2025-10-24T15:31:00Z","author":"alice","type":"public_enduser","body":"Hi","status":"open"}}',
    ]


def test_database_refusal_mid_batch_skips_only_that_record(history_file):
    lines = [CUSTOMER, *ticket(1), *ticket(2)]
    lines += [
        '{"kind":"rating","ticket":"T1","at":"2025-10-25T09:00:00Z","score":5}',
        # Same ticket and instant, another score: the stored rating's unique key refuses it.
        '{"kind":"rating","ticket":"T1","at":"2025-10-25T09:00:00Z","score":1}',
        '{"kind":"status","ticket":"T2","at":"2025-10-25T10:00:00Z","status":"new"}',
        *ticket(3),
    ]
    path = history_file(*lines)
    importer, errors = run(path)
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:7: conflicts with stored data: ")
    assert errors[1] == f"{path}:8: A ticket cannot go from Open to New."
    assert (importer.stats.applied, importer.stats.errors) == (8, 2)
    assert sorted(Ticket.objects.values_list("external_id", "status")) == [
        ("T1", "open"),
        ("T2", "open"),
        ("T3", "open"),
    ]
    assert list(Rating.objects.values_list("score", flat=True)) == [5]
    assert Message.objects.count() == 3
    assert ImportedRecord.objects.count() == 1


def test_refused_record_mid_batch_is_left_out_whole(history_file):
    path = history_file(
        CUSTOMER,
        *ticket(1),
        '{"kind":"message","id":"bad","ticket":"T1","at":"2025-10-25T09:00:00Z","author":"alice","type":"public_enduser","body":"x","status":"new"}',
        '{"kind":"message","id":"m9","ticket":"T9","at":"2025-10-25T09:00:00Z","author":"alice","type":"public_enduser","body":"x"}',
        *ticket(2),
    )
    _importer, errors = run(path)
    assert errors == [f"{path}:4: A ticket cannot go from Open to New.", f"{path}:5: unknown ticket 'T9' in 'ticket'"]
    assert not Message.objects.filter(external_id="import:bad").exists()
    assert TicketEvent.objects.filter(ticket__external_id="T1").count() == 3
    assert Ticket.objects.count() == 2


def test_strict_writes_nothing_when_the_database_refuses(history_file):
    path = history_file(
        CUSTOMER,
        *ticket(1),
        '{"kind":"rating","ticket":"T1","at":"2025-10-25T09:00:00Z","score":5}',
        '{"kind":"rating","ticket":"T1","at":"2025-10-25T09:00:00Z","score":1}',
    )
    _importer, errors = run(path, strict=True)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:5: conflicts with stored data: ")
    assert {model.__name__: model.objects.count() for model in MODELS if model not in (Queue,)} == {
        "User": 0,
        "Customer": 0,
        "Identity": 0,
        "Organization": 0,
        "Topic": 0,
        "Ticket": 0,
        "Message": 0,
        "TicketEvent": 0,
        "Rating": 0,
        "ImportedRecord": 0,
    }


def test_queries_per_batch_do_not_grow_with_its_records(history_file):
    def queries(count: int, name: str) -> int:
        lines = [CUSTOMER.replace("alice", name)]
        for n in range(count):
            lines += [
                line.replace('"alice"', f'"{name}"').replace('"T', f'"{name}T').replace('"m', f'"{name}m')
                for line in ticket(n)
            ]
        path = history_file(*lines, name=f"{name}.jsonl")
        with CaptureQueriesContext(connection) as captured:
            run(path)
        return len(captured)

    queries(1, "warm")
    # Up to 30 tickets (60 events) each table fits in one INSERT on SQLite too
    # (at most 999 values per statement there).
    assert queries(5, "five") == queries(30, "thirty")


def test_ids_allocate_hands_out_unused_ids():
    with transaction.atomic():
        first = ids_allocate(Ticket, 3)
        assert first == sorted(first) and len(set(first)) == 3
        assert min(first) > (Ticket.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
    assert ids_allocate(Ticket, 0) == []
