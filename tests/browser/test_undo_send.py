"""Undo send in Chromium: the countdown of a held reply ends with what the server says became of it."""

from __future__ import annotations

import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import HeldReply, Message
from servicedesk.tickets.services.drafts import held_reply_release
from servicedesk.tickets.services.tickets import ticket_merge
from tests.browser.test_reports import collect_errors, sign_in
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATE = ".held-reply .held-reply-state"


def test_the_countdown_says_sent_once_sent_and_not_sent_when_returned(browser, live_server, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 2}
    queue = QueueFactory(slug="support", name="Support")
    AgentFactory(username="ann", display_name="Ann Agent", queues=[queue], password="ann-secret-42")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    ticket = ticket_make(customer=alice, queue=queue, subject="Charged twice")
    target = ticket_make(customer=alice, queue=queue, subject="Refund")

    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    address = f"/desk/tickets/{ticket.reference}/"
    sign_in(page, live_server.url, "ann", "ann-secret-42", then=address)

    # Sent: "Sending in 2 s", then "Sending…" with no Undo for as long as the release has not run.
    page.fill("#reply_text", "The refund is on its way.")
    page.click("#reply-form button[name=action][value=send]")
    page.wait_for_selector(f"{STATE}:has-text('Sending in')")
    held = HeldReply.objects.get()
    page.wait_for_selector(f"{STATE}:has-text('Sending…')")
    assert page.locator(".held-reply .held-reply-undo").count() == 0
    page.wait_for_timeout(2500)  # the page asks again meanwhile, and is told "sending"
    assert page.text_content(STATE) == "Sending…"
    assert held_reply_release(held_id=held.pk) is not None
    page.wait_for_selector(f"{STATE}:has-text('Sent')")
    assert page.text_content(STATE) == "Sent"
    assert list(Message.objects.filter(ticket=ticket, kind="public_agent").values_list("text", flat=True)) == [
        "The refund is on its way."
    ]

    # Returned: the ticket was merged meanwhile, so the release keeps the reply; the page says why and links to it.
    page.goto(f"{live_server.url}{address}")
    page.fill("#reply_text", "And a second thing.")
    page.click("#reply-form button[name=action][value=send]")
    page.wait_for_selector(f"{STATE}:has-text('Sending in')")
    second = HeldReply.objects.get()
    ticket_merge(source=ticket, target=target, actor=Actor.system())
    page.wait_for_selector(f"{STATE}:has-text('Sending…')")
    assert held_reply_release(held_id=second.pk) is None
    page.wait_for_selector(f"{STATE}:has-text('Not sent')")
    assert page.text_content(STATE) == (
        "Not sent: the ticket it was written on was merged into another one."
        " Open it to put it back in the reply box or discard it"
    )
    link = page.get_attribute(f"{STATE} a", "href")
    assert link == f"/desk/tickets/{target.reference}/#returned-reply-{second.pk}"
    page.click(f"{STATE} a")
    page.wait_for_selector(f"#returned-reply-{second.pk}:has-text('And a second thing.')")
    assert "Sent" not in page.text_content(f"#returned-reply-{second.pk}")
    assert errors == []
