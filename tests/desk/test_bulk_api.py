"""POST /api/v1/tickets/bulk/ and /api/v1/bulk-jobs/<id>/ (docs/inbox.md, "API")."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.urls import include, path
from rest_framework.test import APIClient

from servicedesk.desk import bulk
from servicedesk.desk.models import BulkJob
from servicedesk.tickets.models import Ticket, TicketEvent
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def tickets(queue, customer, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "BULK_SYNC_MAX": 3}
    return [ticket_make(customer=customer, queue=queue, subject=f"Case {n}") for n in range(5)]


def test_a_small_selection_answers_200_with_the_summary(agent, tickets):
    response = api(agent).post(
        "/api/v1/tickets/bulk/",
        {"action": "status", "parameters": {"status": "open"}, "ids": [t.pk for t in tickets[:3]]},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "summary": {
            "total": 3,
            "changed": 3,
            "unchanged": 0,
            "failed": 0,
            "skipped": 0,
            "not_processed": 0,
            "failures": [],
        }
    }
    assert list(Ticket.objects.filter(status="open").order_by("pk").values_list("pk", flat=True)) == [
        t.pk for t in tickets[:3]
    ]
    assert set(TicketEvent.objects.filter(kind="status").values_list("source", flat=True)) == {"api"}
    assert not BulkJob.objects.exists()


def test_a_large_selection_answers_202_with_the_jobs_url(agent, tickets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(agent).post(
            "/api/v1/tickets/bulk/",
            {"action": "priority", "parameters": {"priority": "urgent"}, "filter": {"status": ["new"]}, "count": 5},
            format="json",
        )

    assert response.status_code == 202
    job = BulkJob.objects.get()
    assert response["Location"] == f"/api/v1/bulk-jobs/{job.pk}/"
    assert response.json()["url"] == f"/api/v1/bulk-jobs/{job.pk}/"
    assert response.json()["job"]["seen_count"] == 5
    detail = api(agent).get(f"/api/v1/bulk-jobs/{job.pk}/").json()
    assert (detail["status"], detail["total"], detail["done"], detail["changed"]) == ("done", 5, 5, 5)
    assert detail["result"]["changed"] == 5
    assert set(Ticket.objects.values_list("priority", flat=True)) == {"urgent"}


def test_a_job_is_read_and_cancelled_by_its_owner_and_admins_only(agent, tickets, queue):
    job = bulk.bulk_submit(
        user=agent,
        request=bulk.bulk_request_check(
            user=agent, data={"action": "priority", "parameters": {"priority": "low"}, "ids": [t.pk for t in tickets]}
        ),
    ).job
    colleague = AgentFactory(username="cleo", queues=[queue])
    manager = AgentFactory(username="max", role="manager")
    admin = AgentFactory(username="ada", role="admin")

    assert api(colleague).get(f"/api/v1/bulk-jobs/{job.pk}/").status_code == 404
    assert api(manager).get(f"/api/v1/bulk-jobs/{job.pk}/").status_code == 404
    assert api(admin).get(f"/api/v1/bulk-jobs/{job.pk}/").status_code == 200
    assert api(colleague).post(f"/api/v1/bulk-jobs/{job.pk}/cancel/").status_code == 404
    cancelled = api(agent).post(f"/api/v1/bulk-jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert api(agent).get("/api/v1/bulk-jobs/999999/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "parameters": {}, "ids": ["TICKET"]}, "action"),
        ({"action": "status", "parameters": {"status": "done"}, "ids": ["TICKET"]}, "status"),
        ({"action": "status", "parameters": {"status": "open", "colour": "red"}, "ids": ["TICKET"]}, "parameters"),
        ({"action": "status", "parameters": "open", "ids": ["TICKET"]}, "parameters"),
        ({"action": "tags", "parameters": {"add": ["a"], "remove": ["A"]}, "ids": ["TICKET"]}, "tags"),
        ({"action": "assignee", "parameters": {}, "ids": ["TICKET"]}, "assignee"),
        ({"action": "status", "parameters": {"status": "open"}}, "ids"),
        ({"action": "status", "parameters": {"status": "open"}, "ids": ["TICKET"], "filter": {}}, "ids"),
        ({"action": "status", "parameters": {"status": "open"}, "ids": [1.5]}, "ids"),
        ({"action": "status", "parameters": {"status": "open"}, "ids": [True]}, "ids"),
        ({"action": "status", "parameters": {"status": "open"}, "filter": {"colour": "red"}}, "filters"),
        ({"action": "status", "parameters": {"status": "open"}, "filter": {"status": "new"}, "count": -1}, "count"),
        ({"action": "status", "parameters": {"status": "open"}, "filter": ["status"]}, "filter"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_change_nothing(agent, tickets, body, field):
    if body.get("ids") == ["TICKET"]:
        body = {**body, "ids": [tickets[0].pk]}
    before = TicketEvent.objects.count()

    response = api(agent).post("/api/v1/tickets/bulk/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert TicketEvent.objects.count() == before
    assert not BulkJob.objects.exists()


def test_ids_of_tickets_the_agent_does_not_see_are_not_found(agent, tickets):
    hidden = ticket_make(customer=CustomerFactory(), queue=QueueFactory(slug="billing"))

    response = api(agent).post(
        "/api/v1/tickets/bulk/",
        {"action": "status", "parameters": {"status": "open"}, "ids": [tickets[0].pk, hidden.pk, 999999]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["ids"] == [f"Tickets not found: {hidden.pk}, 999999."]
    assert Ticket.objects.get(pk=tickets[0].pk).status == "new"


def test_a_filter_matching_more_than_the_limit_is_refused(agent, tickets, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "BULK_SYNC_MAX": 1, "BULK_MAX": 4}

    response = api(agent).post(
        "/api/v1/tickets/bulk/", {"action": "status", "parameters": {"status": "open"}, "filter": {}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["filter"] == ["More than 4 tickets match: narrow the filter."]


def test_only_desk_users_change_tickets_in_bulk(tickets):
    from tests.factories import UserFactory

    response = api(UserFactory(username="someone")).post(
        "/api/v1/tickets/bulk/",
        {"action": "status", "parameters": {"status": "open"}, "ids": [tickets[0].pk]},
        format="json",
    )

    assert response.status_code == 403


# The inbox's API alone, for its schema (the whole API's is checked in tests/api/test_auth_and_schema.py).
urlpatterns = [path("api/v1/", include("servicedesk.desk.api_urls"))]


def test_the_schema_describes_views_and_bulk_actions_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf", __name__, "--file", str(target))

    paths = yaml.safe_load(target.read_text())["paths"]
    assert sorted(paths["/api/v1/views/"]) == ["get", "post"]
    assert sorted(paths["/api/v1/views/{id}/"]) == ["delete", "get", "patch"]
    assert sorted(paths["/api/v1/views/counts/"]) == ["get"]
    assert sorted(paths["/api/v1/tickets/bulk/"]) == ["post"]
    assert sorted(paths["/api/v1/tickets/bulk/"]["post"]["responses"]) == ["200", "202"]
    assert sorted(paths["/api/v1/bulk-jobs/{id}/"]) == ["get"]
    assert sorted(paths["/api/v1/bulk-jobs/{id}/cancel/"]) == ["post"]
