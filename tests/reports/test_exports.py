"""CSV and XLSX exports: one row per figure path, then the breakdown tables; managers only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook

from reports.exports import report_csv, report_xlsx
from reports.models import ReportJob
from tests.reports.delivery_helpers import calendar_make, ticket_opened

FIGURES = {
    "period": {"start": "2025-10-20", "end": "2025-11-01", "timezone": "Europe/Dublin", "calendar": "dublin"},
    "as_of": "2025-11-10T12:00:00Z",
    "tickets": {"in_scope": 11, "outbound": 1, "merged": 0, "solved": 8, "by_channel": {"email": 7, "web": 4}},
    "sla": {"first_reply": {"achieved": 8, "breached": 3, "rate": 0.7273}},
    "csat": {"satisfied": 0, "rated": 0, "rate": None, "mean": None},
    "occupancy": {"team": None, "by_agent": {}},
    "definitions_version": "2026-11-2",
    "by_queue": {
        "support": {"tickets": {"in_scope": 9, "solved": 7}, "fcr": {"rate": 0.5}},
        "=billing": {"tickets": {"in_scope": 2, "solved": 1}},
    },
}


def test_csv_has_one_row_per_figure_then_a_section_per_breakdown():
    rows = list(csv.reader(io.StringIO(report_csv(FIGURES))))
    assert rows == [
        ["figure", "value"],
        ["period.start", "2025-10-20"],
        ["period.end", "2025-11-01"],
        ["period.timezone", "Europe/Dublin"],
        ["period.calendar", "dublin"],
        ["as_of", "2025-11-10T12:00:00Z"],
        ["tickets.in_scope", "11"],
        ["tickets.outbound", "1"],
        ["tickets.merged", "0"],
        ["tickets.solved", "8"],
        ["tickets.by_channel.email", "7"],
        ["tickets.by_channel.web", "4"],
        ["sla.first_reply.achieved", "8"],
        ["sla.first_reply.breached", "3"],
        ["sla.first_reply.rate", "0.7273"],
        ["csat.satisfied", "0"],
        ["csat.rated", "0"],
        ["csat.rate", ""],
        ["csat.mean", ""],
        ["occupancy.team", ""],
        ["occupancy.by_agent", "{}"],
        ["definitions_version", "2026-11-2"],
        [],
        ["by_queue"],
        ["key", "tickets.in_scope", "tickets.solved", "fcr.rate"],
        ["support", "9", "7", "0.5"],
        # A key a spreadsheet would run as a formula is kept as text.
        ["'=billing", "2", "1", ""],
    ]


def test_xlsx_has_the_figures_sheet_and_one_sheet_per_breakdown():
    book = load_workbook(io.BytesIO(report_xlsx(FIGURES)))
    assert book.sheetnames == ["figures", "by_queue"]
    figures = [tuple(row) for row in book["figures"].iter_rows(values_only=True)]
    assert figures[0] == ("figure", "value")
    assert ("sla.first_reply.rate", 0.7273) in figures
    assert ("tickets.by_channel.email", 7) in figures
    assert ("csat.rate", None) in figures
    assert len(figures) == 22
    assert [tuple(row) for row in book["by_queue"].iter_rows(values_only=True)] == [
        ("key", "tickets.in_scope", "tickets.solved", "fcr.rate"),
        ("support", 9, 7, 0.5),
        ("'=billing", 2, 1, None),
    ]


@pytest.fixture
def computed(db, client, manager, queue, django_capture_on_commit_callbacks):
    """The dashboard of 21-23 October 2025 opened once, so its report is stored."""
    calendar_make()
    ticket_opened(queue, datetime(2025, 10, 22, 9, 0, tzinfo=UTC))
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(
            "/desk/reports/", {"preset": "custom", "start": "2025-10-21", "end": "2025-10-24", "calendar": "dublin"}
        )
    return client


QUERY = {"preset": "custom", "start": "2025-10-21", "end": "2025-10-24", "calendar": "dublin"}


def test_the_shown_report_downloads_as_csv_and_xlsx(computed):
    response = computed.get("/desk/reports/export.csv", QUERY)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="report-dublin-2025-10-21-2025-10-24.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert ["tickets.in_scope", "1"] in rows
    assert ["tickets.by_channel.email", "1"] in rows
    assert ["by_queue"] in rows
    # Each breakdown row names its key for people: the queue's name, the channel's label.
    queue_header = rows[rows.index(["by_queue"]) + 1]
    assert queue_header[:3] == ["key", "label", "tickets.in_scope"]
    assert rows[rows.index(["by_queue"]) + 2][:3] == ["support", "Support", "1"]
    assert rows[rows.index(["by_channel"]) + 2][:3] == ["email", "Email", "1"]
    xlsx = computed.get("/desk/reports/export.xlsx", QUERY)
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames[0] == "figures"
    assert ("tickets.in_scope", 1) in [tuple(r) for r in book["figures"].iter_rows(values_only=True)]
    agents = [tuple(r)[:3] for r in book["by_agent"].iter_rows(values_only=True)]
    assert agents[:2] == [("key", "label", "tickets.in_scope"), (None, "Unassigned", 1)]


def test_a_period_never_computed_goes_to_the_dashboard_which_computes_it(computed):
    query = {**QUERY, "start": "2025-09-01"}
    response = computed.get("/desk/reports/export.csv", query)
    assert response.status_code == 302
    assert response["Location"] == "/desk/reports/?calendar=dublin&preset=custom&start=2025-09-01&end=2025-10-24"
    page = computed.get(response["Location"]).content.decode()
    assert "This report is being computed. Export it once the dashboard shows it." in page
    assert ReportJob.objects.filter(start=date(2025, 9, 1), end=date(2025, 10, 24)).exists()


@pytest.mark.parametrize("path", ["/desk/reports/export.csv", "/desk/reports/export.xlsx"])
def test_an_invalid_period_is_a_bad_request_that_says_why(computed, path):
    response = computed.get(path, {**QUERY, "start": "2025-10-30"})
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith("Choose a valid period and calendar.\n")
