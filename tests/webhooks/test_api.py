"""/api/v1/webhooks/ and /desk/webhooks/: managers and admins only, the secret shown once, bad input 400."""

from __future__ import annotations

import pytest

from servicedesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.api.conftest import client_for
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db

BODY = {"url": "https://hooks.example.com/desk", "event_types": ["ticket.created"], "description": "CRM"}


@pytest.fixture
def hook(admin, receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """An endpoint on the local receiver with one failed delivery."""
    endpoint = endpoint_for(receiver.url, ["ticket.created"]).endpoint
    receiver.answer(500, body=b"down")
    with django_capture_on_commit_callbacks(execute=True):
        ticket_make(customer=customer, queue=queue)
    return endpoint


def test_a_manager_adds_an_endpoint_and_sees_the_secret_once(manager):
    api = client_for(manager)

    response = api.post("/api/v1/webhooks/", BODY, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == body["secret"]
    assert body["secret"] not in endpoint.secret_encrypted
    assert (body["url"], body["event_types"], body["is_active"], body["allow_private_addresses"]) == (
        BODY["url"],
        ["ticket.created"],
        True,
        False,
    )
    shown = api.get(f"/api/v1/webhooks/{endpoint.pk}/").json()
    assert "secret" not in shown
    assert "secret" not in api.get("/api/v1/webhooks/").json()["results"][0]


def test_rotating_the_secret_returns_the_new_one_once(manager):
    api = client_for(manager)
    first = api.post("/api/v1/webhooks/", BODY, format="json").json()

    rotated = api.patch(f"/api/v1/webhooks/{first['id']}/", {"rotate_secret": True}, format="json").json()

    assert rotated["secret"] != first["secret"]
    assert WebhookEndpoint.objects.get().secret == rotated["secret"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**BODY, "url": "ftp://example.com/x"}, "url", None),
        (
            {**BODY, "url": "http://10.0.0.1/x"},
            "url",
            "10.0.0.1 is not a public address; only an admin can allow private addresses.",
        ),
        ({**BODY, "url": "http://169.254.169.254/x"}, "url", None),
        ({**BODY, "url": "http://[::1]/x"}, "url", None),
        ({**BODY, "url": "http://localhost:8000/x"}, "url", "localhost is not a public address."),
        ({**BODY, "event_types": []}, "event_types", None),
        ({**BODY, "event_types": ["ticket.exploded"]}, "event_types", None),
        ({**BODY, "event_types": "ticket.created"}, "event_types", None),
        ({"event_types": ["ticket.created"]}, "url", None),
    ],
)
def test_bad_input_is_400_with_the_field_and_writes_nothing(manager, body, field, message):
    response = client_for(manager).post("/api/v1/webhooks/", body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    if message:
        assert response.json()[field] == [message]
    assert WebhookEndpoint.objects.count() == 0


def test_only_an_admin_allows_private_addresses(manager, admin):
    body = {**BODY, "url": "http://10.0.0.5/hooks", "allow_private_addresses": True}

    refused = client_for(manager).post("/api/v1/webhooks/", body, format="json")
    accepted = client_for(admin).post("/api/v1/webhooks/", body, format="json")

    assert refused.status_code == 403
    assert refused.json() == {"detail": "Only an admin can allow private addresses."}
    assert accepted.status_code == 201
    assert WebhookEndpoint.objects.get().allow_private_addresses is True
    patched = client_for(manager).patch(
        f"/api/v1/webhooks/{accepted.json()['id']}/", {"allow_private_addresses": False}, format="json"
    )
    assert patched.status_code == 403
    assert WebhookEndpoint.objects.get().allow_private_addresses is True


def test_pause_resume_and_delete(manager):
    api = client_for(manager)
    pk = api.post("/api/v1/webhooks/", BODY, format="json").json()["id"]

    paused = api.patch(f"/api/v1/webhooks/{pk}/", {"is_active": False}, format="json").json()
    resumed = api.patch(f"/api/v1/webhooks/{pk}/", {"is_active": True, "description": "CRM 2"}, format="json").json()
    deleted = api.delete(f"/api/v1/webhooks/{pk}/")

    assert (paused["is_active"], paused["paused_reason"]) == (False, "manual")
    assert (resumed["is_active"], resumed["paused_reason"], resumed["description"]) == (True, "", "CRM 2")
    assert deleted.status_code == 204
    assert WebhookEndpoint.objects.count() == 0


def test_deliveries_and_redelivery_in_the_api(manager, hook, receiver, django_capture_on_commit_callbacks):
    api = client_for(manager)

    listed = api.get(f"/api/v1/webhooks/{hook.pk}/deliveries/").json()

    [delivery] = listed["results"]
    assert (delivery["event_type"], delivery["state"], delivery["attempts"]) == ("ticket.created", "pending", 1)
    assert delivery["attempt_log"][0]["status_code"] == 500
    assert delivery["attempt_log"][0]["response_excerpt"] == "down"
    with django_capture_on_commit_callbacks(execute=True):
        redelivered = api.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver/")
    assert redelivered.status_code == 202
    assert WebhookDelivery.objects.get().state == "succeeded"
    again = api.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver/")
    assert again.status_code == 409
    assert WebhookAttempt.objects.count() == 2


def test_an_agent_who_is_not_a_manager_is_refused_everywhere(agent, hook):
    delivery = WebhookDelivery.objects.get()
    api = client_for(agent)
    calls = [
        api.get("/api/v1/webhooks/"),
        api.post("/api/v1/webhooks/", BODY, format="json"),
        api.get(f"/api/v1/webhooks/{hook.pk}/"),
        api.patch(f"/api/v1/webhooks/{hook.pk}/", {"is_active": False}, format="json"),
        api.delete(f"/api/v1/webhooks/{hook.pk}/"),
        api.get(f"/api/v1/webhooks/{hook.pk}/deliveries/"),
        api.post(f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver/"),
    ]

    assert [c.status_code for c in calls] == [403] * 7
    assert calls[0].json() == {"detail": "Only managers and admins manage webhooks."}
    assert (WebhookEndpoint.objects.get().is_active, WebhookAttempt.objects.count()) == (True, 1)


def test_the_desk_pages_refuse_agents_and_hide_from_others(agent, customer_user, hook, client):
    delivery = WebhookDelivery.objects.get()
    pages = [
        ("get", "/desk/webhooks/"),
        ("get", f"/desk/webhooks/{hook.pk}/"),
        ("post", f"/desk/webhooks/{hook.pk}/pause/"),
        ("post", f"/desk/webhooks/{hook.pk}/resume/"),
        ("post", f"/desk/webhooks/deliveries/{delivery.pk}/redeliver/"),
        ("post", "/desk/webhooks/new/"),
    ]
    client.force_login(agent)
    assert [getattr(client, method)(path).status_code for method, path in pages] == [403] * 6
    client.force_login(customer_user)
    assert [getattr(client, method)(path).status_code for method, path in pages] == [404] * 6
    client.logout()
    assert all(getattr(client, method)(path).status_code == 302 for method, path in pages)
    assert (WebhookEndpoint.objects.get().is_active, WebhookAttempt.objects.count()) == (True, 1)


def test_customers_and_strangers_get_nothing_from_the_api(customer_user, hook):
    api = client_for(customer_user)

    assert api.get("/api/v1/webhooks/").status_code == 403
    assert api.get(f"/api/v1/webhooks/{hook.pk}/deliveries/").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/webhooks/").status_code in (401, 403)


def test_a_manager_reads_the_desk_pages(manager, hook, client):
    client.force_login(manager)

    listing = client.get("/desk/webhooks/").content.decode()
    detail = client.get(f"/desk/webhooks/{hook.pk}/").content.decode()

    assert hook.url in listing
    assert "ticket.created" in detail
    assert "The endpoint answered 500." in detail
    assert client.get(f"/desk/webhooks/{hook.pk}/?page=2").status_code == 404
    assert client.get("/desk/webhooks/999999/").status_code == 404


def test_the_api_is_in_the_openapi_schema(manager):
    schema = client_for(manager).get("/api/schema/?format=json").json()

    for path in (
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/",
        "/api/v1/webhooks/{id}/deliveries/",
        "/api/v1/webhooks/deliveries/{id}/redeliver/",
    ):
        assert path in schema["paths"], path
