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


# --- Presence, the bell, the forms kept, and catching up after a drop -------------------


@pytest.fixture
def pushes_through_redis(settings, e2e_redis_url: str) -> Iterator[None]:
    """This process pushes through the server's Redis layer, as the Celery worker does."""
    import os

    from servicedesk.core.realtime import realtime_flush
    from servicedesk.settings.channel_layers import redis_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(e2e_redis_url, prefix=os.environ.get("CACHE_KEY_PREFIX", "sd") + ":asgi")
    }
    yield
    realtime_flush(timeout=5)


def connected(page) -> None:
    page.wait_for_function("document.documentElement.dataset.live === 'connected'", timeout=20000)


def test_agents_on_one_ticket_see_who_else_views_and_types(browser, desk_server):  # noqa: F811
    from tests.factories import CustomerFactory, ticket_make

    url = desk_server
    queue = QueueFactory(slug="support", name="Support")
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", queues=[queue])
    # A name with markup in it is shown as the text it is.
    cid_user = AgentFactory(username="cid", display_name="Cid <i>Agent</i>", queues=[queue])
    ticket = ticket_make(queue=queue, customer=CustomerFactory())
    page = f"{url}/desk/tickets/{ticket.reference}/"

    ann = signed_in(browser, url, ann_user)
    cid = signed_in(browser, url, cid_user)
    errors = collect_errors(ann) + collect_errors(cid)
    ann.goto(page)
    connected(ann)
    assert ann.inner_text("#ticket-viewers") == ""

    cid.goto(page)
    connected(cid)
    ann.wait_for_function(
        "document.getElementById('ticket-viewers').textContent === 'Also viewing: Cid <i>Agent</i>'", timeout=15000
    )
    assert ann.locator("#ticket-viewers i").count() == 0
    cid.wait_for_function(
        "document.getElementById('ticket-viewers').textContent === 'Also viewing: Ann Agent'", timeout=15000
    )
    assert ann.get_attribute("#ticket-viewers", "aria-live") == "polite"

    # Cid types a note: Ann sees it; Cid never sees himself typing.
    cid.check("#reply_kind_1")
    cid.type("#reply_text", "Checking with billing", delay=20)
    ann.wait_for_function(
        "document.getElementById('ticket-typing').textContent === 'Cid <i>Agent</i> is typing…'", timeout=15000
    )
    assert cid.inner_text("#ticket-typing") == ""
    # Shown for a few seconds after the last keystroke, then gone.
    ann.wait_for_function("document.getElementById('ticket-typing').textContent === ''", timeout=15000)

    # Cid goes back to the inbox: Ann sees him leave.
    cid.goto(f"{url}/desk/")
    ann.wait_for_function("document.getElementById('ticket-viewers').textContent === ''", timeout=15000)
    assert errors == []


def test_the_bell_counts_live_from_any_process(browser, desk_server, pushes_through_redis):  # noqa: F811
    from servicedesk.core.realtime import realtime_flush
    from servicedesk.notifications.services import notification_mark_read, notification_send

    url = desk_server
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", queues=[QueueFactory(slug="support")])
    ann = signed_in(browser, url, ann_user)
    errors = collect_errors(ann)
    ann.goto(f"{url}/desk/")
    connected(ann)
    assert ann.locator("#desk-bell .badge").count() == 0
    assert ann.get_attribute("#desk-bell", "aria-label") == "0 unread notifications"

    # Stored by another process (this one, as the worker's SLA check would): the bell rings.
    first = notification_send(user=ann_user, kind="sla_warning", key="w1", title="SD-1 due soon", email=False)
    assert first is not None and realtime_flush(timeout=5)
    ann.wait_for_selector("#desk-bell .badge[data-unread='1']", timeout=15000)
    assert ann.inner_text("#desk-bell .badge") == "1"
    assert ann.get_attribute("#desk-bell", "aria-label") == "1 unread notification"
    assert "desk-bell-unread" in ann.get_attribute("#desk-bell", "class")

    notification_send(user=ann_user, kind="sla_warning", key="w2", title="SD-2 due soon", email=False)
    assert realtime_flush(timeout=5)
    ann.wait_for_selector("#desk-bell .badge[data-unread='2']", timeout=15000)
    assert ann.get_attribute("#desk-bell", "title") == "2 unread notifications"

    notification_mark_read(user=ann_user)
    assert realtime_flush(timeout=5)
    ann.wait_for_function("!document.querySelector('#desk-bell .badge')", timeout=15000)
    assert ann.get_attribute("#desk-bell", "aria-label") == "0 unread notifications"
    assert "desk-bell-unread" not in ann.get_attribute("#desk-bell", "class")
    assert errors == []


def test_a_refresh_keeps_the_form_and_its_version_so_a_stale_save_is_refused(browser, desk_server):  # noqa: F811
    from servicedesk.tickets.models import Message
    from tests.factories import CustomerFactory, ticket_make

    url = desk_server
    queue = QueueFactory(slug="support", name="Support")
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", queues=[queue])
    cid_user = AgentFactory(username="cid", display_name="Cid Agent", queues=[queue])
    ticket = ticket_make(queue=queue, customer=CustomerFactory())
    page = f"{url}/desk/tickets/{ticket.reference}/"
    messages_before = Message.objects.filter(ticket=ticket).count()

    ann = signed_in(browser, url, ann_user)
    cid = signed_in(browser, url, cid_user)
    errors = collect_errors(ann) + collect_errors(cid)
    ann.goto(page)
    connected(ann)
    loaded_version = ann.input_value("[name=version]")
    ann.select_option("#props_priority", "low")
    ann.fill("#reply_text", "We lowered the priority.")

    # Cid raises it meanwhile; Ann's page shows it, her form stays as she left it.
    cid.goto(page)
    cid.select_option("#props_priority", "urgent")
    cid.click("#properties [name=action][value=update]")
    cid.wait_for_selector("li.flash-success")
    ann.wait_for_function("document.getElementById('ticket-priority').textContent === 'Urgent'", timeout=15000)
    assert ann.input_value("#reply_text") == "We lowered the priority."
    assert ann.input_value("#props_priority") == "low"
    assert ann.input_value("[name=version]") == loaded_version
    assert Ticket.objects.get(pk=ticket.pk).version > int(loaded_version)

    # Her save is refused as a conflict: nothing of hers overwrites Cid's change.
    ann.click("#reply-form [name=action][value=send]")
    ann.wait_for_selector("li.flash-error")
    assert "Nothing was saved. The newer values are shown; check your choices and submit again." in ann.inner_text(
        "ul.flash"
    )
    assert ann.input_value("#reply_text") == "We lowered the priority."
    assert Ticket.objects.get(pk=ticket.pk).priority == "urgent"
    assert Message.objects.filter(ticket=ticket).count() == messages_before
    assert [e for e in errors if "409" not in e] == []


def test_after_a_drop_the_workspace_catches_up_even_on_a_change_committed_late(
    browser,  # noqa: F811 (the fixture)
    tmp_path,
    e2e_redis_url,
    pushes_through_redis,
):
    """A change whose event id is below the cursor (its transaction committed late) is not in the
    resume; the page read again on reconnecting shows it, and the bell is caught up too."""
    import threading

    from django.db import connection as db_connection
    from django.db import transaction

    from servicedesk.core.realtime import realtime_flush
    from servicedesk.notifications.services import notification_send
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.models import TicketEvent
    from servicedesk.tickets.services.tickets import ticket_priority_change
    from tests.factories import CustomerFactory, ticket_make

    server, port, _ = serve(tmp_path, "web", redis_url=e2e_redis_url, DEBUG="true", CELERY_TASK_ALWAYS_EAGER="true")
    url = f"http://127.0.0.1:{port}"
    try:
        queue = QueueFactory(slug="support", name="Support")
        ann_user = AgentFactory(username="ann", display_name="Ann Agent", queues=[queue])
        late, early = (ticket_make(queue=queue, customer=CustomerFactory()) for _ in range(2))
        ann = signed_in(browser, url, ann_user)
        ann.goto(f"{url}/desk/")
        connected(ann)

        # The late transaction takes its event id first and commits last.
        written, release = threading.Event(), threading.Event()

        def late_change() -> None:
            try:
                with transaction.atomic():
                    ticket = Ticket.objects.get(pk=late.pk)
                    ticket_priority_change(ticket=ticket, priority="urgent", actor=Actor.system(source="test"))
                    written.set()
                    release.wait(60)
            finally:
                db_connection.close()

        writer = threading.Thread(target=late_change)
        writer.start()
        assert written.wait(30)
        ticket = Ticket.objects.get(pk=early.pk)
        ticket_priority_change(ticket=ticket, priority="high", actor=Actor.system(source="test"))
        assert realtime_flush(timeout=5)
        # Ann's inbox follows the early change: her cursor is now past the late change's event id.
        ann.wait_for_selector(f"tr.ticket-row[data-reference='{early.reference}'] .badge.priority-high", timeout=15000)

        # The server goes away; meanwhile the late change commits and a notice is stored.
        stop(server)
        ann.wait_for_function("document.documentElement.dataset.live === 'reconnecting'", timeout=15000)
        release.set()
        writer.join(30)
        late_event = TicketEvent.objects.filter(ticket=late).latest("pk").pk
        assert late_event < TicketEvent.objects.filter(ticket=early).latest("pk").pk
        notification_send(user=ann_user, kind="sla_warning", key="away", title="Due soon", email=False)
        assert Ticket.objects.get(pk=late.pk).priority == "urgent"
        assert ann.locator(f"tr.ticket-row[data-reference='{late.reference}'] .badge.priority-urgent").count() == 0

        # Back on the same address: the page reconnects, resumes, and reads the view again.
        server, _, _ = serve(
            tmp_path, "web-again", redis_url=e2e_redis_url, port=port, DEBUG="true", CELERY_TASK_ALWAYS_EAGER="true"
        )
        connected(ann)
        ann.wait_for_selector(f"tr.ticket-row[data-reference='{late.reference}'] .badge.priority-urgent", timeout=20000)
        ann.wait_for_selector("#desk-bell .badge[data-unread='1']", timeout=15000)
    finally:
        stop(server)
