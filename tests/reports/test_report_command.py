"""``manage.py report``: the report object as JSON, a summary, errors, and the resumable backfill."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reports.models import ReportSnapshot
from reports.services import report_compute
from tests.reports.delivery_helpers import TOP_LEVEL_KEYS, calendar_make, ticket_opened

pytestmark = pytest.mark.django_db

ARGS = ["--start", "2025-10-20", "--end", "2025-11-01", "--as-of", "2025-11-10T12:00:00Z"]


@pytest.fixture
def dublin(db):
    return calendar_make()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("report", *args, stdout=out)
    return out.getvalue()


def test_json_prints_exactly_the_report_object(dublin, queue):
    ticket_opened(queue, datetime(2025, 10, 22, 9, 0, tzinfo=UTC))
    printed = run(*ARGS, "--calendar", "dublin", "--json")
    report = json.loads(printed)
    assert list(report)[: len(TOP_LEVEL_KEYS)] == TOP_LEVEL_KEYS
    expected = report_compute(
        start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=datetime(2025, 11, 10, 12, tzinfo=UTC), calendar=dublin
    )
    assert printed.rstrip("\n") == json.dumps(expected, sort_keys=False, ensure_ascii=False)
    assert report["period"] == {
        "start": "2025-10-20",
        "end": "2025-11-01",
        "timezone": "Europe/Dublin",
        "calendar": "dublin",
    }
    assert report["tickets"]["in_scope"] == 1


def test_the_calendar_may_be_named_by_id_and_defaults_to_the_default_one(dublin):
    calendar_make("shanghai", "Asia/Shanghai", default=False)
    by_id = json.loads(run(*ARGS, "--calendar", str(dublin.pk), "--json"))
    default = json.loads(run(*ARGS, "--json"))
    assert by_id["period"]["calendar"] == default["period"]["calendar"] == "dublin"
    assert json.loads(run(*ARGS, "--calendar", "shanghai", "--json"))["period"]["timezone"] == "Asia/Shanghai"


def test_without_json_a_short_summary(dublin, queue):
    ticket_opened(queue, datetime(2025, 10, 22, 9, 0, tzinfo=UTC))
    lines = run(*ARGS).splitlines()
    assert lines[0] == "Report 2025-10-20 to 2025-11-01 (end excluded), calendar dublin, as of 2025-11-10T12:00:00Z"
    assert lines[1] == "Tickets: 1 in scope, 0 solved, 0 outbound"
    assert "Backlog: -" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2025-10-32", "--end", "2025-11-01"], "--start must be a date as YYYY-MM-DD, not '2025-10-32'."),
        (["--start", "2025-11-01", "--end", "2025-11-01"], "--end must be after --start (the end date is excluded)."),
        (["--start", "2025-10-20"], "Give --start and --end (or --backfill --since)."),
        (
            [*ARGS[:4], "--as-of", "soon"],
            "--as-of must be an ISO 8601 instant such as 2025-11-10T12:00:00Z, not 'soon'.",
        ),
        ([*ARGS[:4], "--as-of", "2025-11-10T12:00:00"], "--as-of needs a time zone offset, e.g. 2025-11-10T12:00:00Z."),
        ([*ARGS, "--calendar", "mars"], "There is no calendar mars (give its identifier or id)."),
        (["--backfill"], "--backfill needs --since YYYY-MM-DD."),
    ],
)
def test_bad_arguments_are_clear_errors(dublin, args, message):
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert str(caught.value) == message


def test_backfill_computes_missing_days_and_resumes(dublin, queue):
    today = timezone.now().astimezone(__import__("zoneinfo").ZoneInfo("Europe/Dublin")).date()
    since = today - timedelta(days=4)
    ticket_opened(queue, timezone.now() - timedelta(days=2))
    # An earlier, interrupted run stored the first day.
    run("--backfill", "--since", since.isoformat())
    ReportSnapshot.objects.exclude(start=since).delete()
    output = run("--backfill", "--since", since.isoformat())
    assert output.splitlines()[-1] == "3 daily snapshots computed."
    days = list(ReportSnapshot.objects.order_by("start").values_list("granularity", "start"))
    assert days == [("day", since + timedelta(days=n)) for n in range(4)]
    assert run("--backfill", "--since", since.isoformat()).splitlines()[-1] == "0 daily snapshots computed."
