"""The workspace updates itself, in Chromium, against the real ASGI server with the Redis channel layer.

A customer writes in through the web form and the new ticket appears in an
agent's open inbox; another agent changes it and the row follows; on the
ticket page a colleague's note appears while the agent's unsent reply stays
as typed. Nothing is reloaded by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from servicedesk.tickets.models import Ticket
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.browser.test_reports import collect_errors
from tests.e2e.test_live_desk import serve, stop
from tests.factories import AgentFactory, QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desk_server(tmp_path: Path, e2e_redis_url: str) -> Iterator[str]:
    # Static files from the apps, as in development (no collectstatic);
    # acknowledgements go to var/mail at once, no worker needed here.
    server, port, _ = serve(tmp_path, "web", redis_url=e2e_redis_url, DEBUG="true", CELERY_TASK_ALWAYS_EAGER="true")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def signed_in(browser, url: str, user) -> object:  # noqa: F811
    """A browser page with ``user``'s session (made here, in the shared database)."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(locale="en-GB")
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": url,
            }
        ]
    )
    return context.new_page()


def test_the_inbox_and_the_ticket_page_follow_changes_made_elsewhere(browser, desk_server, tmp_path):  # noqa: F811
    url = desk_server
    queue = QueueFactory(slug="support", name="Support")
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", queues=[queue])
    cid_user = AgentFactory(username="cid", display_name="Cid Agent", queues=[queue])

    ann = signed_in(browser, url, ann_user)
    cid = signed_in(browser, url, cid_user)
    errors = collect_errors(ann) + collect_errors(cid)
    ann.goto(f"{url}/desk/")
    ann.wait_for_function("document.documentElement.dataset.live === 'connected'")

    # 1. A customer writes in; the ticket appears in Ann's open inbox.
    customer = browser.new_context(locale="en-GB").new_page()
    customer.goto(f"{url}/help/contact/")
    customer.fill("input[name=name]", "Alice Byrne")
    customer.fill("input[name=email]", "alice@example.com")
    customer.fill("input[name=subject]", "Charged twice for October")
    customer.fill("textarea[name=message]", "My card was charged twice for the October invoice.")
    customer.click("form button[type=submit]")
    customer.wait_for_url(re.compile(r"/help/contact/received/"))
    reference = re.search(r"SD-\d+", customer.inner_text("main")).group(0)
    row = ann.locator(f"tr.ticket-row[data-reference='{reference}']")
    row.wait_for(timeout=15000)
    assert "Charged twice for October" in row.inner_text()
    assert ann.inner_text("#live-status") == "Updated with the latest changes."

    # 2. Cid raises the priority on the ticket page; Ann's row follows.
    cid.goto(f"{url}/desk/tickets/{reference}/")
    cid.select_option("#props_priority", "urgent")
    cid.click("#properties [name=action][value=update]")
    cid.wait_for_selector("li.flash-success")
    ann.wait_for_selector(f"tr.ticket-row[data-reference='{reference}'] .badge.priority-urgent", timeout=15000)
    ann.screenshot(path=str(tmp_path / "inbox-live.png"), full_page=True)

    # 3. Ann opens the ticket and starts a reply; Cid adds a note. It appears on
    # Ann's page; her unsent text stays.
    ann.goto(f"{url}/desk/tickets/{reference}/")
    ann.wait_for_function("document.documentElement.dataset.live === 'connected'")
    ann.fill("#reply_text", "Half-written answer")
    cid.fill("#reply_text", "Refund approved by billing.")
    cid.check("#reply_kind_1")
    cid.click("#reply-form [name=action][value=send]")
    cid.wait_for_selector("li.flash-success")
    ann.wait_for_selector("article.msg:has-text('Refund approved by billing.')", timeout=15000)
    assert ann.input_value("#reply_text") == "Half-written answer"
    assert ann.inner_text("#ticket-priority") == "Urgent"
    ann.screenshot(path=str(tmp_path / "ticket-live.png"), full_page=True)

    assert Ticket.objects.get(reference=reference).priority == "urgent"
    assert errors == []
