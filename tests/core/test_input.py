"""Bad input on every path answers a clear 4xx on PostgreSQL, never a 500 (docs/conventions.md, "Input")."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.api.conftest import client_for
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db

NUL = "\x00"
NUL_MESSAGE = "The request contains a NUL character, which is not allowed in text."

API_LIST_FILTERS = [
    ("/api/v1/tickets/", name)
    for name in (
        "status",
        "queue",
        "assignee",
        "channel",
        "priority",
        "customer",
        "search",
        "q",
        "due",
        "due_after",
        "due_before",
        "breaching_within",
        "sort",
        "ordering",
        "spam",
        "deleted",
        "created_from",
        "created_to",
        "page",
        "page_size",
    )
] + [
    ("/api/v1/customers/", "search"),
    ("/api/v1/customers/", "page"),
    ("/api/v1/reports/", "page"),
    ("/api/v1/tickets/{ref}/messages/", "page"),
]

DESK_LIST_FILTERS = [
    ("/desk/", name)
    for name in (
        "q",
        "search",
        "status",
        "queue",
        "assignee",
        "channel",
        "priority",
        "customer",
        "due",
        "sort",
        "spam",
        "deleted",
        "created_from",
        "created_to",
        "page",
    )
] + [
    ("/desk/customers/{customer}/", "page"),
    ("/desk/quarantine/", "page"),
    ("/desk/reports/", "start"),
    ("/desk/reports/", "calendar"),
    ("/desk/reports/export.csv", "preset"),
    ("/desk/reports/staffing/", "channel"),
]


@pytest.fixture
def agent_api(agent):
    return client_for(agent)


@pytest.fixture
def seen(queue, customer):
    return ticket_make(customer=customer, queue=queue, subject="Printer jam")


@pytest.mark.parametrize(("path", "name"), API_LIST_FILTERS)
def test_a_nul_in_any_api_list_filter_is_a_400_with_the_reason(manager, seen, customer, path, name):
    api = client_for(manager)

    response = api.get(path.format(ref=seen.reference), {name: f"a{NUL}b"})

    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE}


@pytest.mark.parametrize(("path", "name"), DESK_LIST_FILTERS)
def test_a_nul_in_any_desk_list_filter_is_a_400_page(client, manager, seen, customer, path, name):
    client.force_login(manager)

    response = client.get(path.format(customer=customer.pk), {name: f"x{NUL}"})

    assert response.status_code == 400
    assert NUL_MESSAGE in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/desk/tickets/SD-1%00/",
        "/api/v1/tickets/SD-1%00/",
        "/api/v1/tickets/SD-1%00/messages/",
        "/help/tickets/abc%00/",
        "/desk/attachments/a%00b/",
    ],
)
def test_a_nul_in_a_path_segment_is_a_400(client, manager, path):
    client.force_login(manager)

    response = client.get(path)

    assert response.status_code == 400


def test_a_nul_in_a_posted_form_field_is_refused_before_anything_is_written(client, agent, seen):
    client.force_login(agent)

    response = client.post(f"/desk/tickets/{seen.reference}/reply/", {"text": f"Hello{NUL}", "kind": "reply"})

    assert response.status_code == 400
    assert seen.messages.count() == 0


def test_a_nul_in_a_json_string_is_a_400_and_nothing_is_written(agent_api, seen):
    response = agent_api.post(
        f"/api/v1/tickets/{seen.reference}/messages/", {"kind": "note", "text": f"a{NUL}b"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE}
    assert seen.messages.count() == 0


def test_a_nul_in_a_json_key_is_a_400(agent_api, seen):
    response = agent_api.post(f"/api/v1/tickets/{seen.reference}/messages/", {f"te{NUL}xt": "hello"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE}


def test_json_nested_thousands_deep_is_a_400_with_the_reason(agent_api, seen):
    body = "[" * 5000 + "]" * 5000

    response = agent_api.post(f"/api/v1/tickets/{seen.reference}/messages/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "The JSON body is nested deeper than 32 levels."}
    assert seen.messages.count() == 0


def test_json_nested_just_over_the_limit_is_refused(agent_api, seen):
    body = json.dumps({"text": "hi", "kind": "note", "extra": json.loads("[" * 32 + "]" * 32)})

    response = agent_api.post(f"/api/v1/tickets/{seen.reference}/messages/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "The JSON body is nested deeper than 32 levels."}


def test_a_json_body_over_the_size_limit_is_a_413_in_json(agent_api, seen, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"kind": "note", "text": "a" * 2000})

    response = agent_api.post(f"/api/v1/tickets/{seen.reference}/messages/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than 1000 bytes."}
    assert seen.messages.count() == 0


def test_a_form_body_over_the_size_limit_is_a_413_page(client, agent, seen, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client.force_login(agent)

    response = client.post(f"/desk/tickets/{seen.reference}/reply/", {"text": "a" * 2000, "kind": "reply"})

    assert response.status_code == 413
    assert "The request body is larger than 1000 bytes." in response.content.decode()
    assert seen.messages.count() == 0


def test_a_form_body_over_the_size_limit_under_the_api_is_a_413_in_json(agent_api, seen, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = agent_api.post(f"/api/v1/tickets/{seen.reference}/messages/", {"kind": "note", "text": "a" * 2000})

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than 1000 bytes."}


def test_a_nul_on_the_public_contact_form_is_a_400(db):
    response = Client().post("/help/contact/", {"name": f"Eve{NUL}", "email": "eve@example.com", "text": "hi"})

    assert response.status_code == 400
    assert NUL_MESSAGE in response.content.decode()


def test_a_nul_in_a_header_such_as_the_idempotency_key_is_a_400(agent_api, queue):
    response = agent_api.post(
        "/api/v1/tickets/",
        {"customer_email": "a@example.com", "subject": "s", "text": "t"},
        format="json",
        headers={"Idempotency-Key": f"a{NUL}b"},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": NUL_MESSAGE}
