"""Two agents on one ticket in two browsers: a stale page changes only what its agent
changed, and a field changed by the other agent since loading is refused, in place."""

from __future__ import annotations

import re

import pytest

from servicedesk.tickets.models import Message, Ticket, TicketEvent
from tests.browser.test_reports import collect_errors, sign_in
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_two_agents_change_priority_and_status_on_one_ticket(browser, live_server, tmp_path):
    queue = QueueFactory(slug="support", name="Support")
    AgentFactory(username="ann", display_name="Ann Agent", queues=[queue], password="ann-secret-42")
    AgentFactory(username="cid", display_name="Cid Agent", queues=[queue], password="cid-secret-42")
    ticket = ticket_make(queue=queue, subject="Printer on fire")
    path = f"/desk/tickets/{ticket.reference}/"

    ann = browser.new_context(locale="en-GB").new_page()
    cid = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(ann) + collect_errors(cid)
    sign_in(ann, live_server.url, "ann", "ann-secret-42", then=path)
    sign_in(cid, live_server.url, "cid", "cid-secret-42", then=path)

    # Ann sets the priority to Urgent; Cid, on the page loaded before, sets the status to Pending.
    ann.select_option("#props_priority", "urgent")
    ann.click("#properties [name=action][value=update]")
    ann.wait_for_selector("li.flash-success:has-text('The ticket was updated.')")
    cid.select_option("#props_status", "pending")
    cid.click("#properties [name=action][value=update]")
    cid.wait_for_selector("li.flash-success:has-text('The ticket was updated.')")

    assert cid.inner_text("#ticket-priority") == "Urgent"
    assert cid.inner_text("#ticket-status") == "Pending"
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.status) == ("urgent", "pending")
    cid.screenshot(path=str(tmp_path / "both-changes.png"), full_page=True)

    # Ann, still on her page showing New, types a note and moves the status herself: refused, kept.
    ann.fill("#reply_text", "Replacing the fuser.")
    ann.check("#reply_kind_1")
    ann.select_option("#props_status", "on_hold")
    ann.click("#reply-form [name=action][value=send]")
    ann.wait_for_selector("li.flash-error:has-text('Status was changed to Pending by Cid Agent')")
    assert ann.inner_text("#ticket-status") == "Pending"
    assert ann.input_value("#reply_text") == "Replacing the fuser."
    assert ann.input_value("#props_status") == "on_hold"
    ann.screenshot(path=str(tmp_path / "conflict.png"), full_page=True)
    ticket.refresh_from_db()
    assert ticket.status == "pending"
    assert not Message.objects.filter(ticket=ticket, kind="internal").exists()

    # Having seen the newer value, she sends again: now her choice applies.
    ann.click("#reply-form [name=action][value=send]")
    ann.wait_for_selector("li.flash-success:has-text('Your internal note was added.')")
    assert ann.inner_text("#ticket-status") == "On hold"
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.status) == ("urgent", "on_hold")
    assert Message.objects.get(ticket=ticket, kind="internal").text == "Replacing the fuser."
    assert list(
        TicketEvent.objects.filter(ticket=ticket, kind__in=["priority", "status"])
        .order_by("id")
        .values_list("kind", "after", "actor_user__username")
    ) == [("priority", "urgent", "ann"), ("status", "pending", "cid"), ("status", "on_hold", "ann")]
    # The refused submission answered 409; the browser reports that response and nothing else.
    assert [e for e in errors if not re.search(r"status of 409", e)] == []
    assert Ticket.objects.count() == 1
