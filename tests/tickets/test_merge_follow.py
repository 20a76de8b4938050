"""Every path that follows a merge applies the direct access rule to the target: a ticket
merged into a deleted one leads nowhere, and nothing written there reopens the target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from servicedesk.tickets.access import portal_token_for, ticket_merge_target_for, ticket_thread_target
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import (
    ticket_delete_set,
    ticket_merge,
    ticket_spam_set,
    ticket_status_change,
)
from servicedesk.tickets.threading import reply_token_for
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

AT = datetime(2025, 10, 24, 15, 30, tzinfo=UTC)


def inbound(**kwargs) -> InboundMessage:  # type: ignore[no-untyped-def]
    defaults = dict(
        channel="email",
        external_id=str(uuid.uuid4()),
        sender=SenderIdentity("email", "alice@example.com", "Alice Byrne"),
        subject="Invoice twice",
        text="I was charged twice.",
    )
    defaults.update(kwargs)
    return InboundMessage(**defaults)


@pytest.fixture
def merged(queue, manager) -> tuple[Ticket, Ticket]:
    """Alice's first mail (Message-ID <first@example.com>) merged into her second, which a manager then deleted."""
    source = inbound_message_receive(inbound=inbound(rfc_message_id="<first@example.com>")).ticket
    target = inbound_message_receive(inbound=inbound(subject="Invoice twice again")).ticket
    ticket_merge(source=source, target=target, actor=Actor.system())
    ticket_status_change(ticket=target, status="solved", actor=Actor.system())
    ticket_delete_set(ticket=target, deleted=True, actor=Actor.agent(manager))
    source.refresh_from_db()
    target.refresh_from_db()
    return source, target


def target_untouched(target: Ticket, events_before: int) -> None:
    target.refresh_from_db()
    assert (target.status, target.is_deleted) == ("solved", True)
    assert TicketEvent.objects.filter(ticket=target).count() == events_before
    assert not Message.objects.filter(ticket=target, text="Following up").exists()


# --- The access function --------------------------------------------------------


def test_the_target_is_followed_only_for_whoever_may_see_it(merged, agent, manager):
    source, target = merged

    assert ticket_merge_target_for(agent, source) is None
    assert ticket_merge_target_for(manager, source) == target
    assert ticket_thread_target(source) is None
    assert ticket_thread_target(target) is None


def test_a_live_target_is_followed(queue, agent):
    source = inbound_message_receive(inbound=inbound()).ticket
    target = inbound_message_receive(inbound=inbound(subject="Again")).ticket
    ticket_merge(source=source, target=target, actor=Actor.system())
    source.refresh_from_db()

    assert ticket_merge_target_for(agent, source) == target
    assert ticket_thread_target(source) == target
    assert ticket_merge_target_for(agent, target) is None  # not merged


# --- Desk page -------------------------------------------------------------------


def test_desk_page_of_the_source_does_not_name_a_deleted_target_to_an_agent(merged, agent):
    source, target = merged
    client = Client()
    client.force_login(agent)

    page = client.get(f"/desk/tickets/{source.reference}/")

    assert page.status_code == 200
    content = page.content.decode()
    # The timeline keeps the merge as it happened; nothing leads to the target.
    assert f'href="/desk/tickets/{target.reference}/"' not in content
    assert f"merged into {target.reference}" not in content
    assert "This ticket was merged into another ticket, which is no longer available." in content
    assert client.get(f"/desk/tickets/{target.reference}/").status_code == 404


def timeline_merges(client: Client, ticket: Ticket) -> list[str]:
    """The value shown for each merge event in the ticket page's timeline."""
    import re

    # ``stay``: the old record itself, not the redirect to the ticket it was merged into.
    content = client.get(f"/desk/tickets/{ticket.reference}/", {"stay": "1"}).content.decode()
    rows = re.findall(r'<li class="event event-merged(?:_in)?">(.*?)</li>', content, re.S)
    return [re.search(r'<span class="event-after">(.*?)</span>', row, re.S).group(1) for row in rows]  # type: ignore[union-attr]


def test_desk_timeline_of_the_source_names_a_deleted_target_only_to_a_manager(merged, agent, manager):
    source, target = merged
    as_agent, as_manager = Client(), Client()
    as_agent.force_login(agent)
    as_manager.force_login(manager)

    assert timeline_merges(as_agent, source) == ["another ticket"]
    assert target.reference not in as_agent.get(f"/desk/tickets/{source.reference}/").content.decode()
    assert timeline_merges(as_manager, source) == [target.reference]


def test_desk_timelines_name_the_other_ticket_of_a_merge_only_where_the_agent_may_see_it(queue, agent, manager):
    """A merge across queues: each side's timeline names the other ticket only to whoever sees it."""
    from tests.factories import QueueFactory

    billing = QueueFactory(slug="billing", name="Billing")
    source = inbound_message_receive(inbound=inbound(queue="billing")).ticket
    target = inbound_message_receive(inbound=inbound(subject="Again", queue=queue.slug)).ticket
    assert (source.queue_id, target.queue_id) == (billing.pk, queue.pk)
    ticket_merge(source=source, target=target, actor=Actor.system())
    as_agent, as_manager = Client(), Client()
    as_agent.force_login(agent)
    as_manager.force_login(manager)

    assert timeline_merges(as_agent, target) == ["another ticket"]
    assert source.reference not in as_agent.get(f"/desk/tickets/{target.reference}/").content.decode()
    assert timeline_merges(as_manager, target) == [source.reference]
    assert timeline_merges(as_manager, source) == [target.reference]


def test_desk_page_of_the_source_links_a_deleted_target_for_a_manager(merged, manager):
    source, target = merged
    client = Client()
    client.force_login(manager)

    content = client.get(f"/desk/tickets/{source.reference}/").content.decode()

    assert f'<a href="/desk/tickets/{target.reference}/">Go to {target.reference}</a>' in content


# --- API ---------------------------------------------------------------------------


def test_api_detail_names_the_target_only_to_whoever_may_see_it(merged, agent, manager):
    source, target = merged

    as_agent = client_for(agent).get(f"/api/v1/tickets/{source.reference}/")
    as_manager = client_for(manager).get(f"/api/v1/tickets/{source.reference}/")

    assert (as_agent.status_code, as_agent.json()["merged_into"]) == (200, None)
    assert (as_manager.status_code, as_manager.json()["merged_into"]) == (200, target.reference)
    assert client_for(agent).get(f"/api/v1/tickets/{target.reference}/messages/").status_code == 404
    assert client_for(agent).get(f"/api/v1/tickets/{target.reference}/").status_code == 404


def test_api_customer_cannot_reach_a_merged_or_deleted_ticket(merged):
    from tests.factories import UserFactory

    source, target = merged
    user = UserFactory(username="alice", email="alice@example.com")
    source.customer.user = user
    source.customer.save(update_fields=["user"])
    api = client_for(user)
    before = TicketEvent.objects.filter(ticket=target).count()

    for reference in (source.reference, target.reference):
        assert api.get(f"/api/v1/tickets/{reference}/").status_code == 404
        assert api.get(f"/api/v1/tickets/{reference}/messages/").status_code == 404
        posted = api.post(f"/api/v1/tickets/{reference}/messages/", {"text": "Following up"}, format="json")
        assert posted.status_code == 404

    target_untouched(target, before)


# --- Signed link (portal) ------------------------------------------------------------


def test_signed_link_of_the_source_is_404_and_a_reply_there_reopens_nothing(merged):
    source, target = merged
    url = reverse("web:ticket", kwargs={"token": portal_token_for(source)})
    before = TicketEvent.objects.filter(ticket=target).count()
    client = Client()

    page = client.get(url)
    reply = client.post(url, {"message": "Following up", "submission_id": str(uuid.uuid4())})

    assert (page.status_code, reply.status_code) == (404, 404)
    target_untouched(target, before)
    assert not Message.objects.filter(text="Following up").exists()


def test_signed_link_follows_the_merge_to_a_spam_target_as_the_direct_link_does(queue):
    source = inbound_message_receive(inbound=inbound()).ticket
    target = inbound_message_receive(inbound=inbound(subject="Again")).ticket
    ticket_merge(source=source, target=target, actor=Actor.system())
    ticket_spam_set(ticket=target, spam=True, actor=Actor.system())
    client = Client()

    via_merge = client.get(reverse("web:ticket", kwargs={"token": portal_token_for(source)}))
    direct = client.get(reverse("web:ticket", kwargs={"token": portal_token_for(target)}))

    # Spam never shows in the help centre (docs/help-centre.md): neither link opens it.
    assert (via_merge.status_code, direct.status_code) == (404, 404)
    ticket_spam_set(ticket=target, spam=False, actor=Actor.system())
    via_merge = client.get(reverse("web:ticket", kwargs={"token": portal_token_for(source)}))
    direct = client.get(reverse("web:ticket", kwargs={"token": portal_token_for(target)}))
    assert via_merge.context["ticket"].pk == direct.context["ticket"].pk == target.pk


# --- Intake ------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", ["thread_key", "reply_token", "subject_tag", "trusted_reference"])
def test_a_customer_reply_threading_to_the_source_opens_a_new_ticket(merged, hint):
    source, target = merged
    hints = {
        "thread_key": {"thread_keys": ("<first@example.com>",)},
        "reply_token": {"reply_token": reply_token_for(source)},
        "subject_tag": {"ticket_reference": source.reference},
        "trusted_reference": {"ticket_reference": source.reference, "reference_trusted": True},
    }[hint]
    before = TicketEvent.objects.filter(ticket=target).count()

    result = inbound_message_receive(inbound=inbound(text="Following up", received_at=AT, **hints))

    assert result.outcome is IntakeOutcome.CREATED
    assert result.ticket.pk not in (source.pk, target.pk)
    assert (result.ticket.status, result.ticket.is_deleted, result.ticket.same_issue_as_id) == ("new", False, None)
    assert result.message.ticket_id == result.ticket.pk
    target.refresh_from_db()
    assert (target.status, target.is_deleted) == ("solved", True)
    assert TicketEvent.objects.filter(ticket=target).count() == before


def test_a_customer_reply_to_a_deleted_ticket_itself_opens_a_new_ticket(queue, manager):
    deleted = inbound_message_receive(inbound=inbound(rfc_message_id="<gone@example.com>")).ticket
    ticket_delete_set(ticket=deleted, deleted=True, actor=Actor.agent(manager))

    result = inbound_message_receive(inbound=inbound(text="Hello again", thread_keys=("<gone@example.com>",)))

    assert result.outcome is IntakeOutcome.CREATED
    assert result.ticket.pk != deleted.pk
    assert list(Message.objects.filter(ticket=deleted, kind="public_enduser").values_list("text", flat=True)) == [
        "I was charged twice."
    ]


def test_a_customer_reply_follows_a_merge_to_a_spam_target_like_a_direct_reply(queue):
    source = inbound_message_receive(inbound=inbound(rfc_message_id="<s@example.com>")).ticket
    target = inbound_message_receive(inbound=inbound(subject="Again")).ticket
    ticket_merge(source=source, target=target, actor=Actor.system())
    ticket_spam_set(ticket=target, spam=True, actor=Actor.system())

    result = inbound_message_receive(inbound=inbound(text="Following up", thread_keys=("<s@example.com>",)))

    assert (result.outcome, result.ticket.pk) == (IntakeOutcome.APPENDED, target.pk)


# --- Search ------------------------------------------------------------------------------


def test_searching_the_source_reference_shows_neither_ticket_to_an_agent(merged, agent, manager):
    source, target = merged
    agent_client = Client()
    agent_client.force_login(agent)
    manager_client = Client()
    manager_client.force_login(manager)

    for reference in (source.reference, target.reference):
        page = agent_client.get("/desk/", {"q": reference})
        assert 'class="ticket-row"' not in page.content.decode()
        assert client_for(agent).get("/api/v1/tickets/", {"search": reference}).json()["count"] == 0
    deleted_view = manager_client.get("/desk/", {"q": target.reference, "deleted": "1"}).content.decode()
    assert f'data-reference="{target.reference}"' in deleted_view
