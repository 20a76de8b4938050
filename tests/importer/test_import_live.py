"""The live-channel kinds of the history format: session, presence and cost."""

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from servicedesk.tickets.importer import HistoryImporter
from servicedesk.tickets.models import AgentPresence, OperatingCost, Session, Ticket

pytestmark = pytest.mark.django_db

AGENT = '{"kind":"agent","id":"a1","email":"ann@corp.example","name":"Ann","role":"agent"}'
CUSTOMER = '{"kind":"customer","id":"alice","name":"Alice","emails":["alice@example.com"]}'
TICKET = '{"kind":"ticket","id":"T20","at":"2025-10-24T15:30:00Z","channel":"chat","customer":"alice","subject":"Chat"}'
ANSWERED = (
    '{"kind":"session","id":"C1","channel":"chat","customer":"alice","ticket":"T20",'
    '"requested_at":"2025-10-24T15:29:40Z","answered_at":"2025-10-24T15:30:00+00:00","agent":"a1",'
    '"ended_at":"2025-10-24T15:40:00Z","after_work_seconds":60}'
)
ABANDONED = (
    '{"kind":"session","id":"P1","channel":"phone","customer":"alice",'
    '"requested_at":"2025-10-24T16:00:00Z","abandoned_at":"2025-10-24T17:00:04.999+01:00"}'
)
READY = '{"kind":"presence","agent":"a1","at":"2025-10-24T15:00:00Z","state":"ready"}'
OFFLINE = '{"kind":"presence","agent":"a1","at":"2025-10-24T17:00:00Z","state":"offline"}'
COST = '{"kind":"cost","period_start":"2025-10-20","period_end":"2025-11-01","amount":"850.00","currency":"EUR"}'
LINES = [AGENT, CUSTOMER, TICKET, ANSWERED, ABANDONED, READY, OFFLINE, COST]


def run(
    *lines: str, bulk: bool = True, batch_size: int = 500, strict: bool = False
) -> tuple[HistoryImporter, list[str]]:
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr, bulk=bulk, batch_size=batch_size, strict=strict)
    importer.import_lines("live.jsonl", list(lines))
    return importer, stderr.getvalue().splitlines()


def stored() -> dict[str, list]:
    return {
        "sessions": list(
            Session.objects.order_by("external_id").values_list(
                "external_id",
                "channel",
                "customer__external_id",
                "ticket__external_id",
                "agent__external_id",
                "requested_at",
                "answered_at",
                "abandoned_at",
                "ended_at",
                "after_work_seconds",
            )
        ),
        "presence": list(AgentPresence.objects.order_by("at").values_list("agent__external_id", "at", "state")),
        "costs": list(OperatingCost.objects.values_list("period_start", "period_end", "amount", "currency")),
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


EXPECTED = {
    "sessions": [
        (
            "C1",
            "chat",
            "alice",
            "T20",
            "a1",
            at("2025-10-24T15:29:40"),
            at("2025-10-24T15:30:00"),
            None,
            at("2025-10-24T15:40:00"),
            60,
        ),
        # 17:00:04.999 at +01:00 is 16:00:04.999 UTC.
        ("P1", "phone", "alice", None, None, at("2025-10-24T16:00:00"), None, at("2025-10-24T16:00:04.999"), None, 0),
    ],
    "presence": [("a1", at("2025-10-24T15:00:00"), "ready"), ("a1", at("2025-10-24T17:00:00"), "offline")],
    "costs": [(date(2025, 10, 20), date(2025, 11, 1), Decimal("850.00"), "EUR")],
}


@pytest.mark.parametrize(("bulk", "batch_size"), [(True, 500), (True, 2), (False, 500)])
def test_live_kinds_import_and_reimport(bulk, batch_size):
    importer, errors = run(*LINES, bulk=bulk, batch_size=batch_size)
    assert errors == []
    assert (importer.stats.applied, importer.stats.skipped) == (8, 0)
    assert stored() == EXPECTED
    again, errors = run(*LINES, bulk=bulk, batch_size=batch_size)
    assert errors == []
    assert (again.stats.applied, again.stats.skipped) == (0, 8)
    assert stored() == EXPECTED


def test_other_path_reimports_nothing():
    run(*LINES, bulk=False)
    again, _errors = run(*LINES, bulk=True)
    assert (again.stats.applied, again.stats.skipped) == (0, 8)
    assert stored() == EXPECTED


def test_presence_and_cost_take_the_new_value():
    run(*LINES)
    importer, errors = run(
        READY.replace('"ready"', '"not_ready"'),
        COST.replace("850.00", "900.5").replace("EUR", "USD"),
        COST.replace("850.00", "900.50").replace("EUR", "USD"),
        ANSWERED.replace('"after_work_seconds":60', '"after_work_seconds":90'),
    )
    assert errors == []
    # The presence and the first cost change the stored rows; the second cost is the same
    # amount; the session is known by its id and is not rewritten.
    assert (importer.stats.applied, importer.stats.skipped) == (2, 2)
    result = stored()
    assert result["presence"][0] == ("a1", at("2025-10-24T15:00:00"), "not_ready")
    assert result["costs"] == [(date(2025, 10, 20), date(2025, 11, 1), Decimal("900.50"), "USD")]
    assert result["sessions"] == EXPECTED["sessions"]


@pytest.mark.parametrize("bulk", [True, False])
def test_same_presence_instant_twice_in_one_batch_last_wins(bulk):
    importer, errors = run(AGENT, READY, READY.replace('"ready"', '"offline"'), READY, bulk=bulk)
    assert errors == []
    assert importer.stats.applied == 4
    assert stored()["presence"] == [("a1", at("2025-10-24T15:00:00"), "ready")]


@pytest.mark.parametrize("bulk", [True, False])
def test_bad_live_records_are_reported_and_skipped(bulk):
    session = '{"kind":"session","id":"S%d","channel":"chat","customer":"alice","requested_at":"2025-10-24T16:00:00Z"'
    lines = [
        AGENT,
        CUSTOMER,
        TICKET,
        (session % 4) + ',"answered_at":"2025-10-24T16:00:10Z","abandoned_at":"2025-10-24T16:00:10Z"}',
        (session % 5) + ',"abandoned_at":"2025-10-24T16:00:10Z","agent":"a1"}',
        (session % 6) + ',"answered_at":"2025-10-24T16:00:10Z","agent":"a1"}',
        (session % 7) + ',"answered_at":"2025-10-24T16:00:10Z","agent":"a1","ended_at":"2025-10-24T16:00:09Z"}',
        (session % 8) + ',"answered_at":"2025-10-24T15:59:59Z","agent":"a1","ended_at":"2025-10-24T16:09:00Z"}',
        (session % 9) + ',"answered_at":"2025-10-24T16:00:10Z","agent":"b2","ended_at":"2025-10-24T16:09:00Z"}',
        (session % 10) + ',"abandoned_at":"2025-10-24T16:00:10Z","ticket":"T99"}',
        (session % 11) + "}",
        (session % 12).replace('"chat"', '"email"') + ',"abandoned_at":"2025-10-24T16:00:10Z"}',
        (session % 13)
        + ',"answered_at":"2025-10-24T16:00:10Z","agent":"a1","ended_at":"2025-10-24T16:09:00Z","after_work_seconds":-1}',
        (session % 14).replace('"alice"', '"bob"') + ',"abandoned_at":"2025-10-24T16:00:10Z"}',
        '{"kind":"presence","agent":"b2","at":"2025-10-24T15:00:00Z","state":"ready"}',
        '{"kind":"presence","agent":"a1","at":"2025-10-24T15:00:00","state":"ready"}',
        COST.replace('"850.00"', '"850.001"'),
        COST.replace('"850.00"', "850.5"),
        COST.replace('"EUR"', '"eur"'),
        COST.replace('"2025-11-01"', '"2025-10-20"'),
        COST.replace('"2025-11-01"', '"2025-11-31"'),
        (session % 15) + ',"abandoned_at":"2025-10-24T16:00:10Z"}',
    ]
    importer, errors = run(*lines, bulk=bulk)
    assert errors == [
        "live.jsonl:4: a session has 'answered_at' or 'abandoned_at', not both",
        "live.jsonl:5: an abandoned session has no 'agent'",
        "live.jsonl:6: an answered session needs 'ended_at'",
        "live.jsonl:7: 'ended_at' is before 'answered_at'",
        "live.jsonl:8: 'answered_at' is before 'requested_at'",
        "live.jsonl:9: unknown agent 'b2' in 'agent'",
        "live.jsonl:10: unknown ticket 'T99' in 'ticket'",
        "live.jsonl:11: a session needs 'answered_at' (with 'agent' and 'ended_at') or 'abandoned_at'",
        "live.jsonl:12: 'channel' must be one of chat, phone; got 'email'",
        "live.jsonl:13: 'after_work_seconds' must be a whole number of seconds, 0 or more",
        "live.jsonl:14: unknown customer 'bob' in 'customer'",
        "live.jsonl:15: unknown agent 'b2' in 'agent'",
        "live.jsonl:16: 'at' has no UTC offset: '2025-10-24T15:00:00'",
        "live.jsonl:17: 'amount' must be an amount of 0 or more with at most 2 decimals, like \"850.00\"; got '850.001'",
        "live.jsonl:18: 'amount' must be an amount of 0 or more with at most 2 decimals, like \"850.00\"; got 850.5",
        "live.jsonl:19: 'currency' must be a three-letter currency code in capitals, like \"EUR\"; got 'eur'",
        "live.jsonl:20: 'period_end' must be after 'period_start' (the period ends before period_end)",
        "live.jsonl:21: 'period_end' must be a date (YYYY-MM-DD); got '2025-11-31'",
    ]
    assert (importer.stats.applied, importer.stats.errors) == (4, 18)
    assert list(Session.objects.values_list("external_id", flat=True)) == ["S15"]
    assert AgentPresence.objects.count() == 0
    assert OperatingCost.objects.count() == 0


def test_strict_stops_with_nothing_of_the_file_written():
    _importer, errors = run(
        *LINES[:5], '{"kind":"presence","agent":"zz","at":"2025-10-24T15:00:00Z","state":"ready"}', strict=True
    )
    assert errors == ["live.jsonl:6: unknown agent 'zz' in 'agent'"]
    assert Session.objects.count() == 0
    assert Ticket.objects.count() == 0


def test_session_of_a_customer_and_ticket_in_the_same_batch():
    # Customer, ticket and session in one bulk batch: the session is written after them.
    _importer, errors = run(CUSTOMER, TICKET, AGENT, ANSWERED, batch_size=10)
    assert errors == []
    session = Session.objects.select_related("ticket", "customer").get()
    assert session.ticket is not None
    assert (session.ticket.external_id, session.customer.external_id) == ("T20", "alice")
