"""A call pops in Chromium: the PBX's signed events reach the real ASGI server, the ringing agent's
desk shows the caller's open ticket, the agent answers, attaches the call to that ticket and writes
the wrap-up note. Nothing is reloaded by hand until the agent follows the pop's link."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from channels_app.phone.api import signature_make
from channels_app.phone.models import Call, PhoneLine
from servicedesk.tickets.models import Identity, IdentityKind, Message, Session
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.browser.test_reports import collect_errors
from tests.e2e.test_live_desk import serve, stop
from tests.e2e.test_live_workspace_browser import connected, signed_in
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "pbx-secret-browser"
CALLER = "+353861234567"
LINE = "+35312345678"


@pytest.fixture
def desk_server(tmp_path: Path, e2e_redis_url: str) -> Iterator[str]:
    server, port, _ = serve(
        tmp_path,
        "web",
        redis_url=e2e_redis_url,
        DEBUG="true",
        CELERY_TASK_ALWAYS_EAGER="true",
        SD_PHONE_WEBHOOK_SECRET=SECRET,
        SD_PHONE_REGION="IE",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def pbx(url: str, event: dict[str, Any]) -> None:
    """The telephone system posts one signed event, as a PBX script would."""
    body = json.dumps(event).encode()
    request = urllib.request.Request(
        f"{url}/api/v1/phone/events/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-ServiceDesk-Signature": signature_make(body, SECRET, int(time.time())),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_call_pops_and_the_agent_attaches_it_to_the_open_ticket_and_wraps_up(browser, desk_server):  # noqa: F811
    url = desk_server
    queue = QueueFactory(slug="support", name="Support")
    PhoneLine.objects.create(key="default", name="Main line", number=LINE, queue=queue)
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", email="ann@example.com", queues=[queue])
    customer = CustomerFactory(name="Maeve <b>Byrne</b>")
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    ticket = ticket_make(customer=customer, queue=queue, subject="Router keeps dropping")

    ann = signed_in(browser, url, ann_user)
    errors = collect_errors(ann)
    ann.goto(f"{url}/desk/")
    connected(ann)

    # The phone rings: the pop shows the caller (as text) and the open ticket.
    pbx(url, {"event": "newCall", "call_id": "b-1", "from": "086 123 4567", "to": LINE, "direction": "in",
              "user": ["ann@example.com"], "at": timezone.now().isoformat()})  # fmt: skip
    pop = ann.locator(".phone-pop[data-kind=ringing]")
    pop.wait_for(timeout=10000)
    assert "Maeve <b>Byrne</b>" in pop.locator(".phone-caller-name").inner_text()
    assert ticket.reference in pop.locator(".phone-open-tickets").inner_text()

    # Answered: the pop stays, now as the call in progress.
    pbx(url, {"event": "answer", "call_id": "b-1", "answering_user": "ann@example.com",
              "at": timezone.now().isoformat()})  # fmt: skip
    ann.locator(".phone-pop[data-kind=active]").wait_for(timeout=10000)

    # Ann attaches the call to the open ticket and lands on it.
    ann.click(f".phone-open-tickets li[data-reference='{ticket.reference}'] button[name=attach]")
    ann.wait_for_url(f"**/desk/tickets/{ticket.reference}/")
    ann.locator("article.msg .call-entry").wait_for(timeout=10000)
    assert f"Inbound call from {CALLER}" in ann.locator("article.msg .call-entry").inner_text()
    assert "Ann Agent answered the call." in ann.locator("article.msg .call-answer").inner_text()
    connected(ann)

    # The caller hangs up: the pop becomes the wrap-up form; the note is saved on the ticket.
    pbx(url, {"event": "hangup", "call_id": "b-1", "cause": "normalClearing", "at": timezone.now().isoformat()})
    wrap_up = ann.locator(".phone-pop[data-kind=wrap_up]")
    wrap_up.wait_for(timeout=10000)
    wrap_up.locator("textarea[name=note]").fill("Customer will restart the router tonight.")
    wrap_up.locator("select[name=status]").select_option("pending")
    wrap_up.locator("button[name=wrap_up]").click()
    ann.wait_for_selector("article.msg:has-text('Customer will restart the router tonight.')", timeout=10000)
    ann.wait_for_function("!document.querySelector('.phone-pop')", timeout=10000)

    call = Call.objects.get(call_id="b-1")
    assert call.ticket_id == ticket.pk and call.wrapped_up_at is not None
    ticket.refresh_from_db()
    assert ticket.status == "pending"
    assert Session.objects.get(pk=call.session_id).ticket_id == ticket.pk
    # The call's entry and Ann's answer (the ticket's reply), both moved to the chosen ticket.
    assert sorted(Message.objects.filter(ticket=ticket, purpose="call").values_list("kind", flat=True)) == [
        "public_agent",
        "public_enduser",
    ]
    assert errors == []


def test_an_agent_dials_the_customer_from_the_ticket_and_ends_the_call_from_its_pop(browser, desk_server):  # noqa: F811
    url = desk_server
    queue = QueueFactory(slug="support", name="Support")
    ann_user = AgentFactory(username="ann", display_name="Ann Agent", email="ann@example.com", queues=[queue])
    customer = CustomerFactory(name="Maeve Byrne")
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    ticket = ticket_make(customer=customer, queue=queue, subject="Router keeps dropping")

    ann = signed_in(browser, url, ann_user)
    errors = collect_errors(ann)
    ann.goto(f"{url}/desk/tickets/{ticket.reference}/")
    connected(ann)
    # The operating system's phone takes the tel: link; this browser has none, so the page stays.
    ann.evaluate(
        "document.addEventListener('click', function (e) { if (e.target.closest('a.tel-link')) e.preventDefault(); })"
    )
    ann.click(f"a.tel-link[data-number='{CALLER}']")
    pop = ann.locator(".phone-pop[data-kind=dialled]")
    pop.wait_for(timeout=10000)
    assert "Maeve Byrne" in pop.locator(".phone-caller-name").inner_text()
    call = Call.objects.get()
    assert (call.direction, call.state, call.ticket_id, call.agent_id) == ("out", "ringing", ticket.pk, ann_user.pk)

    pop.locator("input[name=outcome][value=answered]").check()
    pop.locator("textarea[name=note]").fill("Talked her through the router reset.")
    pop.locator("button[name=dial_end]").click()
    ann.wait_for_selector("article.msg:has-text('Talked her through the router reset.')", timeout=10000)
    assert CALLER in ann.locator("article.msg .call-entry").inner_text()
    ann.wait_for_function("!document.querySelector('.phone-pop')", timeout=10000)
    call.refresh_from_db()
    assert (call.state, call.outcome) == ("ended", "answered")
    session = Session.objects.get(pk=call.session_id)
    assert session.ticket_id == ticket.pk and session.agent_id == ann_user.pk
    assert errors == []
