"""/desk/webhooks/: the workspace's link for managers and admins, and adding an endpoint there (the secret shown once)."""

from __future__ import annotations

import pytest
from django.test import Client

from servicedesk.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

FORM = {"url": "https://hooks.example.com/desk", "description": "CRM", "event_types": ["ticket.created", "chat.ended"]}
NAV_LINK = '<a href="/desk/webhooks/">Webhooks</a>'


def test_the_navigation_links_the_page_for_managers_and_admins_only(manager, admin, agent, client):
    for user, shown in ((manager, True), (admin, True), (agent, False)):
        client.force_login(user)
        page = client.get("/desk/").content.decode()
        assert (NAV_LINK in page) is shown, user


def test_a_manager_adds_an_endpoint_and_sees_its_secret_once(manager, client):
    client.force_login(manager)
    page = client.get("/desk/webhooks/").content.decode()
    assert 'action="/desk/webhooks/new/"' in page
    assert 'name="allow_private_addresses"' not in page  # an admin's flag

    response = client.post("/desk/webhooks/new/", FORM)

    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/desk/webhooks/{endpoint.pk}/"
    assert (endpoint.url, endpoint.description, endpoint.event_types) == (
        "https://hooks.example.com/desk",
        "CRM",
        ["chat.ended", "ticket.created"],
    )
    assert (endpoint.is_active, endpoint.allow_private_addresses, endpoint.created_by) == (True, False, manager)
    first = client.get(f"/desk/webhooks/{endpoint.pk}/")
    assert f'<code id="webhook-secret">{endpoint.secret}</code>' in first.content.decode()
    assert "no-cache" in first["Cache-Control"]
    assert endpoint.secret not in client.get(f"/desk/webhooks/{endpoint.pk}/").content.decode()


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({**FORM, "url": "ftp://example.com/x"}, "url", "Only http and https addresses can receive webhooks."),
        ({**FORM, "url": ""}, "url", "This field is required."),
        ({**FORM, "event_types": []}, "event_types", "This field is required."),
        ({**FORM, "event_types": ["ticket.exploded"]}, "event_types", None),
        (
            {**FORM, "url": "http://10.0.0.1/x", "allow_private_addresses": "on"},
            "url",
            "10.0.0.1 is not a public address; only an admin can allow private addresses.",
        ),
        ({**FORM, "url": "http://localhost:8000/x"}, "url", "localhost is not a public address."),
        ({**FORM, "description": "x" * 301}, "description", None),
    ],
)
def test_bad_input_is_the_page_again_with_the_field_error_and_nothing_written(manager, client, form, field, message):
    client.force_login(manager)

    response = client.post("/desk/webhooks/new/", form)

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field]
    if message:
        assert errors[field] == [message]
        assert message in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_an_admin_may_allow_private_addresses(admin, client):
    client.force_login(admin)
    assert 'name="allow_private_addresses"' in client.get("/desk/webhooks/").content.decode()

    response = client.post(
        "/desk/webhooks/new/", {**FORM, "url": "http://10.0.0.5/hooks", "allow_private_addresses": "on"}
    )

    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().allow_private_addresses is True


def test_adding_needs_a_post_with_its_csrf_token(manager):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(manager)

    assert browser.get("/desk/webhooks/new/").status_code == 405
    assert browser.post("/desk/webhooks/new/", FORM).status_code == 403
    assert WebhookEndpoint.objects.count() == 0
