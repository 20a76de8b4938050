"""The ticket page's merge and split (servicedesk/desk/merging.py): pick, preview, merge, tell the customer,
split a customer message, the old reference leading to the target, access and refusals on every path."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_merge

pytestmark = pytest.mark.django_db


def inbound(**kwargs) -> InboundMessage:  # type: ignore[no-untyped-def]
    defaults = dict(
        channel="email",
        external_id=str(uuid.uuid4()),
        sender=SenderIdentity("email", "ada@example.net", "Ada Lind"),
        subject="Invoice twice",
        text="I was charged twice.",
    )
    defaults.update(kwargs)
    return InboundMessage(**defaults)


@pytest.fixture
def pair(queue, agent):  # type: ignore[no-untyped-def]
    source = inbound_message_receive(inbound=inbound()).ticket
    ticket_note_create(ticket=source, author=agent, text="Checked the ledger.")
    target = inbound_message_receive(inbound=inbound(subject="Charged twice again")).ticket
    return source, target


def test_ticket_page_offers_merge_and_split(agent_client, pair):
    source, _target = pair
    message = Message.objects.get(ticket=source, kind="public_enduser")

    content = agent_client.get(f"/desk/tickets/{source.reference}/").content.decode()

    assert f'href="/desk/tickets/{source.reference}/merge/"' in content
    assert f'href="/desk/tickets/{source.reference}/messages/{message.pk}/split/"' in content


def test_pick_preview_and_merge_with_a_notice_to_the_customer(agent_client, pair, django_capture_on_commit_callbacks):
    source, target = pair
    url = f"/desk/tickets/{source.reference}/merge/"

    pick = agent_client.get(url)
    assert pick.status_code == 200 and f"?target={target.reference}" in pick.content.decode()
    preview = agent_client.get(url, {"target": target.reference.lower()})
    body = preview.content.decode()
    assert preview.status_code == 200
    assert "I was charged twice." in body and "Checked the ledger." in body
    assert f'name="target" value="{target.reference}"' in body
    assert not TicketEvent.objects.filter(kind="merged").exists()

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        merged = agent_client.post(url, {"target": target.reference, "notify_customer": "1"})

    assert (merged.status_code, merged["Location"]) == (302, f"/desk/tickets/{target.reference}/")
    source.refresh_from_db()
    assert source.merged_into_id == target.pk
    assert Message.objects.filter(ticket=target, text="Checked the ledger.").exists()
    assert len(mail.outbox) == 1 and source.reference in mail.outbox[0].body
    page = agent_client.get(merged["Location"])
    assert f"{source.reference} was merged into this ticket." in page.content.decode()


def test_the_old_reference_redirects_to_the_target_with_a_notice(agent_client, pair, agent):
    source, target = pair
    ticket_merge(source=source, target=target, actor=Actor.agent(agent))

    old = agent_client.get(f"/desk/tickets/{source.reference}/")
    assert (old.status_code, old["Location"]) == (302, f"/desk/tickets/{target.reference}/")
    notice = agent_client.get(old["Location"]).content.decode()
    assert f"{source.reference} was merged into this ticket; you were brought here." in notice
    stay = agent_client.get(f"/desk/tickets/{source.reference}/", {"stay": "1"})
    assert stay.status_code == 200 and stay.context["ticket"].pk == source.pk


def test_merge_refusals_are_400_with_nothing_written(agent_client, pair, billing):
    source, target = pair
    other = inbound_message_receive(inbound=inbound(sender=SenderIdentity("email", "bo@example.net", "Bo"))).ticket
    hidden = inbound_message_receive(inbound=inbound(subject="Elsewhere", queue=billing.slug)).ticket
    url = f"/desk/tickets/{source.reference}/merge/"

    for target_reference, reason in (
        (source.reference, "A ticket cannot be merged into itself."),
        (other.reference, "Only tickets of the same customer can be merged."),
        (hidden.reference, f"No ticket {hidden.reference} that you can see."),
        ("", "Name the ticket to merge into."),
    ):
        answer = agent_client.post(url, {"target": target_reference})
        assert answer.status_code == 400, target_reference
        assert reason in answer.content.decode()
    assert not TicketEvent.objects.filter(kind__in=["merged", "merged_in"]).exists()
    assert agent_client.get(f"/desk/tickets/{hidden.reference}/merge/").status_code == 404
    assert (
        agent_client.post(f"/desk/tickets/{hidden.reference}/merge/", {"target": target.reference}).status_code == 404
    )


def test_split_a_customer_message_from_the_page(agent_client, queue, agent):
    first = inbound_message_receive(inbound=inbound())
    second = inbound_message_receive(
        inbound=inbound(text="Also my password reset.", ticket_reference=first.ticket.reference)
    ).message
    ticket = first.ticket
    url = f"/desk/tickets/{ticket.reference}/messages/{second.pk}/split/"

    form = agent_client.get(url)
    assert form.status_code == 200 and 'value="Also my password reset."' in form.content.decode()
    answer = agent_client.post(url, {"subject": "Password reset", "queue": queue.slug})

    new = Ticket.objects.get(subject="Password reset")
    assert (answer.status_code, answer["Location"]) == (302, f"/desk/tickets/{new.reference}/")
    assert Message.objects.get(pk=second.pk).ticket_id == new.pk
    assert TicketEvent.objects.filter(ticket=ticket, kind="split").count() == 1
    timeline = agent_client.get(answer["Location"]).content.decode()
    assert ticket.reference in timeline


def test_split_refusals_and_access(agent_client, queue, agent, billing):
    ticket = inbound_message_receive(inbound=inbound()).ticket
    only = Message.objects.get(ticket=ticket, kind="public_enduser")
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Hello", deliver=False)
    hidden = inbound_message_receive(inbound=inbound(subject="Elsewhere", queue=billing.slug)).ticket
    hidden_message = Message.objects.get(ticket=hidden, kind="public_enduser")
    tickets = Ticket.objects.count()

    refused_only = agent_client.post(f"/desk/tickets/{ticket.reference}/messages/{only.pk}/split/", {"subject": "x"})
    refused_reply = agent_client.post(f"/desk/tickets/{ticket.reference}/messages/{reply.pk}/split/", {})
    bad_queue = agent_client.post(f"/desk/tickets/{ticket.reference}/messages/{only.pk}/split/", {"queue": "billing"})

    assert refused_only.status_code == 400
    assert "The only message of a ticket cannot be split off." in refused_only.content.decode()
    assert refused_reply.status_code == 400
    assert bad_queue.status_code == 400 and "No such queue." in bad_queue.content.decode()
    assert agent_client.get(f"/desk/tickets/{hidden.reference}/messages/{hidden_message.pk}/split/").status_code == 404
    assert agent_client.post(f"/desk/tickets/{ticket.reference}/messages/{hidden_message.pk}/split/").status_code == 404
    assert Ticket.objects.count() == tickets


def test_forms_need_csrf(pair, agent):
    from django.test import Client

    source, target = pair
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)

    assert client.post(f"/desk/tickets/{source.reference}/merge/", {"target": target.reference}).status_code == 403
    assert Ticket.objects.get(pk=source.pk).merged_into_id is None
