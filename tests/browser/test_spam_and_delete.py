"""What agents and managers click to set a ticket aside: spam, delete and restore."""

from __future__ import annotations

import re

import pytest

from servicedesk.tickets.models import Ticket, TicketEvent
from tests.browser.test_reports import collect_errors, sign_in
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_marks_spam_and_a_manager_deletes_and_restores(browser, live_server, tmp_path):
    queue = QueueFactory(slug="support", name="Support")
    AgentFactory(username="ann", queues=[queue], password="ann-secret-42")
    AgentFactory(username="max", role="manager", password="max-secret-42")
    junk = ticket_make(queue=queue, subject="Cheap watches")
    mistake = ticket_make(queue=queue, subject="Opened by mistake")

    agent = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(agent)
    sign_in(agent, live_server.url, "ann", "ann-secret-42", then=f"/desk/tickets/{junk.reference}/")
    assert agent.locator("form.delete-form").count() == 0
    agent.click("form.spam-form button")
    agent.wait_for_url(f"{live_server.url}/desk/")
    assert agent.locator(f"tr.ticket-row[data-reference='{junk.reference}']").count() == 0
    agent.click("a.spam-view")
    agent.wait_for_url(re.compile(r"/desk/\?spam=1$"))
    assert agent.locator("tr.ticket-row").count() == 1
    assert agent.locator(f"tr.ticket-row[data-reference='{junk.reference}']").count() == 1
    agent.screenshot(path=str(tmp_path / "spam-view.png"), full_page=True)

    manager = browser.new_context(locale="zh-CN").new_page()
    errors += collect_errors(manager)
    sign_in(manager, live_server.url, "max", "max-secret-42", then=f"/desk/tickets/{mistake.reference}/")
    assert manager.locator("form.delete-form button").inner_text() == "删除"
    manager.click("form.delete-form button")
    manager.wait_for_url(f"{live_server.url}/desk/")
    manager.click("a.deleted-view")
    manager.wait_for_url(re.compile(r"/desk/\?deleted=1$"))
    manager.locator(f"tr.ticket-row[data-reference='{mistake.reference}'] a.ticket-link").click()
    manager.wait_for_url(re.compile(rf"/desk/tickets/{mistake.reference}/$"))
    assert manager.locator("form.delete-form button").inner_text() == "恢复"
    manager.click("form.delete-form button")
    manager.wait_for_selector("form.delete-form button:has-text('删除')")
    manager.screenshot(path=str(tmp_path / "restored.png"), full_page=True)

    junk.refresh_from_db()
    mistake.refresh_from_db()
    assert (junk.is_spam, mistake.is_deleted) == (True, False)
    assert list(TicketEvent.objects.filter(ticket=mistake, kind="deleted").values_list("after", flat=True)) == [
        True,
        False,
    ]
    assert Ticket.objects.filter(is_spam=False, is_deleted=False).count() == 1
    assert errors == []
