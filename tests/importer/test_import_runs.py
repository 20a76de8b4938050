"""Re-runs, bad records, strict mode, stdin, and the batch/retry machinery."""

import io
import re
import sys

import pytest
from django.core.management.base import CommandError

from servicedesk.accounts.models import User
from servicedesk.tickets.importer import HistoryImporter
from servicedesk.tickets.models import (
    Customer,
    Identity,
    Message,
    Organization,
    Queue,
    Rating,
    Ticket,
    TicketEvent,
    Topic,
)
from tests.importer.conftest import FIXTURES

pytestmark = pytest.mark.django_db

AGENT = '{"kind":"agent","id":"a1","email":"ann@corp.example","name":"Ann","role":"agent"}'
CUSTOMER = '{"kind":"customer","id":"alice","name":"Alice","emails":["alice@example.com"]}'
TICKET = '{"kind":"ticket","id":"T1","at":"2025-10-24T15:30:00Z","channel":"email","customer":"alice","subject":"Hi"}'


def counts() -> dict[str, int]:
    models = (User, Customer, Identity, Organization, Queue, Topic, Ticket, Message, TicketEvent, Rating)
    return {model.__name__: model.objects.count() for model in models}


def test_second_import_changes_nothing(import_history):
    path = str(FIXTURES / "history.jsonl")
    import_history(path)
    first = counts()
    tickets = list(Ticket.objects.order_by("pk").values())
    second = import_history(path)
    assert counts() == first
    assert list(Ticket.objects.order_by("pk").values()) == tickets
    assert second.errors == []
    assert second.summary.startswith("18 records read, 0 applied, 18 skipped as already imported, 0 errors, in ")
    assert first == {
        "User": 2,
        "Customer": 2,
        "Identity": 3,
        "Organization": 1,
        "Queue": 2,
        "Topic": 1,
        "Ticket": 3,
        "Message": 5,
        "TicketEvent": 19,
        "Rating": 1,
    }


def test_status_records_rerun_after_later_history(import_history, history_file):
    # The second status is a no-op when first applied (already open); a re-run must not
    # move the ticket back to it after the later change to pending.
    path = history_file(
        CUSTOMER,
        TICKET,
        '{"kind":"status","ticket":"T1","at":"2025-10-24T16:00:00Z","status":"open"}',
        '{"kind":"status","ticket":"T1","at":"2025-10-24T16:30:00Z","status":"open"}',
        '{"kind":"status","ticket":"T1","at":"2025-10-24T17:00:00Z","status":"pending"}',
    )
    import_history(path)
    again = import_history(path)
    assert again.summary.startswith("5 records read, 0 applied, 5 skipped as already imported, 0 errors")
    ticket = Ticket.objects.get()
    assert ticket.status == "pending"
    assert list(TicketEvent.objects.filter(kind="status").values_list("before", "after")) == [
        ("new", "open"),
        ("open", "pending"),
    ]


BAD_LINES = [
    AGENT,
    CUSTOMER,
    '{"kind":"ticket","id":"T0","at":"2025-10-24T15:30:00Z","channel":"email","customer":"alice","subject":"x","colour":"red"}',
    TICKET,
    '{"kind":"message","id":"m1","ticket":"T1","at":"2025-10-24T15:30:00","author":"alice","type":"public_enduser","body":"Hi"}',
    '{"kind":"message","id":"m2","ticket":"T9","at":"2025-10-24T15:30:00Z","author":"alice","type":"public_enduser","body":"Hi"}',
    '{"kind":"ticket","id":"T2","at":"2025-10-24T15:30:00Z","channel":"fax","customer":"alice","subject":"x"}',
    '{"kind":"message","id":"m3","ticket":"T1",',
    '{"kind":"message","id":"m4","ticket":"T1","at":"2025-10-24T16:00:00Z","author":"a1","type":"public_agent","body":"Done","status":"solved"}',
    '{"kind":"status","ticket":"T1","at":"2025-10-24T17:00:00Z","status":"new"}',
    '{"kind":"presence","agent":"a1","at":"2025-10-24T17:00:00Z","state":"away"}',
    '{"kind":"rating","ticket":"T1","at":"2025-10-24T18:00:00Z","score":4}',
]


def test_bad_records_command_exit(history_file):
    from django.core.management import call_command

    path = history_file(*BAD_LINES)
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"^7 records could not be imported \(see above\)\.$"):
        call_command("import_history", path, stdout=stdout, stderr=stderr)
    assert len(stderr.getvalue().splitlines()) == 7
    assert stdout.getvalue().startswith("12 records read, 5 applied, 0 skipped as already imported, 7 errors, in ")


def test_bad_records_messages(history_file):
    path = history_file(*BAD_LINES)
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr)
    with open(path, "rb") as handle:
        assert importer.import_lines(path, handle) is True
    assert stderr.getvalue().splitlines() == [
        f"{path}:3: unknown key 'colour' for kind 'ticket'",
        f"{path}:5: 'at' has no UTC offset: '2025-10-24T15:30:00'",
        f"{path}:6: unknown ticket 'T9' in 'ticket'",
        f"{path}:7: 'channel' must be one of email, web, chat, forum, phone; got 'fax'",
        f"{path}:8: invalid JSON: Expecting property name enclosed in double quotes (column 43)",
        f"{path}:10: A ticket cannot go from Solved to New.",
        f"{path}:11: 'state' must be one of ready, not_ready, offline; got 'away'",
    ]
    stats = importer.stats
    assert (stats.read, stats.applied, stats.skipped, stats.errors) == (12, 5, 0, 7)
    assert list(Ticket.objects.values_list("external_id", "status")) == [("T1", "solved")]
    assert list(Message.objects.values_list("external_id", flat=True)) == ["import:m4"]
    assert list(Rating.objects.values_list("score", flat=True)) == [4]
    assert list(TicketEvent.objects.filter(kind="status").values_list("before", "after")) == [("new", "solved")]


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_refused_write_rolls_back_only_that_record(history_file, batch_size):
    path = history_file(*BAD_LINES)
    importer = HistoryImporter(stderr=io.StringIO(), batch_size=batch_size, cache_size=2)
    with open(path, "rb") as handle:
        importer.import_lines(path, handle)
    assert (importer.stats.applied, importer.stats.errors) == (5, 7)
    assert counts() == {
        "User": 1,
        "Customer": 1,
        "Identity": 1,
        "Organization": 0,
        "Queue": 1,
        "Topic": 0,
        "Ticket": 1,
        "Message": 1,
        "TicketEvent": 4,
        "Rating": 1,
    }


def test_strict_writes_nothing_of_the_file(import_history, history_file):
    good = history_file(AGENT, name="good.jsonl")
    bad = history_file(
        CUSTOMER, TICKET, '{"kind":"ticket","id":"T2"}', CUSTOMER.replace("alice", "bob"), name="bad.jsonl"
    )
    stderr = io.StringIO()
    with pytest.raises(
        CommandError, match=re.escape(f"Stopped at the first error in {bad}; nothing of that file was written.")
    ):
        from django.core.management import call_command

        call_command("import_history", good, bad, "--strict", stdout=io.StringIO(), stderr=stderr)
    assert stderr.getvalue() == f"{bad}:3: missing keys 'at', 'channel', 'customer', 'subject' for kind 'ticket'\n"
    assert list(User.objects.values_list("external_id", flat=True)) == ["a1"]
    assert Customer.objects.count() == 0
    assert Ticket.objects.count() == 0
    assert TicketEvent.objects.count() == 0


def test_strict_write_error_rolls_back_the_file(import_history, history_file):
    path = history_file(
        CUSTOMER,
        TICKET,
        '{"kind":"status","ticket":"T1","at":"2025-10-24T16:00:00Z","status":"closed"}',
        '{"kind":"status","ticket":"T1","at":"2025-10-24T16:10:00Z","status":"pending"}',
    )
    with pytest.raises(CommandError):
        import_history(path, "--strict")
    assert counts()["Ticket"] == 0
    assert counts()["Customer"] == 0


def test_stdin(import_history, monkeypatch):
    data = (FIXTURES / "history.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    run = import_history("-")
    assert run.summary.startswith("18 records read, 18 applied, 0 skipped as already imported, 0 errors")
    assert Ticket.objects.count() == 3


def test_stdin_errors_name_stdin(history_file, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'\n{"kind":"cost"}\n'), encoding="utf-8"))
    from django.core.management import call_command

    stderr = io.StringIO()
    with pytest.raises(CommandError, match=r"^1 record could not be imported \(see above\)\.$"):
        call_command("import_history", "-", stdout=io.StringIO(), stderr=stderr)
    assert (
        stderr.getvalue()
        == "<stdin>:2: missing keys 'period_start', 'period_end', 'amount', 'currency' for kind 'cost'\n"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("session", "missing keys 'channel', 'customer', 'requested_at' for kind 'session'"),
        ("presence", "unknown key 'id' for kind 'presence'"),
        ("cost", "unknown key 'id' for kind 'cost'"),
    ],
)
def test_live_kinds_are_validated(history_file, kind, reason):
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr)
    importer.import_lines("f.jsonl", [f'{{"kind":"{kind}","id":"x"}}'])
    assert stderr.getvalue() == f"f.jsonl:1: {reason}\n"
    assert importer.stats.errors == 1


def test_missing_file(import_history):
    with pytest.raises(CommandError, match=r"^/nonexistent\.jsonl: No such file or directory$"):
        import_history("/nonexistent.jsonl")


def test_duplicate_id_in_one_file_is_skipped(import_history, history_file):
    run = import_history(history_file(CUSTOMER, TICKET, TICKET))
    assert run.summary.startswith("3 records read, 2 applied, 1 skipped as already imported, 0 errors")
    assert Ticket.objects.count() == 1


def test_identity_taken_by_another_customer(history_file):
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr)
    importer.import_lines("f", [CUSTOMER, CUSTOMER.replace('"alice"', '"alice2"')])
    assert stderr.getvalue() == "f:2: the email 'alice@example.com' already belongs to another customer\n"
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["alice"]
