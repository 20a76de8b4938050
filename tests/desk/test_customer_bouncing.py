"""Agents clear an address's bouncing mark on the customer page (customers they may see only)."""

from __future__ import annotations

import re

import pytest

from servicedesk.tickets.models import Identity
from servicedesk.tickets.services.customers import identity_mark_bouncing
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db


def clear_url(identity: Identity) -> str:
    return f"/desk/customers/{identity.customer_id}/identities/{identity.pk}/clear-bouncing/"


@pytest.fixture
def alice_bouncing(customer, queue):
    ticket_make(customer=customer, queue=queue)
    identity_mark_bouncing(kind="email", value="alice@example.com", change=Identity.BouncingChange.BOUNCE)
    return Identity.objects.get(value="alice@example.com")


def test_customer_page_shows_the_mark_and_a_clear_form(agent_client, alice_bouncing):
    page = agent_client.get(f"/desk/customers/{alice_bouncing.customer_id}/").content.decode()

    assert f'action="{clear_url(alice_bouncing)}"' in page
    # When, in the date convention (docs/conventions.md): the viewer's zone, named.
    assert re.search(r"Marked bouncing \d{4}-\d{2}-\d{2} \d{2}:\d{2} [A-Z+\-:0-9]+: a delivery report", page)
    assert ": a delivery report for mail we sent to it." in page


def test_agent_clears_the_mark(agent_client, agent, alice_bouncing):
    response = agent_client.post(clear_url(alice_bouncing), follow=True)

    assert response.redirect_chain == [(f"/desk/customers/{alice_bouncing.customer_id}/", 302)]
    alice_bouncing.refresh_from_db()
    assert (alice_bouncing.is_bouncing, alice_bouncing.bouncing_change, alice_bouncing.bouncing_changed_by) == (
        False,
        "agent",
        agent,
    )
    page = response.content.decode()
    assert "alice@example.com is no longer marked as bouncing." in page
    assert f"by {agent}." in page.replace("\n", " ")
    assert clear_url(alice_bouncing) not in page


def test_clearing_in_chinese(agent_client, alice_bouncing):
    response = agent_client.post(clear_url(alice_bouncing), follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert "alice@example.com 已不再标记为退信。" in response.content.decode()


def test_agent_without_access_to_the_customer_cannot_clear(client, billing_agent, alice_bouncing):
    client.force_login(billing_agent)

    response = client.post(clear_url(alice_bouncing))

    assert response.status_code == 404
    alice_bouncing.refresh_from_db()
    assert (alice_bouncing.is_bouncing, alice_bouncing.bouncing_change) == (True, "bounce")


def test_identity_of_another_customer_is_not_found(agent_client, alice_bouncing, customer):
    other = CustomerFactory(email="zed@example.com")
    identity_mark_bouncing(kind="email", value="zed@example.com")
    zed = Identity.objects.get(value="zed@example.com")

    # Alice's page (visible) with Zed's identity (not visible) changes nothing.
    response = agent_client.post(f"/desk/customers/{customer.pk}/identities/{zed.pk}/clear-bouncing/")

    assert response.status_code == 404
    assert Identity.objects.get(customer=other).is_bouncing is True


def test_get_is_refused(agent_client, alice_bouncing):
    assert agent_client.get(clear_url(alice_bouncing)).status_code == 405
    alice_bouncing.refresh_from_db()
    assert alice_bouncing.is_bouncing is True
