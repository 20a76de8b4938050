"""``/api/v1/reports/``: managers queue a report job and follow it to its figures; nobody else may."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reports.models import JobStatus, ReportJob, ReportSnapshot
from reports.services import report_compute
from tests.api.conftest import client_for
from tests.factories import UserFactory
from tests.reports.delivery_helpers import TOP_LEVEL_KEYS, calendar_make, ticket_opened

pytestmark = pytest.mark.django_db

BODY = {"start": "2025-10-20", "end": "2025-11-01", "as_of": "2025-11-10T12:00:00Z", "calendar": "dublin"}


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def manager_api(manager):
    return client_for(manager)


@pytest.fixture
def agent_api(agent):
    return client_for(agent)


def test_a_job_goes_from_queued_to_done_with_the_report(manager_api, dublin, queue, django_capture_on_commit_callbacks):
    ticket_opened(queue, datetime(2025, 10, 22, 9, 0, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = manager_api.post("/api/v1/reports/", BODY, format="json")
    assert response.status_code == 202
    job = ReportJob.objects.get()
    assert response.json() == {
        "id": job.pk,
        "status": "queued",
        "progress": 0,
        "url": f"http://testserver/api/v1/reports/{job.pk}/",
        "start": "2025-10-20",
        "end": "2025-11-01",
        "as_of": "2025-11-10T12:00:00Z",
        "calendar": "dublin",
        "error": "",
        "created_at": response.json()["created_at"],
        "finished_at": None,
        "result": None,
    }
    assert response["Location"] == response.json()["url"]
    assert len(callbacks) == 1

    callbacks[0]()  # the worker picks the job up

    body = manager_api.get(f"/api/v1/reports/{job.pk}/").json()
    assert body["status"] == "done"
    assert body["progress"] == 100
    assert list(body["result"])[: len(TOP_LEVEL_KEYS)] == TOP_LEVEL_KEYS
    expected = report_compute(
        start=datetime(2025, 10, 20).date(),
        end=datetime(2025, 11, 1).date(),
        as_of=datetime(2025, 11, 10, 12, tzinfo=UTC),
        calendar=dublin,
    )
    assert {k: v for k, v in body["result"].items() if k != "backlog"} == expected
    assert body["result"]["tickets"]["in_scope"] == 1
    assert ReportSnapshot.objects.get().granularity == "custom"

    # Running the job again has no second effect.
    callbacks[0]()
    assert ReportSnapshot.objects.count() == 1
    assert ReportJob.objects.get().status == JobStatus.DONE


def test_progress_is_written_between_stages(manager_api, dublin, monkeypatch, django_capture_on_commit_callbacks):
    from reports import snapshots

    seen: list[tuple[str, int]] = []
    real = snapshots.snapshot_compute

    def recording(**kwargs):  # type: ignore[no-untyped-def]
        job = ReportJob.objects.get()
        seen.append((kwargs["granularity"], job.progress))
        return real(**kwargs)

    monkeypatch.setattr(snapshots, "snapshot_compute", recording)
    with django_capture_on_commit_callbacks(execute=True):
        job = snapshots.report_job_create(
            user=None,
            calendar=dublin,
            start=datetime(2025, 10, 20).date(),
            end=datetime(2025, 10, 23).date(),
            as_of=datetime(2025, 11, 10, 12, tzinfo=UTC),
            include_daily=True,
        )
    # Claimed at 5; after each of the three days 5 + 90 * k / 4; then the period.
    assert seen == [("day", 5), ("day", 27), ("day", 50), ("custom", 72)]
    job.refresh_from_db()
    assert (job.status, job.progress) == ("done", 100)


def test_a_failing_computation_marks_the_job_failed(
    manager_api, dublin, monkeypatch, django_capture_on_commit_callbacks
):
    from reports import services

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "report_compute", broken)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_api.post("/api/v1/reports/", BODY, format="json")
    body = manager_api.get(response.json()["url"]).json()
    assert (body["status"], body["error"], body["result"]) == ("failed", "database went away", None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "2025-13-01"}, "start"),
        ({"end": "not a date"}, "end"),
        ({"end": "2025-10-20"}, "end"),
        ({"end": "2025-10-19"}, "end"),
        ({"calendar": "mars"}, "calendar"),
        ({"as_of": "yesterday"}, "as_of"),
    ],
)
def test_bad_requests_get_field_errors(manager_api, dublin, change, field):
    response = manager_api.post("/api/v1/reports/", {**BODY, **change}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["detail", field]
    assert ReportJob.objects.count() == 0


def test_as_of_before_the_end_and_the_default_calendar_are_accepted(
    manager_api, dublin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_api.post(
            "/api/v1/reports/",
            {"start": "2025-10-20", "end": "2025-11-01", "as_of": "2025-10-25T00:00:00Z"},
            format="json",
        )
    assert response.status_code == 202
    assert response.json()["calendar"] == "dublin"
    assert manager_api.get(response.json()["url"]).json()["result"]["as_of"] == "2025-10-25T00:00:00Z"


def test_without_any_calendar_the_request_is_refused(manager_api):
    response = manager_api.post("/api/v1/reports/", {"start": "2025-10-20", "end": "2025-11-01"}, format="json")
    assert response.status_code == 400
    assert response.json()["calendar"] == ["Reports need a business calendar; create one first."]


def test_the_list_shows_jobs_newest_first_without_results(manager_api, dublin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = manager_api.post("/api/v1/reports/", BODY, format="json").json()
        second = manager_api.post("/api/v1/reports/", {**BODY, "start": "2025-10-21"}, format="json").json()
    listed = manager_api.get("/api/v1/reports/").json()
    assert [job["id"] for job in listed["results"]] == [second["id"], first["id"]]
    assert "result" not in listed["results"][0]


@pytest.fixture
def customer_api(customer):
    user = UserFactory(username="alice", email="alice@example.com")
    customer.user = user
    customer.save(update_fields=["user"])
    return client_for(user)


@pytest.mark.parametrize("who", ["agent", "customer", "anonymous"])
def test_only_managers_may_use_the_reports_api(
    who, manager_api, agent_api, customer_api, dublin, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    with django_capture_on_commit_callbacks(execute=True):
        job_url = manager_api.post("/api/v1/reports/", BODY, format="json").json()["url"]
    client = {"agent": agent_api, "customer": customer_api, "anonymous": APIClient()}[who]
    expected = 401 if who == "anonymous" else 403
    assert client.get("/api/v1/reports/").status_code == expected
    assert client.get(job_url).status_code == expected
    assert client.post("/api/v1/reports/", BODY, format="json").status_code == expected
    assert ReportJob.objects.count() == 1
