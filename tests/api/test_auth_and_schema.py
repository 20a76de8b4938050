"""Signing in to the API, and its OpenAPI description."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


def test_token_from_drf_create_token_signs_in(agent, queue):
    out = io.StringIO()
    call_command("drf_create_token", "ann", stdout=out)
    key = Token.objects.get(user=agent).key
    assert out.getvalue() == f"Generated token {key} for user ann\n"
    ticket = ticket_make(queue=queue, subject="Printer on fire")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    response = client.get("/api/v1/tickets/")

    assert response.status_code == 200
    assert [item["reference"] for item in response.json()["results"]] == [ticket.reference]


def test_session_sign_in_works_too(agent, queue):
    ticket = ticket_make(queue=queue)
    client = APIClient()
    client.force_login(agent)

    response = client.get(f"/api/v1/tickets/{ticket.reference}/")

    assert response.status_code == 200
    assert response.json()["reference"] == ticket.reference


@pytest.mark.parametrize(
    "path", ["/api/v1/tickets/", "/api/v1/tickets/SD-1001/", "/api/v1/tickets/SD-1001/messages/", "/api/v1/customers/"]
)
def test_without_credentials_is_401(path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_wrong_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")

    response = client.get("/api/v1/tickets/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    assert "/api/v1/tickets/" in schema["paths"]
    assert "/api/v1/tickets/{reference}/messages/" in schema["paths"]
    assert sorted(schema["paths"]["/api/v1/tickets/{reference}/"]) == ["get", "patch"]
    assert sorted(schema["paths"]["/api/v1/tickets/{reference}/messages/"]) == ["get", "post"]


def test_schema_and_docs_pages_answer(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert schema["Content-Type"].startswith("application/vnd.oai.openapi")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_api_docs_load_their_assets_from_this_site(client):
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "cdn." not in html and "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
