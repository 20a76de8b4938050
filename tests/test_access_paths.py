"""Customer A never reaches customer B's ticket, on any path: page, API, attachment."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.accounts.models import User
from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_customers(queue, agent):
    people = {}
    for name in ("a", "b"):
        customer = CustomerFactory(name=f"Customer {name.upper()}", email=f"{name}@example.com")
        user = User.objects.create_user(f"customer-{name}", password="pass-word-123")
        customer.user = user
        customer.save()
        ticket = ticket_make(customer=customer, queue=queue, subject=f"Ticket of {name.upper()}")
        reply = ticket_reply_create(
            ticket=ticket,
            author=agent,
            text="Here is the file",
            deliver=False,
            actor=Actor.agent(agent),
            attachments=[InboundAttachment(f"{name}.txt", "text/plain", b"private to " + name.encode())],
        )
        call_command("drf_create_token", user.username, verbosity=0)
        people[name] = {
            "user": user,
            "ticket": ticket,
            "key": reply.attachments.get().key,
            "token": Token.objects.get(user=user).key,
        }
    return people


def test_own_ticket_is_reachable_on_every_path(client, two_customers):
    a = two_customers["a"]
    api = APIClient(HTTP_AUTHORIZATION=f"Token {a['token']}")
    assert api.get(f"/api/v1/tickets/{a['ticket'].reference}/").status_code == 200
    assert api.get(f"/api/v1/tickets/{a['ticket'].reference}/messages/").status_code == 200
    token = portal_token_for(a["ticket"])
    assert client.get(f"/help/tickets/{token}/").status_code == 200
    download = client.get(f"/help/tickets/{token}/attachments/{a['key']}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"private to a"


def test_customer_a_gets_404_for_b_on_every_path(client, two_customers):
    a, b = two_customers["a"], two_customers["b"]
    api = APIClient(HTTP_AUTHORIZATION=f"Token {a['token']}")
    ref = b["ticket"].reference
    assert api.get(f"/api/v1/tickets/{ref}/").status_code == 404
    assert api.get(f"/api/v1/tickets/{ref}/messages/").status_code == 404
    assert api.post(f"/api/v1/tickets/{ref}/messages/", {"text": "let me in"}, format="json").status_code == 404
    assert api.patch(f"/api/v1/tickets/{ref}/", {"status": "solved"}, format="json").status_code == 404
    listed = api.get("/api/v1/tickets/").json()
    assert [t["reference"] for t in listed["results"]] == [a["ticket"].reference]
    assert api.get(f"/api/v1/tickets/?search={ref}").json()["count"] == 0
    # A's signed link cannot be used to fetch B's attachment, nor can a forged link.
    token_a = portal_token_for(a["ticket"])
    assert client.get(f"/help/tickets/{token_a}/attachments/{b['key']}/").status_code == 404
    assert client.get(f"/help/tickets/{token_a}x/").status_code == 404
    # Signed in as A: the desk's pages and downloads do not exist for a customer.
    client.force_login(a["user"])
    assert client.get(f"/desk/tickets/{ref}/").status_code == 404
    assert client.get(f"/desk/attachments/{b['key']}/").status_code == 404
    assert client.get(f"/desk/attachments/{a['key']}/").status_code == 404
    b["ticket"].refresh_from_db()
    assert b["ticket"].status == "new" and b["ticket"].messages.filter(kind="public_enduser").count() == 0
