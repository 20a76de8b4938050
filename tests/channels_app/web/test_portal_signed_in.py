"""The signed-in customer's requests: every channel, each request's page, solving and reopening,
organization managers, and access on every path (docs/help-centre.md)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.attachments import message_attachment_add
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_merge, ticket_status_change
from tests.channels_app.web.helpers import sign_in
from tests.factories import AgentFactory, CustomerFactory, OrganizationFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    return QueueFactory(slug="support")


@pytest.fixture
def alice(queue):
    return CustomerFactory(name="Alice Byrne", email="alice@example.com")


def page_references(client) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'<a href="/help/requests/(SD-\d+)/">', client.get("/help/tickets/").content.decode())


def test_every_channel_is_listed_and_spam_deleted_merged_and_others_tickets_are_not(client, alice, queue):
    mine = {
        channel: ticket_make(customer=alice, channel=channel, queue=queue)
        for channel in ("email", "web", "chat", "phone", "forum")
    }
    spam = ticket_make(customer=alice, queue=queue, is_spam=True)
    deleted = ticket_make(customer=alice, queue=queue, is_deleted=True)
    merged = ticket_make(customer=alice, queue=queue)
    agent = AgentFactory(queues=[queue])
    ticket_merge(source=merged, target=mine["email"], actor=Actor.agent(agent))
    others = ticket_make(customer=CustomerFactory(), queue=queue)
    sign_in(client, alice)
    listed = page_references(client)
    assert sorted(listed) == sorted(t.reference for t in mine.values())
    for hidden in (spam, deleted, merged, others):
        assert hidden.reference not in listed
    body = client.get("/help/tickets/").content.decode()
    for label in ("Email", "Web form", "Chat", "Phone"):
        assert f"<td>{label}</td>" in body
    # Each hidden one is not found on its own page either (the merged one leads to its target).
    for hidden in (spam, deleted, others):
        assert client.get(f"/help/requests/{hidden.reference}/").status_code == 404
    target = client.get(f"/help/requests/{merged.reference}/")
    assert target.status_code == 302 and target["Location"] == f"/help/requests/{mine['email'].reference}/"


def test_the_request_page_shows_the_public_thread_and_takes_a_reply(client, alice, queue):
    ticket = ticket_make(customer=alice, queue=queue, channel="chat")
    agent = AgentFactory(queues=[queue])
    ticket_reply_create(ticket=ticket, author=agent, text="Try turning it off and on.", deliver=False)
    ticket_note_create(ticket=ticket, author=agent, text="Internal: customer is grumpy")
    sign_in(client, alice)
    page = client.get(f"/help/requests/{ticket.reference}/").content.decode()
    assert "Try turning it off and on." in page and "grumpy" not in page
    assert "My problem is solved" in page and "Send reply" in page
    answer = client.post(
        f"/help/requests/{ticket.reference}/",
        {"message": "Still broken", "submission_id": "5f0c8c9e-1d7e-4b53-9c55-2f1f7c2b7a11"},
    )
    assert answer.status_code == 302
    message = Message.objects.get(text="Still broken")
    assert (message.ticket_id, message.author_customer_id, message.kind) == (ticket.pk, alice.pk, "public_enduser")


def test_my_problem_is_solved_solves_and_reopen_reopens_within_the_window(client, alice, queue, settings):
    ticket = ticket_make(customer=alice, queue=queue)
    sign_in(client, alice)
    url = f"/help/requests/{ticket.reference}/status/"
    assert client.post(url, {"action": "solve"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    event = TicketEvent.objects.filter(ticket=ticket, kind="status").latest("at")
    assert (event.actor_customer_id, event.source, event.after) == (alice.pk, "portal", "solved")
    assert "Reopen" in client.get(f"/help/requests/{ticket.reference}/").content.decode()
    client.post(url, {"action": "reopen"})
    ticket.refresh_from_db()
    assert ticket.status == "open"
    # Closed longer ago than the window: no reopen; writing starts a new request instead.
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    Ticket.objects.filter(pk=ticket.pk).update(solved_at=timezone.now() - timedelta(days=31))
    page = client.get(f"/help/requests/{ticket.reference}/").content.decode()
    assert "Reopen" not in page and "starts a new request" in page
    response = client.post(url, {"action": "reopen"}, follow=True)
    assert "closed too long ago" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == "closed"
    # Anything else changes nothing.
    client.post(url, {"action": "delete"})
    ticket.refresh_from_db()
    assert ticket.status == "closed"


def test_the_signed_link_page_solves_too(client, alice, queue):
    from servicedesk.tickets.access import portal_token_for

    ticket = ticket_make(customer=alice, queue=queue)
    token = portal_token_for(ticket)
    assert client.post(f"/help/tickets/{token}/status/", {"action": "solve"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "solved"


def test_an_organization_manager_reads_colleagues_requests_and_acts_only_on_their_own(client, queue):
    acme, other_org = OrganizationFactory(name="Acme"), OrganizationFactory(name="Other")
    boss = CustomerFactory(name="Boss", organization=acme, is_org_manager=True)
    colleague = CustomerFactory(name="Colleague", organization=acme)
    stranger = CustomerFactory(name="Stranger", organization=other_org)
    own = ticket_make(customer=boss, queue=queue)
    theirs = ticket_make(customer=colleague, queue=queue)
    foreign = ticket_make(customer=stranger, queue=queue)
    sign_in(client, boss)
    assert sorted(page_references(client)) == sorted([own.reference, theirs.reference])
    assert "<th>From</th>" in client.get("/help/tickets/").content.decode()
    page = client.get(f"/help/requests/{theirs.reference}/").content.decode()
    assert "A request from Colleague in your organization." in page
    assert "Send reply" not in page and "My problem is solved" not in page
    # Read only: a reply or a status change on a colleague's request does nothing.
    client.post(
        f"/help/requests/{theirs.reference}/",
        {"message": "As the boss", "submission_id": "0b8a2e0e-7a43-4e1e-a4b5-0d3f3f1c9e21"},
    )
    assert not Message.objects.filter(text="As the boss").exists()
    assert client.post(f"/help/requests/{theirs.reference}/status/", {"action": "solve"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status != "solved"
    assert client.get(f"/help/requests/{foreign.reference}/").status_code == 404
    # The colleague, no manager, sees only their own.
    colleague_client = client.__class__()
    sign_in(colleague_client, colleague)
    assert page_references(colleague_client) == [theirs.reference]
    assert colleague_client.get(f"/help/requests/{own.reference}/").status_code == 404


def test_attachments_by_reference_follow_the_same_rule(client, alice, queue):
    ticket = ticket_make(customer=alice, queue=queue)
    agent = AgentFactory(queues=[queue])
    public = ticket_reply_create(ticket=ticket, author=agent, text="See attached", deliver=False)
    note = ticket_note_create(ticket=ticket, author=agent, text="Internal file")
    files = {
        name: message_attachment_add(
            message=message, upload=InboundAttachment(filename=name, content_type="text/plain", content=b"hello")
        )
        for name, message in (("public.txt", public), ("internal.txt", note))
    }
    other = CustomerFactory()
    url = f"/help/requests/{ticket.reference}/attachments/{{}}/"
    assert client.get(url.format(files["public.txt"].key)).status_code == 404  # not signed in
    sign_in(client, other)
    assert client.get(url.format(files["public.txt"].key)).status_code == 404  # someone else
    client.cookies.clear()
    sign_in(client, alice)
    response = client.get(url.format(files["public.txt"].key))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"hello"
    assert client.get(url.format(files["internal.txt"].key)).status_code == 404
    assert (
        f'href="/help/requests/{ticket.reference}/attachments/{files["public.txt"].key}/"'
        in client.get(f"/help/requests/{ticket.reference}/").content.decode()
    )


def test_pages_need_a_signed_in_customer(client, alice, queue):
    ticket = ticket_make(customer=alice, queue=queue)
    assert client.get(f"/help/requests/{ticket.reference}/")["Location"] == "/help/sign-in/"
    assert (
        client.post(f"/help/requests/{ticket.reference}/status/", {"action": "solve"})["Location"] == "/help/sign-in/"
    )
    ticket.refresh_from_db()
    assert ticket.status == "new"


def test_a_new_request_is_prefilled_for_a_signed_in_customer(client, alice):
    sign_in(client, alice)
    form = client.get("/help/contact/").context["form"]
    assert (form.initial["name"], form.initial["email"]) == ("Alice Byrne", "alice@example.com")


def test_the_list_takes_the_same_queries_for_thousands_of_tickets(client, alice, queue):
    def bulk(count: int) -> None:
        now = timezone.now()
        start = Ticket.objects.count()
        Ticket.objects.bulk_create(
            Ticket(
                reference=f"SD-{900000 + start + n}",
                subject=f"Request {n}",
                channel="email",
                customer=alice,
                queue=queue,
                portal_key="k" * 32,
                created_at=now - timedelta(minutes=n),
                updated_at=now - timedelta(minutes=n),
            )
            for n in range(count)
        )

    sign_in(client, alice)
    bulk(30)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured.captured_queries)

    few = queries("/help/tickets/")
    bulk(3000)
    assert queries("/help/tickets/") == few
    assert queries("/help/tickets/?page=100") == few
    assert len(page_references(client)) == 25


def test_managers_make_a_customer_an_organization_manager_from_the_desk(client, queue):
    acme = OrganizationFactory(name="Acme")
    boss = CustomerFactory(name="Boss", organization=acme)
    colleague_ticket = ticket_make(customer=CustomerFactory(organization=acme), queue=queue)
    loner = CustomerFactory(name="No organization")
    ticket_make(customer=boss, queue=queue)
    ticket_make(customer=loner, queue=queue)
    url = f"/desk/customers/{boss.pk}/org-manager/"
    agent = AgentFactory(queues=[queue])
    client.force_login(agent)
    assert "Show the organization" not in client.get(f"/desk/customers/{boss.pk}/").content.decode()
    assert client.post(url, {"is_org_manager": "1"}).status_code == 404
    boss.refresh_from_db()
    assert boss.is_org_manager is False
    client.force_login(AgentFactory(role="manager"))
    assert "Show the organization" in client.get(f"/desk/customers/{boss.pk}/").content.decode()
    assert client.post(url, {"is_org_manager": "1"}).status_code == 302
    boss.refresh_from_db()
    assert boss.is_org_manager is True
    assert client.post(f"/desk/customers/{loner.pk}/org-manager/", {"is_org_manager": "1"}).status_code == 404
    help_client = client.__class__()
    sign_in(help_client, boss)
    assert colleague_ticket.reference in page_references(help_client)
    client.post(url, {"is_org_manager": "0"})
    assert colleague_ticket.reference not in page_references(help_client)


def test_call_entries_read_as_the_customers_calls_without_the_desks_recording_or_line(client, alice, queue):
    ticket = ticket_make(customer=alice, queue=queue, channel="phone")
    facts = {
        "direction": "in",
        "number": "+353861234567",
        "line": "Internal sales line",
        "agent": "Dana Agent",
        "outcome": "voicemail",
        "ended_at": timezone.now().isoformat(),
        "wait_seconds": 42,
        "recording_url": "https://pbx.example/rec/secret.wav",
        "voicemail_url": "https://pbx.example/vm/secret.wav",
        "transcript": "<script>alert(1)</script> Call me back",
    }
    Message.objects.create(
        ticket=ticket,
        kind="public_enduser",
        channel="phone",
        purpose="call",
        facts=facts,
        text="Inbound call",
        author_customer=alice,
        created_at=timezone.now(),
    )
    sign_in(client, alice)
    page = client.get(f"/help/requests/{ticket.reference}/").content.decode()
    assert "Your call to us" in page and "Voicemail" in page and "Dana Agent" in page and "42 s" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Call me back" in page and "<script>alert(1)" not in page
    for internal in ("pbx.example", "Internal sales line"):
        assert internal not in page
