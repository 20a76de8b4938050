"""The agent chat console in Chromium, against the real ASGI server with the Redis channel layer.

A visitor, driven from here through the chat API and their own WebSocket
(docs/chat-protocol.md), starts a chat; the offer appears in the agent's open
console without a reload, with a sound and a desktop notification; the agent
accepts, reads the visitor's message (shown as text, never as HTML), sees them
typing, answers with Enter and with a canned reply (the visitor's socket
receives both), confirms the visitor's address, keeps every line across a lost
connection, ends the chat and wraps it up: the ticket is solved.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.sync.client import ClientConnection, connect

from channels_app.chat.models import CannedReply, ChatConversation, ChatLine, ChatStatus
from servicedesk.tickets.models import Message
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.browser.test_reports import collect_errors
from tests.channels_app.chat.helpers import SHOP, chat_agent, widget_make
from tests.e2e.conftest import wait_until
from tests.e2e.test_live_desk import serve, stop
from tests.factories import CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What the page runs before its own scripts: every desk socket is kept (so the
# test can drop it) and can be held off (pointed at a closed port), and every
# desktop notification is recorded on its way to the real one.
PAGE_PROBES = """
(() => {
  const NativeSocket = window.WebSocket;
  window.__deskSockets = [];
  window.__holdDeskSockets = false;
  function Socket(url, protocols) {
    const desk = String(url).indexOf("/ws/desk/") !== -1;
    if (desk && window.__holdDeskSockets) url = "ws://127.0.0.1:1/ws/desk/";
    const socket = protocols === undefined ? new NativeSocket(url) : new NativeSocket(url, protocols);
    if (desk) window.__deskSockets.push(socket);
    return socket;
  }
  Socket.prototype = NativeSocket.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach((k) => { Socket[k] = NativeSocket[k]; });
  window.WebSocket = Socket;

  const NativeNotification = window.Notification;
  window.__notifications = [];
  function Recorded(title, options) {
    window.__notifications.push({ title: title, body: (options || {}).body || "" });
    return new NativeNotification(title, options);
  }
  Object.defineProperty(Recorded, "permission", { get: () => NativeNotification.permission });
  Recorded.requestPermission = (callback) => NativeNotification.requestPermission(callback);
  window.Notification = Recorded;
})();
"""
HELD_PORT = "ws://127.0.0.1:1/ws/desk/"


@pytest.fixture
def desk_server(tmp_path: Path, e2e_redis_url: str) -> Iterator[tuple[str, int]]:
    server, port, _ = serve(tmp_path, "web", redis_url=e2e_redis_url, DEBUG="true", CELERY_TASK_ALWAYS_EAGER="true")
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        stop(server)


def console_page(browser, url: str, user) -> Any:  # noqa: F811
    """A browser page with ``user``'s session, notifications allowed, and the probes."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(locale="en-GB")
    context.grant_permissions(["notifications"], origin=url)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": url,
            }
        ]
    )
    context.add_init_script(PAGE_PROBES)
    return context.new_page()


def visitor_start(port: int, **fields: Any) -> dict[str, Any]:
    body = {"widget": "default", "client_id": str(uuid.uuid4()), "language": "en", **fields}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request(
        "POST",
        "/api/v1/chat/conversations/",
        body=json.dumps(body),
        headers={"Content-Type": "application/json", "Origin": SHOP, "Accept-Language": "en"},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 201, answer
    return answer


def visitor_socket(port: int, token: str) -> ClientConnection:
    # Closed by the test (ws.close()); the server is stopped after it in any case.
    return connect(
        f"ws://127.0.0.1:{port}/ws/chat/?token={token}",
        origin=SHOP,  # type: ignore[arg-type]
        open_timeout=20,
        legacy=True,
    )


def visitor_frames_until(ws: ClientConnection, wanted: Any, *, timeout: float = 20) -> list[dict[str, Any]]:
    """The visitor's frames until one for which ``wanted(frame)`` holds (that one last); pings as asked."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"No such frame within {timeout} s; got {seen}")
        try:
            frame = json.loads(ws.recv(timeout=min(left, 5)))
        except TimeoutError:
            ws.send(json.dumps({"type": "ping"}))
            continue
        seen.append(frame)
        if wanted(frame):
            return seen


def agent_says(text: str) -> Any:
    return lambda f: f.get("type") == "message" and f.get("author") == "agent" and f.get("text") == text


def test_an_agent_takes_a_chat_live_answers_it_and_wraps_it_up(browser, desk_server, tmp_path):  # noqa: F811
    url, port = desk_server
    queue = QueueFactory(slug="chat", name="Chat desk")
    widget_make(queue=queue, key="default", name="Shop chat")
    agent = chat_agent(queue, username="ann")
    agent.display_name = "Ann Agent"
    agent.save(update_fields=["display_name"])
    CannedReply.objects.create(queue=queue, title="Shipping delay", text="Parcels ship within two days.", position=1)
    owner = CustomerFactory(name="Vera Holm", email="vera@example.com")
    earlier = ticket_make(customer=owner, queue=queue, subject="Invoice copy", channel="email")

    page = console_page(browser, url, agent)
    errors = collect_errors(page)
    page.goto(f"{url}/desk/chat/")
    page.wait_for_function("document.getElementById('chat-console').dataset.liveState === 'connected'")
    page.evaluate("window.__sameDocument = true")
    assert page.inner_text("#chat-waiting-empty") == "No chat is waiting in your queues."

    # Sound and notifications are turned on by a click (never on load).
    assert page.get_attribute("#chat-console", "data-notifications") is None
    page.click("#chat-notify")
    page.wait_for_function("document.getElementById('chat-console').dataset.notifications === 'granted'")
    assert page.inner_text("#chat-notify-state") == "Sound and notifications are on"
    chimes = int(page.get_attribute("#chat-console", "data-chimes") or 0)

    # 1. A visitor starts a chat; the offer appears in the open console.
    started = visitor_start(
        port, name="Vera <b>Visitor</b>", email="vera@example.com", text="My order is late <img src=x>"
    )
    assert started["status"] == "waiting"
    conversation = ChatConversation.objects.get(pk=started["id"])
    assert conversation.offered_to_id == agent.pk
    visitor = visitor_socket(port, started["visitor_token"])
    visitor.send(json.dumps({"type": "resume", "after": 0}))
    visitor_frames_until(visitor, lambda f: f.get("type") == "status" and f["status"] == "waiting")

    offer = page.locator(f".chat-waiting-item.chat-offer[data-conversation='{conversation.pk}']")
    offer.wait_for(timeout=15000)
    assert offer.locator(".chat-waiting-name").inner_text() == "Vera <b>Visitor</b>"
    assert offer.locator("b").count() == 0
    assert "Chat desk" in offer.inner_text()
    offer_left = offer.locator(".chat-offer-left").inner_text()
    assert offer_left.startswith("Offered to you: ") and offer_left.endswith(" s left")
    assert 0 < int(offer_left.split(": ")[1].split(" ")[0]) <= 30
    page.wait_for_function(
        "(n) => Number(document.getElementById('chat-console').dataset.chimes) > n", arg=chimes, timeout=5000
    )
    assert page.evaluate("window.__notifications") == [
        {"title": "New chat offered to you", "body": "Vera <b>Visitor</b> is waiting in Chat desk."}
    ]
    page.screenshot(path=str(tmp_path / "chat-console-offer.png"), full_page=True)
    # The wait ticks.
    first = offer.locator(".chat-waited").inner_text()
    page.wait_for_function(
        "(t) => document.querySelector('.chat-waiting-item .chat-waited').textContent !== t", arg=first, timeout=5000
    )

    # 2. The agent accepts: the chat becomes a column with the visitor's message as text.
    offer.locator("button", has_text="Accept").click()
    column = page.locator(f".chat-column[data-conversation='{conversation.pk}']")
    column.locator(".chat-line-visitor").first.wait_for(timeout=15000)
    assert column.locator(".chat-line-visitor .chat-line-text").first.inner_text() == "My order is late <img src=x>"
    assert column.locator(".chat-transcript img").count() == 0
    column.locator(".chat-line-system", has_text="Ann Agent joined the chat.").wait_for(timeout=10000)
    assert page.locator(".chat-waiting-item").count() == 0
    assert page.inner_text("#chat-capacity") == "Your chats: 1 of 2"
    visitor_frames_until(visitor, lambda f: f.get("type") == "status" and f["status"] == "active")
    assert ChatConversation.objects.get(pk=conversation.pk).status == ChatStatus.ACTIVE

    # The customer panel: the address is a claim, next to the customer who owns it.
    panel = page.locator("#chat-customer-body")
    panel.locator("[data-field=match]").wait_for(timeout=10000)
    assert panel.locator("[data-field=name]").inner_text() == "Vera <b>Visitor</b>"
    assert panel.locator("[data-field=email]").inner_text() == "vera@example.com"
    assert panel.locator("[data-field=email-check]").inner_text() == "unverified"
    assert panel.locator("[data-field=match]").inner_text() == "Customer with this address: Vera Holm"
    assert panel.locator("[data-field=match-tickets]").inner_text() == "1 open ticket"
    reference = conversation.ticket.reference
    history = panel.locator("[data-field=history]")
    assert history.locator(f"a[href='/desk/tickets/{reference}/']").inner_text() == reference
    assert panel.locator(f"[data-field=open] a[href='/desk/tickets/{reference}/']").count() == 1

    # 3. The visitor writes and types; the agent sees both live.
    visitor.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": "It was due <i>Monday</i>"}))
    column.locator(".chat-line-visitor", has_text="It was due <i>Monday</i>").wait_for(timeout=15000)
    assert column.locator(".chat-transcript i").count() == 0
    visitor.send(json.dumps({"type": "typing"}))
    column.locator(".chat-typing", has_text="The visitor is typing…").wait_for(timeout=15000)

    # 4. The agent answers: Enter sends, Shift+Enter is a new line.
    composer = column.locator("textarea[name=text]")
    composer.click()
    composer.type("Sorry about that.")
    composer.press("Shift+Enter")
    composer.type("Let me look.")
    composer.press("Enter")
    visitor_frames_until(visitor, agent_says("Sorry about that.\nLet me look."))
    assert composer.input_value() == ""
    column.locator(".chat-line-agent[data-seq]", has_text="Let me look.").wait_for(timeout=10000)

    # A canned reply goes into the composer; the agent sends it.
    column.locator(".chat-canned summary").click()
    column.locator(".chat-canned-item", has_text="Shipping delay").click()
    assert composer.input_value() == "Parcels ship within two days."
    composer.press("Enter")
    visitor_frames_until(visitor, agent_says("Parcels ship within two days."))

    # 5. "Confirm it's them": the visitor's record joins Vera Holm's, whose history shows.
    panel.locator("[data-action=confirm]").click()
    history.locator(f"a[href='/desk/tickets/{earlier.reference}/']").wait_for(timeout=10000)
    assert panel.locator("[data-field=email-check]").inner_text() == "verified"
    assert panel.locator("[data-part=match]").is_hidden()
    confirmed = ChatConversation.objects.get(pk=conversation.pk)
    assert confirmed.claim_confirmed_by_id == agent.pk and confirmed.customer_id == owner.pk

    # 6. The console's socket drops and stays away while the visitor writes: once back,
    # the console reads the chat again and the line is there, once.
    page.evaluate("window.__holdDeskSockets = true; window.__deskSockets.forEach((s) => s.close())")
    page.wait_for_function("document.getElementById('chat-console').dataset.liveState === 'reconnecting'")
    visitor.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": "Still there?"}))
    wait_until(
        lambda: ChatLine.objects.filter(conversation=conversation, message__text="Still there?").exists(),
        timeout=10,
        what="the visitor's line stored",
    )
    time.sleep(1)
    assert column.locator(".chat-line", has_text="Still there?").count() == 0
    page.evaluate("window.__holdDeskSockets = false")
    page.wait_for_function("document.getElementById('chat-console').dataset.liveState === 'connected'", timeout=40000)
    column.locator(".chat-line-visitor", has_text="Still there?").wait_for(timeout=15000)
    seqs = column.locator(".chat-line[data-seq]").evaluate_all("(lines) => lines.map((l) => Number(l.dataset.seq))")
    stored = list(ChatLine.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))
    assert seqs == stored

    # 7. The agent ends the chat and wraps it up: the ticket is solved, the note kept.
    column.locator("[data-action=end]").click()
    wrap_up = column.locator("[data-part=wrap-up]")
    wrap_up.wait_for(state="visible", timeout=15000)
    visitor_frames_until(visitor, lambda f: f.get("type") == "status" and f["status"] == "ended")
    assert column.locator("[data-part=active]").is_hidden()
    page.screenshot(path=str(tmp_path / "chat-console-wrap-up.png"), full_page=True)
    wrap_up.locator("select[name=status]").select_option("solved")
    wrap_up.locator("textarea[name=note]").fill("Parcel re-sent.")
    wrap_up.locator("button[type=submit]").click()
    column.wait_for(state="detached", timeout=15000)
    assert page.inner_text("#chat-console-status") == f"Wrap-up saved: {reference} is Solved."

    finished = ChatConversation.objects.select_related("ticket", "session").get(pk=conversation.pk)
    assert finished.status == ChatStatus.ENDED and finished.wrapped_up_at is not None
    assert finished.ticket.status == "solved"
    assert finished.session.after_work_seconds is not None
    assert Message.objects.filter(ticket=finished.ticket, text="Parcel re-sent.").count() == 1
    agent_lines = ChatLine.objects.filter(conversation=conversation, author="agent").order_by("seq")
    assert [line.message.text for line in agent_lines] == [
        "Sorry about that.\nLet me look.",
        "Parcels ship within two days.",
    ]
    # Live all along: the page was never reloaded.
    assert page.evaluate("window.__sameDocument") is True
    visitor.close()
    # The held sockets' refused connections are the test's own doing.
    assert [e for e in errors if HELD_PORT not in e] == []


def test_an_agent_hands_a_chat_to_a_colleague_of_the_queue(browser, desk_server):  # noqa: F811
    url, port = desk_server
    queue = QueueFactory(slug="chat", name="Chat desk")
    widget_make(queue=queue, key="default", name="Shop chat")
    ann = chat_agent(queue, username="ann")
    bob = chat_agent(queue, username="bob")
    bob.display_name = "Bob Builder"
    bob.save(update_fields=["display_name"])

    page = console_page(browser, url, ann)
    errors = collect_errors(page)
    page.goto(f"{url}/desk/chat/")
    page.wait_for_function("document.getElementById('chat-console').dataset.liveState === 'connected'")

    started = visitor_start(port, name="Olga", email="olga@example.com", text="Can I change my plan?")
    visitor = visitor_socket(port, started["visitor_token"])
    visitor.send(json.dumps({"type": "resume", "after": 0}))
    # Offered to Ann (fewest chats, then the lower id): she accepts it from the console.
    offer = page.locator(f".chat-waiting-item.chat-offer[data-conversation='{started['id']}']")
    offer.locator("button", has_text="Accept").click(timeout=15000)
    column = page.locator(f".chat-column[data-conversation='{started['id']}']")
    column.locator(".chat-line-visitor", has_text="Can I change my plan?").wait_for(timeout=15000)

    column.locator(".chat-transfer summary").click()
    target = column.locator("select[name=target]")
    page.wait_for_function(
        "(id) => document.querySelector(`.chat-column[data-conversation='${id}'] select[name=target] option`)",
        arg=started["id"],
        timeout=10000,
    )
    assert target.locator("optgroup[label='Agents of this queue'] option").all_inner_texts() == ["Bob Builder"]
    assert target.locator("optgroup[label='Queues'] option").all_inner_texts() == ["Chat desk (this queue)"]
    target.select_option(f"agent:{bob.pk}")
    column.locator(".chat-transfer button[type=submit]").click()

    column.wait_for(state="detached", timeout=15000)
    assert page.inner_text("#chat-console-status") == "The chat was transferred."
    frames = visitor_frames_until(
        visitor, lambda f: f.get("type") == "message" and f.get("text") == "Bob Builder took over the chat."
    )
    assert frames[-1]["author"] == "system"
    moved = ChatConversation.objects.select_related("ticket").get(pk=started["id"])
    assert moved.status == ChatStatus.ACTIVE and moved.agent_id == bob.pk and moved.ticket.assignee_id == bob.pk
    assert page.locator(".chat-column").count() == 0
    visitor.close()
    assert errors == []
