"""Two agents on one ticket: the page applies only what its agent changed, and refuses
a field someone else changed since the page was loaded (docs/architecture.md,
"Concurrent changes")."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.factories import AgentFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def colleague(queue):
    return AgentFactory(username="cid", display_name="Cid Agent", queues=[queue])


@pytest.fixture
def colleague_client(colleague) -> Client:
    client = Client()
    client.force_login(colleague)
    return client


@pytest.fixture
def ticket(queue, customer) -> Ticket:
    return ticket_make(customer=customer, queue=queue, subject="Printer on fire")


def loaded(client: Client, ticket: Ticket) -> dict[str, Any]:
    """The ticket page's form as the browser would submit it untouched: properties and their originals."""
    response = client.get(f"/desk/tickets/{ticket.reference}/")
    assert response.status_code == 200
    form = response.context["properties_form"]
    data = form.data if form.is_bound else form.initial
    return {name: ("" if value is None else value) for name, value in data.items()}


def events(ticket: Ticket) -> list[tuple[str, Any, Any, str | None]]:
    return [
        (e.kind, e.before, e.after, e.actor_user.username if e.actor_user else None)
        for e in TicketEvent.objects.filter(ticket=ticket).exclude(kind="created").order_by("id")
    ]


def test_a_stale_page_changing_only_the_status_keeps_the_other_agents_priority(agent_client, colleague_client, ticket):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)

    first = agent_client.post(
        f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "urgent", "action": "update"}
    )
    second = colleague_client.post(
        f"/desk/tickets/{ticket.reference}/update/", {**cid_page, "status": "pending", "action": "update"}
    )

    assert (first.status_code, second.status_code) == (302, 302)
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.status) == ("urgent", "pending")
    assert events(ticket) == [("priority", "normal", "urgent", "ann"), ("status", "new", "pending", "cid")]
    assert ticket.version == 3


def test_a_field_changed_since_loading_is_refused_with_the_newer_value_and_who(agent_client, colleague_client, ticket):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "status": "pending"})

    response = colleague_client.post(
        f"/desk/tickets/{ticket.reference}/update/",
        {**cid_page, "status": "solved", "priority": "high", "action": "update"},
    )

    assert response.status_code == 409
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.version) == ("pending", "normal", 2)
    assert events(ticket) == [("status", "new", "pending", "ann")]
    content = response.content.decode()
    assert "Status was changed to Pending by Ann after you opened this ticket." in content
    assert "Nothing was saved. The newer values are shown; check your choices and submit again." in content
    # The newer value in the summary; the agent's own choices kept, now compared with the newer values.
    assert '<span class="badge status-pending" id="ticket-status">Pending</span>' in content
    assert '<option value="solved" selected>Solved</option>' in content
    assert '<option value="high" selected>High</option>' in content
    assert '<input type="hidden" name="original_status" value="pending" form="reply-form"' in content

    again = colleague_client.post(
        f"/desk/tickets/{ticket.reference}/update/", {**response.context["properties_form"].data, "action": "update"}
    )

    assert again.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == ("solved", "high")


def test_the_refusal_is_in_chinese_for_a_chinese_agent(agent_client, colleague_client, ticket):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "urgent"})

    response = colleague_client.post(
        f"/desk/tickets/{ticket.reference}/update/",
        {**cid_page, "priority": "low", "action": "update"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )

    assert response.status_code == 409
    assert "在您打开此工单之后，Ann 已将优先级改为 紧急。" in response.content.decode()  # noqa: RUF001 (Chinese punctuation)


def test_the_same_change_made_by_both_agents_is_no_conflict(agent_client, colleague_client, ticket):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "urgent"})

    response = colleague_client.post(f"/desk/tickets/{ticket.reference}/update/", {**cid_page, "priority": "urgent"})

    assert response.status_code == 302
    assert events(ticket) == [("priority", "normal", "urgent", "ann")]


def test_a_reply_sent_from_a_stale_page_keeps_the_other_agents_changes(
    agent_client, colleague_client, ticket, django_capture_on_commit_callbacks
):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "urgent", "tags": "vip"})

    with django_capture_on_commit_callbacks(execute=True):
        response = colleague_client.post(
            f"/desk/tickets/{ticket.reference}/reply/",
            {**cid_page, "text": "On it.", "kind": "note", "action": "send"},
        )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.priority == "urgent"
    assert list(ticket.tags.values_list("name", flat=True)) == ["vip"]
    assert Message.objects.get(ticket=ticket, kind="internal").text == "On it."


def test_a_typed_reply_is_kept_when_the_properties_are_updated(agent_client, ticket):
    page = loaded(agent_client, ticket)

    response = agent_client.post(
        f"/desk/tickets/{ticket.reference}/update/",
        {**page, "priority": "high", "text": "Half-written answer", "kind": "note", "action": "update"},
    )

    assert response.status_code == 200
    ticket.refresh_from_db()
    assert ticket.priority == "high"
    assert not Message.objects.filter(ticket=ticket, kind__in=["internal", "public_agent"]).exists()
    content = response.content.decode()
    assert "The ticket was updated." in content
    assert "Your reply has not been sent yet." in content
    assert ">\nHalf-written answer</textarea>" in content
    assert 'name="kind" value="note" id="reply_kind_1" checked' in content
    # The page now compares with the updated values.
    assert '<input type="hidden" name="original_priority" value="high" form="reply-form"' in content


def test_a_property_change_is_applied_with_the_reply(agent_client, agent, ticket, django_capture_on_commit_callbacks):
    page = loaded(agent_client, ticket)

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{ticket.reference}/reply/",
            {**page, "priority": "high", "status": "pending", "text": "Unplug it.", "kind": "reply", "action": "send"},
        )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.status) == ("high", "pending")
    reply = Message.objects.get(ticket=ticket, kind="public_agent")
    assert reply.text == "Unplug it."
    assert [(kind, before, after) for kind, before, after, _who in events(ticket) if kind != "delivery"] == [
        ("priority", "normal", "high"),
        ("message", None, {"kind": "public_agent", "channel": "web"}),
        ("status", "new", "pending"),
    ]


def test_send_and_set_solved(agent_client, ticket):
    page = loaded(agent_client, ticket)

    response = agent_client.post(
        f"/desk/tickets/{ticket.reference}/reply/",
        {**page, "text": "Fixed.", "kind": "note", "action": "send_solved"},
    )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    assert Message.objects.get(ticket=ticket, kind="internal").text == "Fixed."


def test_a_reply_with_a_conflicting_property_is_kept_and_nothing_is_written(agent_client, colleague_client, ticket):
    ann_page = loaded(agent_client, ticket)
    cid_page = loaded(colleague_client, ticket)
    ticket_status_change(ticket=ticket, status="open", actor=Actor.system())
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "low"})

    response = colleague_client.post(
        f"/desk/tickets/{ticket.reference}/reply/",
        {**cid_page, "priority": "urgent", "text": "Escalating this.", "kind": "reply", "action": "send"},
    )

    assert response.status_code == 409
    content = response.content.decode()
    assert "Priority was changed to Low by Ann after you opened this ticket." in content
    assert ">\nEscalating this.</textarea>" in content
    ticket.refresh_from_db()
    assert ticket.priority == "low"
    assert not Message.objects.filter(ticket=ticket, kind="public_agent").exists()


def test_a_status_changed_by_the_system_names_the_system(agent_client, ticket):
    page = loaded(agent_client, ticket)
    ticket_status_change(ticket=ticket, status="open", actor=Actor.system())

    response = agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {**page, "status": "pending"})

    assert response.status_code == 409
    assert "Status was changed to Open by the system after you opened this ticket." in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == "open"


def test_a_stale_pages_spam_button_writes_only_the_value_it_names(agent_client, colleague_client, ticket):
    """The spam form posts the value its button names (not a toggle); the service writes only
    ``is_spam``, under the ticket's lock, and nothing when the ticket already has that value."""
    ann_page = loaded(agent_client, ticket)
    colleague_client.post(
        f"/desk/tickets/{ticket.reference}/update/", {**ann_page, "priority": "urgent", "action": "update"}
    )

    first = agent_client.post(f"/desk/tickets/{ticket.reference}/spam/", {"spam": "1"})
    # A second stale page still shows "Mark as spam": the same value again changes nothing.
    again = colleague_client.post(f"/desk/tickets/{ticket.reference}/spam/", {"spam": "1"})

    assert (first.status_code, again.status_code) == (302, 302)
    ticket.refresh_from_db()
    assert (ticket.is_spam, ticket.priority, ticket.version) == (True, "urgent", 3)
    assert events(ticket) == [("priority", "normal", "urgent", "cid"), ("spam", False, True, "ann")]


def test_a_stale_pages_delete_button_writes_only_the_value_it_names(manager, colleague_client, ticket):
    manager_client = Client()
    manager_client.force_login(manager)
    page = loaded(colleague_client, ticket)
    colleague_client.post(f"/desk/tickets/{ticket.reference}/update/", {**page, "status": "pending"})

    first = manager_client.post(f"/desk/tickets/{ticket.reference}/delete/", {"deleted": "1"})
    again = manager_client.post(f"/desk/tickets/{ticket.reference}/delete/", {"deleted": "1"})

    assert (first.status_code, again.status_code) == (302, 302)
    ticket.refresh_from_db()
    assert (ticket.is_deleted, ticket.status, ticket.version) == (True, "pending", 3)
    assert events(ticket) == [("status", "new", "pending", "cid"), ("deleted", False, True, "max")]
