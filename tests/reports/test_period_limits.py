"""A report period the desk cannot compute is refused when asked for (400 with the field), never a failed job:
dates outside 1900-01-01 .. 9998-12-31, midnights that do not exist as instants, periods over a year."""

from __future__ import annotations

import pytest

from reports.models import ReportJob
from tests.api.conftest import client_for
from tests.reports.delivery_helpers import calendar_make

pytestmark = pytest.mark.django_db

RANGE = "Choose a date between 1900-01-01 and 9998-12-31."
YEAR = "A period is at most one year."


@pytest.fixture
def kiritimati(db):
    return calendar_make(slug="kiritimati", time_zone="Pacific/Kiritimati")  # UTC+14


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"start": "0001-01-01", "end": "0001-01-05"}, {"start": [RANGE]}),
        ({"start": "9999-12-25", "end": "9999-12-31"}, {"start": [RANGE]}),
        ({"start": "9998-12-25", "end": "9999-01-02"}, {"end": [RANGE]}),
        ({"start": "2024-01-01", "end": "2025-01-03"}, {"end": [YEAR]}),
        ({"start": "2025-01-02", "end": "2025-01-01"}, {"end": ["The period must end after it starts."]}),
        (
            {"start": "2025-01-01", "end": "2025-01-02", "as_of": "0001-01-01T00:00:00Z"},
            {"as_of": ["Choose an instant between 1900-01-01 and 9998-12-31."]},
        ),
    ],
)
def test_the_api_refuses_a_period_it_cannot_compute(manager, kiritimati, body, errors):
    response = client_for(manager).post("/api/v1/reports/", {**body, "calendar": "kiritimati"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", **errors}
    assert ReportJob.objects.count() == 0


def test_a_date_beyond_pythons_range_is_a_400(manager, kiritimati):
    response = client_for(manager).post(
        "/api/v1/reports/", {"start": "9999-12-31", "end": "10000-01-01"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["detail", "end"]
    assert ReportJob.objects.count() == 0


def test_a_year_is_still_accepted(manager, kiritimati):
    response = client_for(manager).post(
        "/api/v1/reports/", {"start": "2024-01-01", "end": "2025-01-01", "as_of": "2025-02-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "0001-01-01", "end": "0001-01-03"}, RANGE),
        ({"start": "9999-12-01", "end": "9999-12-31"}, RANGE),
        ({"start": "2023-01-01", "end": "2025-01-01"}, YEAR),
    ],
)
def test_the_dashboard_and_exports_refuse_it_with_a_400(client, manager, kiritimati, query, message):
    client.force_login(manager)
    query = {**query, "preset": "custom", "calendar": "kiritimati"}

    dashboard = client.get("/desk/reports/", query)
    export = client.get("/desk/reports/export.csv", query)

    assert (dashboard.status_code, export.status_code) == (400, 400)
    assert message in dashboard.content.decode() and message in export.content.decode()
    assert ReportJob.objects.count() == 0
