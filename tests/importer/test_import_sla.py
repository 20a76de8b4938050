"""The calendar and sla_policy kinds: exact rows, re-runs, updates and every validation error."""

import io
import json
from datetime import date

import pytest

from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.importer import HistoryImporter

pytestmark = pytest.mark.django_db

DUBLIN = {
    "kind": "calendar",
    "id": "dublin",
    "timezone": "Europe/Dublin",
    "hours": {
        "mon": [["09:00", "13:00"], ["14:00", "17:30"]],
        "fri": [["09:00", "17:00"]],
        "sat": [["20:00", "24:00"]],
    },
    "holidays": ["2025-12-25", "2025-10-27"],
    "default": True,
}
NEW_YORK = {"kind": "calendar", "id": "ny", "timezone": "America/New_York", "hours": {"sun": [["00:00", "24:00"]]}}
STANDARD = {
    "kind": "sla_policy",
    "id": "standard",
    "rank": 2,
    "calendar": "dublin",
    "match": {"initiator": "inbound"},
    "targets": {
        "urgent": {"first_reply": 60, "resolution": 240, "hours": "calendar"},
        "high": {"first_reply": 120, "resolution": 480, "hours": "business"},
        "low": {"resolution": 2880, "hours": "business"},
    },
}
VIP = {
    "kind": "sla_policy",
    "id": "vip",
    "rank": 1,
    "calendar": "ny",
    "match": {"tier": ["vip", "gold"], "channel": "chat"},
    "targets": {"normal": {"first_reply": 15, "resolution": None, "hours": "calendar"}},
}
TICKET = {
    "kind": "ticket",
    "id": "T1",
    "at": "2025-10-24T15:30:00Z",
    "channel": "email",
    "customer": "alice",
    "subject": "Hi",
}
CUSTOMER = {"kind": "customer", "id": "alice", "name": "Alice"}


def run(*records, bulk=True):
    stderr = io.StringIO()
    importer = HistoryImporter(stderr=stderr, bulk=bulk)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    assert importer.import_lines("h.jsonl", lines) is True
    stats = importer.stats
    return (stats.read, stats.applied, stats.skipped, stats.errors), stderr.getvalue().splitlines()


def calendars():
    return sorted(BusinessCalendar.objects.values_list("slug", "name", "time_zone", "is_default"))


def windows():
    return sorted(OpeningWindow.objects.values_list("calendar__slug", "weekday", "start_minute", "end_minute"))


def holidays():
    return sorted(Holiday.objects.values_list("calendar__slug", "date", "name"))


def policies():
    return sorted(SlaPolicy.objects.values_list("slug", "name", "rank", "calendar__slug", "match"))


def targets():
    return sorted(
        SlaTarget.objects.values_list("policy__slug", "priority", "first_reply_minutes", "resolution_minutes", "hours")
    )


EXPECTED_CALENDARS = [("dublin", "Dublin", "Europe/Dublin", True), ("ny", "Ny", "America/New_York", False)]
EXPECTED_WINDOWS = [
    ("dublin", 0, 540, 780),
    ("dublin", 0, 840, 1050),
    ("dublin", 4, 540, 1020),
    ("dublin", 5, 1200, 1440),
    ("ny", 6, 0, 1440),
]
EXPECTED_HOLIDAYS = [("dublin", date(2025, 10, 27), ""), ("dublin", date(2025, 12, 25), "")]
EXPECTED_POLICIES = [
    ("standard", "Standard", 2, "dublin", {"initiator": "inbound"}),
    ("vip", "Vip", 1, "ny", {"tier": ["vip", "gold"], "channel": "chat"}),
]
EXPECTED_TARGETS = [
    ("standard", "high", 120, 480, "business"),
    ("standard", "low", None, 2880, "business"),
    ("standard", "urgent", 60, 240, "calendar"),
    ("vip", "normal", 15, None, "calendar"),
]


def rows():
    return calendars(), windows(), holidays(), policies(), targets()


@pytest.mark.parametrize("bulk", [True, False])
def test_import_exact_rows_and_rerun(bulk):
    # Configuration between ticket records: the pending bulk batch is written first.
    records = (DUBLIN, CUSTOMER, TICKET, NEW_YORK, STANDARD, VIP)
    assert run(*records, bulk=bulk) == ((6, 6, 0, 0), [])
    expected = (EXPECTED_CALENDARS, EXPECTED_WINDOWS, EXPECTED_HOLIDAYS, EXPECTED_POLICIES, EXPECTED_TARGETS)
    assert rows() == expected
    ids = (
        sorted(OpeningWindow.objects.values_list("pk", flat=True)),
        sorted(SlaTarget.objects.values_list("pk", flat=True)),
    )
    assert run(*records, bulk=bulk) == ((6, 0, 6, 0), [])
    assert rows() == expected
    assert (
        sorted(OpeningWindow.objects.values_list("pk", flat=True)),
        sorted(SlaTarget.objects.values_list("pk", flat=True)),
    ) == ids


def test_changed_content_updates_the_stored_configuration():
    run(DUBLIN, NEW_YORK, STANDARD, VIP)
    Holiday.objects.filter(date=date(2025, 12, 25)).update(name="Christmas Day")
    BusinessCalendar.objects.filter(slug="dublin").update(name="Dublin office")
    dublin = {
        **DUBLIN,
        "hours": {"tue": [["08:00", "16:00"]]},
        "holidays": ["2025-12-25", "2026-01-01"],
        "default": False,
    }
    new_york = {**NEW_YORK, "default": True}
    standard = {
        **STANDARD,
        "rank": 3,
        "calendar": "ny",
        "match": {},
        "targets": {"normal": {"first_reply": 30, "hours": "business"}},
    }
    assert run(dublin, new_york, standard, VIP) == ((4, 3, 1, 0), [])
    assert calendars() == [("dublin", "Dublin office", "Europe/Dublin", False), ("ny", "Ny", "America/New_York", True)]
    assert windows() == [("dublin", 1, 480, 960), ("ny", 6, 0, 1440)]
    assert holidays() == [("dublin", date(2025, 12, 25), "Christmas Day"), ("dublin", date(2026, 1, 1), "")]
    assert policies() == [("standard", "Standard", 3, "ny", {}), EXPECTED_POLICIES[1]]
    assert targets() == [("standard", "normal", 30, None, "business"), EXPECTED_TARGETS[3]]


def test_a_default_calendar_takes_the_default():
    run(DUBLIN)
    assert run({**NEW_YORK, "default": True}) == ((1, 1, 0, 0), [])
    assert list(BusinessCalendar.objects.filter(is_default=True).values_list("slug", flat=True)) == ["ny"]


def test_policy_needs_a_calendar_defined_earlier():
    assert run(STANDARD, DUBLIN) == ((2, 1, 0, 1), ["h.jsonl:1: unknown calendar 'dublin' in 'calendar'"])
    assert policies() == []
    assert calendars() == [("dublin", "Dublin", "Europe/Dublin", True)]


def test_rank_held_by_another_policy():
    assert run(DUBLIN, STANDARD, {**STANDARD, "id": "other"}) == (
        (3, 2, 0, 1),
        ["h.jsonl:3: rank 2 is already held by policy 'standard'"],
    )
    assert [row[0] for row in policies()] == ["standard"]


def _calendar(**changes):
    return {**DUBLIN, **changes}


def _policy(**changes):
    return {**STANDARD, **changes}


def _target(**changes):
    return _policy(targets={"urgent": {"first_reply": 60, "resolution": 240, "hours": "calendar", **changes}})


BAD = [
    (_calendar(colour="red"), "unknown key 'colour' for kind 'calendar'"),
    ({"kind": "calendar", "id": "x"}, "missing keys 'timezone', 'hours' for kind 'calendar'"),
    (_calendar(timezone="Europe/Atlantis"), "'timezone' is not an IANA time zone: 'Europe/Atlantis'"),
    (
        _calendar(hours={"monday": [["09:00", "17:00"]]}),
        "'hours' has an unknown weekday 'monday'; use mon, tue, wed, thu, fri, sat, sun",
    ),
    (_calendar(hours={"mon": [["9:00", "17:00"]]}), "'hours' times must be \"HH:MM\" from 00:00 to 24:00; got '9:00'"),
    (
        _calendar(hours={"mon": [["09:00", "24:01"]]}),
        "'hours' times must be \"HH:MM\" from 00:00 to 24:00; got '24:01'",
    ),
    (
        _calendar(hours={"mon": [["09:60", "17:00"]]}),
        "'hours' times must be \"HH:MM\" from 00:00 to 24:00; got '09:60'",
    ),
    (_calendar(hours={"mon": [["17:00", "09:00"]]}), "'hours' mon window 17:00-09:00 must end after it starts"),
    (_calendar(hours={"mon": [["09:00"]]}), '\'hours\' mon must be a list of ["HH:MM", "HH:MM"] pairs'),
    (_calendar(hours=[]), "'hours' must be an object of weekdays (mon, tue, wed, thu, fri, sat, sun)"),
    (_calendar(holidays=["2025-02-30"]), "'holidays' holds '2025-02-30', not a date (YYYY-MM-DD)"),
    (_calendar(holidays="2025-12-25"), "'holidays' must be a list of dates (YYYY-MM-DD)"),
    (_calendar(default="yes"), "'default' must be true or false"),
    (_policy(rank=0), "'rank' must be a positive whole number"),
    (_policy(rank="1"), "'rank' must be a positive whole number"),
    (_policy(rank=True), "'rank' must be a positive whole number"),
    (
        _policy(match={"colour": "red"}),
        "'match' has an unknown condition 'colour'; use priority, channel, tier, queue, initiator",
    ),
    (_policy(match={"priority": "asap"}), "'match' priority must be among low, normal, high, urgent; got 'asap'"),
    (_policy(match={"tier": []}), "'match' tier must be a non-empty string or a non-empty list of them"),
    (
        _policy(targets={"asap": {"hours": "business"}}),
        "'targets' has an unknown priority 'asap'; use low, normal, high, urgent",
    ),
    (_policy(targets={}), "'targets' must be an object of priorities (low, normal, high, urgent)"),
    (_target(first_reply=0), "'targets.urgent.first_reply' must be a positive whole number of minutes or null"),
    (_target(resolution=1.5), "'targets.urgent.resolution' must be a positive whole number of minutes or null"),
    (_target(hours="office"), "'targets' urgent 'hours' must be one of business, calendar; got 'office'"),
    (_target(colour="red"), "'targets' urgent has unknown keys 'colour'"),
    (_policy(id="x" * 101), "'id' is longer than 100 characters"),
]


@pytest.mark.parametrize(("record", "reason"), BAD, ids=[reason[:40] for _record, reason in BAD])
def test_validation_errors_name_the_line(record, reason):
    valid = {**DUBLIN, "id": "base", "default": False}
    assert run(valid, record, NEW_YORK) == ((3, 2, 0, 1), [f"h.jsonl:2: {reason}"])
    assert sorted(BusinessCalendar.objects.values_list("slug", flat=True)) == ["base", "ny"]
    assert policies() == []


def test_import_history_applies_targets_to_unsolved_imported_tickets(import_history, history_file):
    solved = {**TICKET, "id": "T2", "priority": "urgent"}
    path = history_file(
        *(
            json.dumps(r)
            for r in (
                DUBLIN,
                STANDARD,
                CUSTOMER,
                {**TICKET, "priority": "urgent"},
                solved,
                {"kind": "status", "ticket": "T2", "at": "2025-10-24T16:00:00Z", "status": "solved"},
            )
        )
    )
    first = import_history(path)
    assert "SLA targets applied to 1 unsolved tickets." in first.stdout.getvalue()
    from servicedesk.tickets.models import Ticket, TicketTarget

    ticket = Ticket.objects.get(external_id="T1")
    targets = {t.kind: t for t in TicketTarget.objects.filter(ticket=ticket)}
    # Urgent: 60 and 240 calendar minutes from the import's creation instant, long past.
    assert targets["first_reply"].due_at.isoformat() == "2025-10-24T16:30:00+00:00"
    assert {t.state for t in targets.values()} == {"breached"}
    # Thresholds already past when imported count as notified: no flood of old notices.
    assert all(t.breach_notified_at is not None and t.next_check_at is None for t in targets.values())
    assert not TicketTarget.objects.filter(ticket__external_id="T2").exists()
    # The solved ticket carries the policy snapshot the reports judge it by.
    solved_ticket = Ticket.objects.get(external_id="T2")
    assert (solved_ticket.sla_policy.slug, solved_ticket.sla_calendar.slug) == ("standard", "dublin")
    again = import_history(path)
    assert "SLA targets" not in again.stdout.getvalue()
