"""POST /api/v1/inbound/email/: raw mail signed with the shared secret."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.db import OperationalError

from channels_app.email.models import InboundEmail
from servicedesk.tickets.models import Ticket
from tests.channels_app.email.test_ingest import mail

pytestmark = pytest.mark.django_db

URL = "/api/v1/inbound/email/"
SECRET = "inbound-test-secret"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_SECRET": SECRET}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(client, body: bytes, *, signature: str | None = None, content_type: str = "message/rfc822"):
    headers = {} if signature is None else {"X-ServiceDesk-Signature": signature}
    return client.post(URL, data=body, content_type=content_type, headers=headers)


def test_good_signature_stores_the_mail(client):
    body = mail()

    response = post(client, body, signature=sign(body))

    ticket = Ticket.objects.get()
    assert response.status_code == 200
    assert response.json() == {"outcome": "stored", "reference": ticket.reference, "reason": None}
    assert list(InboundEmail.objects.values_list("source", "status")) == [("http", "processed")]


def test_the_same_mail_twice_is_a_duplicate(client):
    body = mail()
    post(client, body, signature=sign(body), content_type="application/octet-stream")

    response = post(client, body, signature=sign(body), content_type="application/octet-stream")

    assert response.status_code == 200
    assert response.json() == {"outcome": "duplicate", "reference": Ticket.objects.get().reference, "reason": None}
    assert InboundEmail.objects.count() == 1


def test_quarantined_mail_answers_200_with_the_reason(client):
    body = mail(body="")

    response = post(client, body, signature=sign(body))

    assert response.status_code == 200
    assert response.json() == {"outcome": "quarantined", "reference": None, "reason": "The message is empty."}


@pytest.mark.parametrize("signature", [None, "", "sha256=00", "sha1=abc", sign(b"other body")])
def test_bad_or_missing_signature_is_401(client, signature):
    response = post(client, mail(), signature=signature)

    assert response.status_code == 401
    assert response.json() == {"detail": "Missing or invalid signature."}
    assert InboundEmail.objects.count() == 0


def test_signature_with_another_secret_is_401(client):
    body = mail()

    response = post(client, body, signature=sign(body, "wrong-secret"))

    assert response.status_code == 401
    assert InboundEmail.objects.count() == 0


def test_empty_secret_disables_the_endpoint(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_SECRET": ""}
    body = mail()

    response = post(client, body, signature=sign(body, ""))

    assert response.status_code == 404
    assert InboundEmail.objects.count() == 0


def test_over_the_size_limit_is_413(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_MAX_BYTES": 500}
    body = mail(body="x" * 600)

    response = post(client, body, signature=sign(body))

    assert response.status_code == 413
    assert response.json() == {"detail": "The message is larger than 500 bytes."}
    assert InboundEmail.objects.count() == 0


def test_other_content_type_is_415(client):
    body = mail()

    response = post(client, body, signature=sign(body), content_type="application/json")

    assert response.status_code == 415
    assert response.json() == {"detail": "Send the raw message as message/rfc822."}
    assert InboundEmail.objects.count() == 0


def test_session_and_csrf_play_no_part(client, agent):
    client.force_login(agent)
    client.handler.enforce_csrf_checks = True
    body = mail()

    response = post(client, body, signature=sign(body))

    assert response.status_code == 200
    assert response.json()["outcome"] == "stored"


def test_database_unavailable_is_503_with_retry_after(client, monkeypatch):
    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("channels_app.email.api.email_ingest", unreachable)
    body = mail()

    response = post(client, body, signature=sign(body))

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json() == {"detail": "Temporarily unavailable, try again later."}


def test_schema_documents_the_endpoint(client):
    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/inbound/email/"]["post"]
    assert operation["operationId"] == "inbound_email_receive"
    assert sorted(operation["requestBody"]["content"]) == ["application/octet-stream", "message/rfc822"]
    assert sorted(operation["responses"]) == ["200", "401", "404", "413", "415", "429", "503"]
    assert "security" not in operation  # no token or session: the signature header is the check
    assert [p["name"] for p in operation["parameters"]] == ["X-ServiceDesk-Signature"]


def test_wrong_signatures_from_one_address_are_refused_before_the_body_is_read(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_REFUSED_PER_MINUTE": 3}
    body = mail()

    answers = [post(client, body, signature=sign(body, "guess")).status_code for _ in range(4)]
    signed_meanwhile = post(client, body, signature=sign(body))
    elsewhere = client.post(
        "/api/v1/inbound/email/",
        data=body,
        content_type="message/rfc822",
        headers={"X-ServiceDesk-Signature": sign(body)},
        REMOTE_ADDR="203.0.113.77",
    )

    assert answers == [401, 401, 401, 429]
    assert signed_meanwhile.status_code == 429 and int(signed_meanwhile["Retry-After"]) > 0
    assert elsewhere.status_code == 200 and elsewhere.json()["outcome"] == "stored"


def test_a_signed_burst_is_not_throttled_at_the_rate_of_strangers(client):
    bodies = [mail(message_id=f"<burst-{n}@example.com>") for n in range(40)]
    answers = {post(client, body, signature=sign(body)).status_code for body in bodies}

    assert answers == {200}
