"""The chat widget in Chromium, on another site's page, against the real desk (uvicorn, Redis layer).

A shop's page (its own origin, 127.0.0.2) carries the one script tag. The
visitor opens the widget with the keyboard, fills the pre-chat form (a client
check and a server field error on the way), and chats with an agent who works
through the agent API. The socket is then cut from the "server side" by
Playwright (kill-free) while a visitor message is stored but its echo lost,
another never reaches the desk and an agent reply is in flight: after the
reconnect, and again after a page reload, every line is there exactly once.
The visitor ends the chat and rates it. A page of an origin the widget does not
allow (127.0.0.3) gets no chat. The desk's own /help/chat/ page carries the
widget too, in the visitor's language.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from rest_framework.authtoken.models import Token

from channels_app.chat.models import ChatConversation, ChatLine, ChatWidget
from servicedesk.tickets.models import Attachment, Message, Rating
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.browser.test_reports import collect_errors
from tests.channels_app.chat.helpers import chat_agent
from tests.e2e.conftest import wait_until
from tests.e2e.test_live_desk import serve, stop
from tests.factories import QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Desk:
    url: str
    log: Path


@pytest.fixture
def desk(tmp_path: Path, e2e_redis_url: str) -> Iterator[Desk]:
    # 127.0.0.1 is the desk's own host (ALLOWED_HOSTS): the shop and the stranger use other addresses.
    server, port, log = serve(
        tmp_path,
        "desk",
        redis_url=e2e_redis_url,
        DEBUG="true",
        CELERY_TASK_ALWAYS_EAGER="true",
        ALLOWED_HOSTS="127.0.0.1",
        SD_PRESENCE_TIMEOUT_SECONDS="3600",
        # Every browser here comes from 127.0.0.x and the counts live in Redis across runs; a CORS
        # preflight counts too. Throttling is not what these tests are about.
        SD_API_THROTTLE_CHAT_START="1000/minute",
        SD_API_THROTTLE_CHAT_VISITOR="10000/minute",
    )
    try:
        yield Desk(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        stop(server)


def host_page(desk_url: str, widget: str = "") -> bytes:
    """A plain page of another site that embeds the widget with the one documented tag."""
    extra = f' data-widget="{widget}"' if widget else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>'
        '<link rel="icon" href="data:,">'
        # The shop's own styles must not reach into the widget.
        "<style>button { background: red !important; font-size: 40px; } * { color: lime; }</style>"
        '</head><body><a href="#top" id="shop-link">Shop home</a><h1>Shop</h1>'
        f'<script src="{desk_url}/static/chat/widget.js" data-desk="{desk_url}"{extra} async></script>'
        "</body></html>"
    ).encode()


@dataclass
class Site:
    url: str
    server: ThreadingHTTPServer


@pytest.fixture
def sites(desk: Desk) -> Iterator[dict[str, Site]]:
    """The shop (allowed by the widget) and a stranger (not allowed), each a real HTTP server of its own origin."""
    made: dict[str, Site] = {}
    for name, address in (("shop", "127.0.0.2"), ("stranger", "127.0.0.3")):

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                widget = self.path.partition("widget=")[2]
                body = host_page(desk.url, re.sub(r"[^a-z-]", "", widget))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((address, 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made[name] = Site(url=f"http://{address}:{server.server_address[1]}", server=server)
    try:
        yield made
    finally:
        for site in made.values():
            site.server.shutdown()
            site.server.server_close()


class AgentApi:
    """The agent's side, over HTTP with a token, as the console does it."""

    def __init__(self, desk_url: str, user: Any) -> None:
        self.base = f"{desk_url}/api/v1/chat/conversations/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.session.post(self.base + path, json=body, timeout=20)
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else {}

    def lines(self, conversation_id: int) -> list[tuple[str, str]]:
        response = self.session.get(f"{self.base}{conversation_id}/", timeout=20)
        assert response.status_code == 200, response.text
        return [(line["author"], line["text"]) for line in response.json()["lines"]]


@dataclass
class SocketTap:
    """Playwright sits on the widget's socket: it can hold frames back either way and cut the connection."""

    routes: list[Any] = field(default_factory=list)
    to_desk: bool = True
    to_page: bool = True
    held: list[str] = field(default_factory=list)

    def __call__(self, ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(message) if self.to_desk else self.held.append(f"out {message}"))
        server.on_message(lambda message: ws.send(message) if self.to_page else self.held.append(f"in {message}"))
        self.routes.append((ws, server))

    def cut(self) -> None:
        """Close the socket from the desk's side, as a restart or a proxy would; the page sees a close."""
        ws, server = self.routes[-1]
        server.close()
        ws.close(code=1012, reason="restart")
        self.to_desk = self.to_page = True


def shadow(page: Any, script: str) -> Any:
    """Evaluate ``script`` with ``root`` the widget's shadow root."""
    return page.evaluate(
        f"(() => {{ const root = document.querySelector('servicedesk-chat').shadowRoot; {script} }})()"
    )


def log_lines(page: Any) -> list[tuple[str, str, str]]:
    """The conversation as shown: (author, text, state) per line, top to bottom."""
    rows = shadow(
        page,
        "return [...root.querySelectorAll('.log > li')].map(li => ["
        "li.className.match(/visitor|agent|system/)[0], li.querySelector('.text').textContent, li.dataset.state || ''])",
    )
    return [tuple(row) for row in rows]


def focused(page: Any) -> str:
    """The focused element inside the widget, as 'tag.class' or the page's own element."""
    return page.evaluate(
        "(() => { const a = document.activeElement; if (!a || a.tagName !== 'SERVICEDESK-CHAT') return 'page:' + (a && a.id);"
        " const e = a.shadowRoot.activeElement; return e ? e.tagName.toLowerCase() + '.' + e.className + '#' + (e.name || '') : 'none'; })()"
    )


def storage(page: Any) -> dict[str, str]:
    return page.evaluate("Object.fromEntries(Object.entries(localStorage))")


def test_a_visitor_on_another_site_chats_with_an_agent_and_loses_nothing(browser, desk, sites, tmp_path):  # noqa: F811
    shop = sites["shop"].url
    queue = QueueFactory(slug="chat", name="Chat")
    widget = ChatWidget.objects.create(
        key="default",
        name="Shop chat",
        queue=queue,
        allowed_origins=shop,
        greeting="Hi! How can we help?",
        colour="#0b6e4f",
        email_required=True,
    )
    ann = chat_agent(queue, username="ann")
    ann.display_name = "Ann Agent"
    ann.save(update_fields=["display_name"])
    agent = AgentApi(desk.url, ann)

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    errors = collect_errors(page)
    tap = SocketTap()
    page.route_web_socket(re.compile(r"/ws/chat/"), tap)
    page.goto(shop + "/")
    launcher = page.locator("button.launcher")
    launcher.wait_for(timeout=15000)
    assert launcher.inner_text().strip() == "Chat with us"
    # The widget's colours, not the shop's "button { background: red !important }".
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 110, 79)"
    assert launcher.evaluate("b => getComputedStyle(b).fontSize") == "15px"
    # Nothing written to the visitor's browser before they open the chat.
    assert context.cookies() == []
    assert storage(page) == {}

    # Keyboard: Tab reaches the launcher, Enter opens the dialog with focus inside, Escape closes it
    # and focus returns to the launcher.
    for _ in range(4):
        page.keyboard.press("Tab")
        if focused(page).startswith("button.launcher"):
            break
    assert focused(page).startswith("button.launcher")
    page.keyboard.press("Enter")
    dialog = page.locator("[role=dialog]")
    dialog.wait_for(state="visible")
    assert dialog.get_attribute("aria-labelledby")
    assert (
        shadow(
            page,
            "return root.getElementById(root.querySelector('[role=dialog]').getAttribute('aria-labelledby')).textContent",
        )
        == "Shop chat"
    )
    assert launcher.get_attribute("aria-expanded") == "true"
    page.wait_for_function(
        "document.querySelector('servicedesk-chat').shadowRoot.activeElement?.name === 'name'", timeout=10000
    )
    # Every control of the form is reachable by Tab, in order.
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert [f.split("#")[-1] or f.split(".")[0] for f in order] == ["email", "text", "button", "button"], order
    assert order[3].startswith("button.launcher")  # the dialog is not modal: Tab goes on to the launcher
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert focused(page).startswith("button.launcher")
    assert launcher.get_attribute("aria-expanded") == "false"

    # The pre-chat form: the greeting, a client-side check, then a server field error.
    launcher.click()
    assert page.locator(".greeting").inner_text() == "Hi! How can we help?"
    page.fill("input[name=name]", "Vera Visitor")
    page.fill("input[name=email]", "vera@example.com")
    page.click("form.prechat button[type=submit]")
    assert page.locator("[data-error-for=text]").inner_text() == "This field is required."
    assert page.locator("textarea[name=text]").get_attribute("aria-invalid") == "true"
    assert ChatConversation.objects.count() == 0
    page.fill("input[name=email]", "vera@example.c")  # passes the widget's check, not the desk's
    page.fill("textarea[name=text]", "My order is late")
    page.click("form.prechat button[type=submit]")
    page.locator("[data-error-for=email]:has-text('valid email')").wait_for(timeout=10000)
    assert ChatConversation.objects.count() == 0
    page.fill("input[name=email]", "vera@example.com")
    page.click("form.prechat button[type=submit]")

    # Waiting, with the first message delivered, then Ann accepts and answers.
    page.locator(".status:has-text('You are next in the queue')").wait_for(timeout=15000)
    page.locator(".log li.visitor[data-state=delivered]:has-text('My order is late')").wait_for(timeout=10000)
    conversation = ChatConversation.objects.get()
    assert conversation.status == "waiting" and conversation.claimed_email == "vera@example.com"
    assert conversation.origin == shop
    kept = storage(page)
    prefix = f"sdchat:{desk.url.removeprefix('http://')}:default:"
    assert kept[prefix + "conversation"] == str(conversation.pk)
    assert len(kept[prefix + "token"]) > 20
    assert context.cookies() == []

    agent.post(f"{conversation.pk}/accept/")
    page.locator(".status:has-text('Ann Agent joined the chat.')").wait_for(timeout=15000)
    agent.post(f"{conversation.pk}/typing/")
    page.locator(".typing:has-text('Ann Agent is typing…')").wait_for(timeout=10000)
    agent.post(f"{conversation.pk}/messages/", text="Hello Vera, let me check.", client_id=str(uuid.uuid4()))
    page.locator(".log li.agent:has-text('Hello Vera, let me check.') .who:has-text('Ann Agent')").wait_for(
        timeout=10000
    )
    assert page.locator(".typing").is_hidden()

    page.fill(".compose textarea", "Thanks!")
    page.keyboard.press("Enter")
    page.locator(".log li.visitor[data-state=delivered]:has-text('Thanks!')").wait_for(timeout=10000)
    assert ("visitor", "Thanks!") in agent.lines(conversation.pk)

    # An image, through the visitor's file endpoint; its line comes back on the socket.
    page.set_input_files(".tools input[type=file]", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}])
    page.locator(".log li.visitor[data-state=delivered]:has-text('Attachment: dot.png')").wait_for(timeout=10000)
    assert Attachment.objects.filter(message__ticket=conversation.ticket, filename="dot.png").count() == 1

    # The socket goes bad: the desk stores "Are you there?" but its echo and Ann's reply never
    # reach the page; "Great, thank you" never reaches the desk. Then the desk's side closes.
    tap.to_page = False
    page.fill(".compose textarea", "Are you there?")
    page.keyboard.press("Enter")
    wait_until(
        lambda: Message.objects.filter(ticket=conversation.ticket, text="Are you there?").exists(),
        timeout=10,
        what="the message stored",
    )
    agent.post(f"{conversation.pk}/messages/", text="Found it: it ships today.", client_id=str(uuid.uuid4()))
    tap.to_desk = False
    page.fill(".compose textarea", "Great, thank you")
    page.keyboard.press("Enter")
    assert page.locator(".log li.visitor:has-text('Are you there?')").get_attribute("data-state") == "sending"
    assert page.locator(".log li.visitor:has-text('Great, thank you')").get_attribute("data-state") == "sending"
    assert not Message.objects.filter(ticket=conversation.ticket, text="Great, thank you").exists()
    sockets_before = len(tap.routes)
    tap.cut()
    page.locator(".status:has-text('Reconnecting')").wait_for(timeout=5000)
    page.locator(".log li.visitor[data-state=delivered]:has-text('Great, thank you')").wait_for(timeout=20000)
    assert len(tap.routes) == sockets_before + 1

    expected = [
        ("visitor", "My order is late", "delivered"),
        ("system", "Ann Agent joined the chat.", ""),
        ("agent", "Hello Vera, let me check.", ""),
        ("visitor", "Thanks!", "delivered"),
        ("visitor", "Attachment: dot.png", "delivered"),
        ("visitor", "Are you there?", "delivered"),
        ("agent", "Found it: it ships today.", ""),
        ("visitor", "Great, thank you", "delivered"),
    ]
    assert log_lines(page) == expected
    assert page.locator(".status").inner_text() == "You are chatting with Ann Agent."

    # A reload: the same chat from the browser's storage, every line once, in order.
    page.reload()
    page.locator(".log li.visitor:has-text('Great, thank you')").wait_for(timeout=15000)
    page.locator(".status:has-text('You are chatting with Ann Agent.')").wait_for(timeout=10000)
    page.wait_for_timeout(500)  # any late duplicate would be in by now
    # The line of a file names it (from the desk, not from the widget's memory).
    assert log_lines(page) == expected
    # The desk stored each message once, whatever was sent twice.
    texts = list(
        ChatLine.objects.filter(conversation=conversation, message__isnull=False)
        .order_by("seq")
        .values_list("message__text", flat=True)
    )
    assert texts == [
        "My order is late",
        "Hello Vera, let me check.",
        "Thanks!",
        "",
        "Are you there?",
        "Found it: it ships today.",
        "Great, thank you",
    ]

    # The transcript by email, then the visitor ends the chat and rates it.
    page.click("text=Email me the transcript")
    page.locator(".status:has-text('The transcript is on its way to vera@example.com.')").wait_for(timeout=10000)
    page.click("text=End chat")
    page.locator(".log li.system:has-text('You ended the chat.')").wait_for(timeout=10000)
    page.locator(".status:has-text('The chat has ended.')").wait_for(timeout=10000)
    assert page.locator(".compose").is_hidden()
    page.locator("fieldset legend:has-text('How was this chat?')").wait_for()
    page.check("input[name=score][value='4']")
    page.fill("textarea[name=comment]", "Quick and friendly")
    page.click("form.rating button[type=submit]")
    page.locator("text=Thank you for your rating.").wait_for(timeout=10000)
    rating = Rating.objects.get(external_key=f"chat:{conversation.pk}")
    assert (rating.score, rating.comment, rating.ticket_id) == (4, "Quick and friendly", conversation.ticket_id)
    conversation.refresh_from_db()
    assert conversation.status == "ended"
    page.screenshot(path=str(tmp_path / "widget-ended.png"))

    # A new chat in the same browser keeps the visitor's record (the old token passed as "visitor").
    page.click("text=Start a new chat")
    page.fill("input[name=email]", "vera@example.com")
    page.fill("textarea[name=text]", "One more thing")
    page.click("form.prechat button[type=submit]")
    page.locator(".log li.visitor[data-state=delivered]:has-text('One more thing')").wait_for(timeout=15000)
    second = ChatConversation.objects.exclude(pk=conversation.pk).get()
    assert second.visitor_id == conversation.visitor_id and second.customer_id == conversation.customer_id
    assert log_lines(page) == [("visitor", "One more thing", "delivered")]
    assert widget.pk == second.widget_id
    # Chromium logs the one 400 the test provoked (the address the desk refused); nothing else went wrong.
    assert [e for e in errors if "status of 400" not in e] == []
    assert len(errors) == 1 and "/api/v1/chat/conversations/" in errors[0]


def test_a_page_of_an_origin_the_widget_does_not_allow_gets_no_chat(browser, desk, sites):  # noqa: F811
    queue = QueueFactory(slug="chat", name="Chat")
    ChatWidget.objects.create(key="default", name="Shop chat", queue=queue, allowed_origins=sites["shop"].url)
    page = browser.new_context(locale="en-GB").new_page()
    page.goto(sites["stranger"].url + "/")
    stranger = sites["stranger"].url
    wait_until(
        lambda: f"Refused a chat request to widget default from origin {stranger}" in desk.log.read_text(),
        timeout=20,
        what="the refusal logged",
    )
    page.wait_for_timeout(1000)
    assert page.locator("servicedesk-chat").count() == 0
    assert page.context.cookies() == []
    assert storage(page) == {}
    # Nor may the page start a chat or open a visitor socket itself.
    outcome = page.evaluate(
        """async (desk) => {
            try {
                const r = await fetch(desk + "/api/v1/chat/conversations/", {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({text: "hi", client_id: crypto.randomUUID(), email: "x@example.com"})});
                return "answered " + r.status;
            } catch (e) { return "refused"; }
        }""",
        desk.url,
    )
    assert outcome == "refused"
    assert ChatConversation.objects.count() == 0


def test_nobody_online_the_widget_takes_a_message_for_email(browser, desk, sites):  # noqa: F811
    queue = QueueFactory(slug="chat", name="Chat")
    ChatWidget.objects.create(key="default", name="Shop chat", queue=queue, allowed_origins=sites["shop"].url)
    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    page.goto(sites["shop"].url + "/")
    page.click("button.launcher")
    page.locator("text=Nobody can chat right now.").wait_for(timeout=10000)
    page.fill("input[name=email]", "olga@example.com")
    page.fill("textarea[name=text]", "Please call me back")
    page.click("form.prechat button:has-text('Send message')")
    page.locator("text=Thank you. We have your message").wait_for(timeout=15000)
    conversation = ChatConversation.objects.get()
    assert conversation.status == "offline"
    assert conversation.ticket.reference in page.locator("[role=dialog]").inner_text()
    assert errors == []


def test_the_desks_own_chat_page_carries_the_widget_in_the_visitors_language(browser, desk):  # noqa: F811
    QueueFactory(slug="chat", name="Chat")
    for locale, launcher_text, heading, title in (
        ("en-GB", "Chat with us", "Live chat", "Chat"),
        ("zh-CN", "在线咨询", None, "在线咨询"),
    ):
        page = browser.new_context(locale=locale).new_page()
        errors = collect_errors(page)
        page.goto(desk.url + "/help/chat/")
        if heading:
            assert page.locator("h1").inner_text() == heading
        assert page.locator("#embed-code").inner_text() == (
            f'<script src="{desk.url}/static/chat/widget.js" data-desk="{desk.url}" async></script>'
        )
        launcher = page.locator("button.launcher")
        launcher.wait_for(timeout=15000)
        assert launcher.inner_text().strip() == launcher_text
        launcher.click()
        page.locator("form.prechat").wait_for(timeout=10000)
        # The desk's own widget, not named by an administrator: its title in the visitor's language.
        assert page.locator("[role=dialog] h2").inner_text().strip() == title
        assert errors == []
        page.context.close()


def test_a_visitor_who_waited_too_long_leaves_a_message_instead(browser, desk, sites):  # noqa: F811
    queue = QueueFactory(slug="chat", name="Chat")
    # Offered at once: the widget's maximum wait is 0 seconds.
    ChatWidget.objects.create(
        key="default", name="Shop chat", queue=queue, allowed_origins=sites["shop"].url, max_wait_seconds=0
    )
    chat_agent(queue, username="ann")
    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    page.goto(sites["shop"].url + "/")
    page.click("button.launcher")
    page.fill("input[name=email]", "vera@example.com")
    page.fill("textarea[name=text]", "Is anyone there?")
    page.click("form.prechat button[type=submit]")
    page.locator(".offer:has-text('Still waiting?')").wait_for(timeout=15000)
    assert page.locator(".offer input[name=email]").input_value() == "vera@example.com"
    page.fill(".offer textarea[name=text]", "Please write to me instead.")
    page.click(".offer button:has-text('Leave a message')")
    page.locator(".log li.system:has-text('We have your message and will answer by email.')").wait_for(timeout=15000)
    assert page.locator(".compose").is_hidden()
    conversation = ChatConversation.objects.get()
    assert conversation.status == "offline"
    assert Message.objects.filter(ticket=conversation.ticket, text="Please write to me instead.").exists()
    assert errors == []
