"""With the database unreachable (a real connection to a port where nothing listens),
the API answers 503 JSON with Retry-After and pages a plain 503 page, never a 500."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import OperationalError, connection
from django.test import Client

from servicedesk.core.outage import server_error

TOKEN = "Token 0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def database_down(django_db_blocker, settings):
    """Every query of this test connects to 127.0.0.1:1 and fails; the connection is put back afterwards."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "OUTAGE_RETRY_AFTER_SECONDS": 45}
    saved = dict(connection.settings_dict)
    with django_db_blocker.unblock():
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=1)
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)


@pytest.fixture
def api():
    return Client(HTTP_AUTHORIZATION=TOKEN, raise_request_exception=True)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/tickets/", None),
        ("get", "/api/v1/tickets/SD-1001/", None),
        ("post", "/api/v1/tickets/", {"subject": "Printer", "text": "On fire", "customer_email": "a@example.com"}),
        ("patch", "/api/v1/tickets/SD-1001/", {"status": "open"}),
        ("get", "/api/v1/tickets/SD-1001/messages/", None),
        ("get", "/api/v1/customers/", None),
        ("get", "/api/v1/reports/", None),
        ("get", "/api/v1/me/availability/", None),
        ("get", "/api/schema/", None),
    ],
)
def test_every_api_path_answers_503_json_with_retry_after(database_down, api, caplog, method, path, body):
    with caplog.at_level(logging.WARNING, logger="servicedesk.core.outage"):
        response = getattr(api, method)(path, body, content_type="application/json")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "45"
    assert response.json() == {"detail": "Temporarily unavailable, try again later."}
    assert [
        record.getMessage().split(":")[0] for record in caplog.records if record.name == "servicedesk.core.outage"
    ] == [f"Database unavailable for {method.upper()} {path}"]


def test_the_api_answers_in_the_callers_language(database_down, api):
    response = api.get("/api/v1/tickets/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")

    assert (response.status_code, response.json()) == (503, {"detail": "暂时无法使用，请稍后再试。"})  # noqa: RUF001


@pytest.mark.parametrize(("language", "title"), [("en", "Temporarily unavailable"), ("zh-CN,zh;q=0.9", "暂时无法使用")])
@pytest.mark.parametrize("path", ["/help/contact/", "/help/tickets/", "/desk/login/"])
def test_pages_answer_a_plain_503_page_in_the_visitors_language(database_down, path, language, title):
    client = Client(raise_request_exception=True)
    client.cookies["sessionid"] = "a-session-that-must-be-read-from-the-database"

    response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 503
    assert response["Retry-After"] == "45"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert f"<h1>{title}</h1>" in response.content.decode()


def test_the_sign_in_post_answers_503(database_down):
    response = Client(enforce_csrf_checks=False).post("/desk/login/", {"username": "ann", "password": "x"})

    assert (response.status_code, response["Retry-After"]) == (503, "45")


def test_the_health_check_says_the_database_is_down(database_down):
    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": False, "broker": True}


@pytest.mark.parametrize(
    ("path", "content_type"), [("/api/v1/tickets/", "application/json"), ("/help/", "text/html; charset=utf-8")]
)
def test_an_outage_raised_outside_a_view_is_a_503_too(rf, settings, path, content_type):
    # handler500: what a middleware raises never reaches the outage middleware.
    settings.SERVICEDESK = {**settings.SERVICEDESK, "OUTAGE_RETRY_AFTER_SECONDS": 45}
    request = rf.get(path)
    try:
        raise OperationalError("connection to server at 127.0.0.1, port 1 failed")
    except OperationalError:
        response = server_error(request)

    assert (response.status_code, response["Retry-After"], response["Content-Type"]) == (503, "45", content_type)


def test_other_server_errors_on_the_api_are_json(rf):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = server_error(rf.get("/api/v1/tickets/"))

    assert (response.status_code, json.loads(response.content)) == (500, {"detail": "Server error."})
