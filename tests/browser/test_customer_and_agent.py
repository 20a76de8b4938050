"""What people click: a customer submits the web form, an agent signs in and replies."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from servicedesk.tickets.models import Message, Ticket
from tests.factories import AgentFactory, QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_submits_the_form_and_an_agent_replies(browser, live_server, tmp_path):
    queue = QueueFactory(slug="support", name="Support")
    AgentFactory(username="ann", queues=[queue], password="ann-secret-42")

    # The customer writes in through the web form.
    customer = browser.new_context(locale="en-GB")
    page = customer.new_page()
    page.goto(f"{live_server.url}/help/contact/")
    page.fill("input[name=name]", "Alice Byrne")
    page.fill("input[name=email]", "alice@example.com")
    page.fill("input[name=subject]", "Charged twice for October")
    page.fill("textarea[name=message]", "My card was charged twice for the October invoice.")
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/help/contact/received/"))
    reference = re.search(r"SD-\d+", page.inner_text("main")).group(0)
    page.screenshot(path=str(tmp_path / "received.png"))

    ticket = Ticket.objects.get(reference=reference)
    assert ticket.subject == "Charged twice for October" and ticket.channel == "web"
    assert [m.to for m in mail.outbox] == [["Alice Byrne <alice@example.com>"]]
    link = re.search(r"http://\S+/help/tickets/\S+/", mail.outbox[0].body).group(0)

    # An agent signs in, finds the ticket in the inbox and replies.
    agent = browser.new_context(locale="en-GB").new_page()
    agent.goto(f"{live_server.url}/desk/")
    agent.wait_for_url(re.compile(r"/desk/login/"))
    agent.fill("#login-form input[name=username]", "ann")
    agent.fill("#login-form input[name=password]", "ann-secret-42")
    agent.click("#login-form [name=signin]")
    agent.wait_for_url(f"{live_server.url}/desk/")
    row = agent.locator(f"tr.ticket-row[data-reference='{reference}']")
    assert row.count() == 1
    row.locator("a.ticket-link").click()
    agent.wait_for_url(re.compile(rf"/desk/tickets/{reference}/$"))
    assert "My card was charged twice" in agent.inner_text("article.msg.msg-public_enduser")
    agent.fill("#reply_text", "We have refunded the second charge.")
    agent.check("#reply_kind_0")
    agent.select_option("#props_status", "solved")
    agent.click("#reply-form [name=action][value=send]")
    agent.wait_for_selector("article.msg.msg-public_agent")
    assert "We have refunded the second charge." in agent.inner_text("article.msg.msg-public_agent")
    agent.screenshot(path=str(tmp_path / "desk-ticket.png"), full_page=True)

    reply = Message.objects.get(ticket=ticket, kind="public_agent")
    assert reply.delivery_status == "sent"
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    assert mail.outbox[-1].to == ["Alice Byrne <alice@example.com>"]
    assert "We have refunded the second charge." in mail.outbox[-1].body

    # The customer opens the link from the acknowledgement and sees the answer.
    page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    assert "We have refunded the second charge." in page.inner_text("main")
    customer.close()
