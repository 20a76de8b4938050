"""The agent chat console at /desk/chat/: who may open it, what the page carries (strings, not
chats), and the console's own API calls: canned replies per queue and transfer targets.

What the console does in a browser is tests/e2e/test_chat_console_browser.py.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from rest_framework.test import APIClient

from channels_app.chat.models import CannedReply
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory

from .helpers import chat_agent, start, widget_make

pytestmark = pytest.mark.django_db

URL = "/desk/chat/"


def page_strings(content: str) -> dict[str, object]:
    found = re.search(r'<script id="chat-console-strings" type="application/json">(.*?)</script>', content, re.S)
    assert found, "the page carries the script's strings"
    return json.loads(found.group(1))


# --- The page ------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"/desk/login/?next={URL}"


def test_a_signed_in_customer_gets_not_found_as_on_every_desk_page(client):
    user = UserFactory(username="carla")
    CustomerFactory(name="Carla", user=user)
    client.force_login(user)

    assert client.get(URL).status_code == 404
    assert client.get("/desk/").status_code == 404  # the same answer as the workspace's pages


def test_the_page_is_a_get_only(client):
    client.force_login(AgentFactory(username="ann", queues=[QueueFactory(slug="support")]))

    assert client.post(URL).status_code == 405


def test_an_agent_gets_the_console_in_english_with_its_script_and_strings(client):
    queue = QueueFactory(slug="support", name="Support")
    agent = AgentFactory(username="ann", queues=[queue])
    client.force_login(agent)

    response = client.get(URL, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    content = response.content.decode()
    assert '<html lang="en">' in content
    assert "<title>Chat console · Service desk</title>" in content
    assert '<h2 id="chat-waiting-title">Waiting chats</h2>' in content
    assert "Confirm it&#x27;s them" in content or "Confirm it's them" in content
    assert '<script src="/static/chat/console.js" defer></script>' in content
    assert '<link rel="stylesheet" href="/static/chat/console.css">' in content
    # The desk's navigation links the console.
    assert '<a href="/desk/chat/">Chat</a>' in content
    # What the script needs: the API, the socket, the CSRF token, and the ticket page's address.
    assert 'data-api="/api/v1/chat/"' in content
    assert 'data-socket="/ws/desk/"' in content
    assert f'data-user="{agent.pk}"' in content
    assert 'data-ticket-url="/desk/tickets/REFERENCE/"' in content
    csrf = re.search(r'data-csrf="([^"]+)"', content)
    assert csrf and len(csrf.group(1)) >= 32
    strings = page_strings(content)
    assert strings["visitorTyping"] == "The visitor is typing…"
    assert strings["offerFor"] == "Offered to you: %(seconds)s s left"
    assert strings["statuses"]["solved"] == "Solved"
    assert strings["channels"]["chat"] == "Chat"
    # The wrap-up offers every ticket status, and "leave as it is" first.
    assert re.search(r'<option value="">Leave as it is</option>\s*<option value="new">New</option>', content)
    assert '<option value="solved">Solved</option>' in content


def test_an_agent_gets_the_console_in_simplified_chinese(client):
    client.force_login(AgentFactory(username="ann", queues=[QueueFactory(slug="support")]))

    content = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()

    assert '<html lang="zh-hans">' in content
    assert "<title>聊天控制台 · " in content
    assert '<h2 id="chat-waiting-title">等待中的聊天</h2>' in content
    assert "确认是本人" in content
    assert '<option value="">保持不变</option>' in content
    strings = page_strings(content)
    assert strings["visitorTyping"] == "访客正在输入…"
    assert strings["accept"] == "接受"
    assert strings["unverified"] == "未验证"
    assert strings["offerFor"] == "分配给您：还剩 %(seconds)s 秒"  # noqa: RUF001 (Chinese punctuation)
    assert "Waiting chats" not in content


def test_the_page_carries_no_chat_the_api_does(client):
    """The console's data comes only through the chat API (and its access rule): the page holds none."""
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    start(widget, name="Vera Quillfeather", text="Where is parcel 4471?")
    client.force_login(agent)

    content = client.get(URL).content.decode()
    listed = client.get("/api/v1/chat/conversations/").json()

    assert "Quillfeather" not in content and "4471" not in content
    assert [chat["visitor"]["name"] for chat in listed["results"]] == ["Vera Quillfeather"]


# --- Canned replies --------------------------------------------------------------------


@pytest.fixture
def replies():
    billing = QueueFactory(slug="billing", name="Billing")
    support = QueueFactory(slug="support", name="Support")
    CannedReply.objects.create(queue=billing, title="Refund", text="Your refund is on its way.", position=2)
    CannedReply.objects.create(queue=billing, title="Hello", text="Hello! How can I help?", position=1)
    CannedReply.objects.create(queue=support, title="Restart", text="Please restart the router.", position=1)
    return billing, support


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_an_agent_reads_the_canned_replies_of_their_queue_in_order(replies):
    billing, _support = replies
    agent = AgentFactory(username="ann", queues=[billing])

    response = api_as(agent).get(f"/api/v1/chat/canned-replies/?queue={billing.pk}")

    assert response.status_code == 200
    assert [(r["title"], r["text"], r["queue"]) for r in response.json()["results"]] == [
        ("Hello", "Hello! How can I help?", billing.pk),
        ("Refund", "Your refund is on its way.", billing.pk),
    ]


def test_the_canned_replies_of_a_queue_the_agent_does_not_work_in_are_refused(replies):
    billing, support = replies
    agent = AgentFactory(username="ann", queues=[billing])

    response = api_as(agent).get(f"/api/v1/chat/canned-replies/?queue={support.pk}")

    assert response.status_code == 404
    assert "Restart" not in response.content.decode()
    assert response.json() == {"detail": "No such queue."}
    # A queue that does not exist answers the same.
    assert api_as(agent).get("/api/v1/chat/canned-replies/?queue=999999").status_code == 404


def test_without_a_queue_an_agent_gets_the_replies_of_their_queues_only(replies):
    billing, _support = replies
    agent = AgentFactory(username="ann", queues=[billing])

    titles = [r["title"] for r in api_as(agent).get("/api/v1/chat/canned-replies/").json()["results"]]

    assert titles == ["Hello", "Refund"]


def test_a_manager_sees_every_queue_s_replies(replies):
    _billing, support = replies
    manager = AgentFactory(username="max", role="manager")

    response = api_as(manager).get(f"/api/v1/chat/canned-replies/?queue={support.pk}")

    assert [r["title"] for r in response.json()["results"]] == ["Restart"]


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "99999999999999999999"])
def test_a_queue_that_is_not_an_id_is_a_field_error(replies, value):
    agent = AgentFactory(username="ann", queues=[replies[0]])

    response = api_as(agent).get("/api/v1/chat/canned-replies/", {"queue": value})

    assert response.status_code == 400
    assert response.json()["queue"] == ["Give the id, a whole number."]


def test_customers_and_visitors_get_no_canned_replies(replies):
    billing, _support = replies
    customer_user = UserFactory(username="carla")
    CustomerFactory(name="Carla", user=customer_user)

    assert api_as(customer_user).get(f"/api/v1/chat/canned-replies/?queue={billing.pk}").status_code == 403
    assert APIClient().get(f"/api/v1/chat/canned-replies/?queue={billing.pk}").status_code in (401, 403)


def test_canned_replies_are_managed_in_the_admin(client, replies):
    assert admin.site.is_registered(CannedReply)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    page = client.get("/admin/chat_channel/cannedreply/")

    assert page.status_code == 200
    assert "Refund" in page.content.decode() and "Restart" in page.content.decode()


# --- Transfer targets -------------------------------------------------------------------


def test_transfer_targets_are_the_other_agents_of_the_queue_and_the_agent_s_queues():
    widget = widget_make(queue=QueueFactory(slug="chat", name="Chat desk"))
    other_queue = QueueFactory(slug="billing", name="Billing")
    ann = chat_agent(widget.queue, username="ann")
    ann.queues.add(other_queue)
    bob = chat_agent(widget.queue, username="bob", capacity=0)  # takes no chats
    dee = chat_agent(widget.queue, username="dee")  # online, desk open, room for two
    AgentFactory(username="cid", queues=[other_queue])  # not of the chat's queue
    started = start(widget)

    response = api_as(ann).get(f"/api/v1/chat/conversations/{started.conversation.pk}/transfer-targets/")

    assert response.status_code == 200
    body = response.json()
    assert body["agents"] == [
        {"id": bob.pk, "name": "Bob", "available": False, "has_room": False},
        {"id": dee.pk, "name": "Dee", "available": True, "has_room": True},
    ]
    assert [(q["name"], q["current"]) for q in body["queues"]] == [("Billing", False), ("Chat desk", True)]


def test_transfer_targets_of_another_queue_s_chat_are_not_found():
    widget = widget_make()
    started = start(widget)
    outsider = AgentFactory(username="oz", queues=[QueueFactory(slug="elsewhere")])

    response = api_as(outsider).get(f"/api/v1/chat/conversations/{started.conversation.pk}/transfer-targets/")

    assert response.status_code == 404


# --- The customer panel after "Confirm it's them" -------------------------------------------


def test_confirming_the_address_shows_the_owner_s_history_in_the_panel():
    from tests.factories import ticket_make

    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    owner = CustomerFactory(name="Vera Holm", email="vera@example.com")
    earlier = ticket_make(customer=owner, queue=widget.queue, subject="Invoice copy", channel="email")
    started = start(widget, email="vera@example.com")
    conversation = started.conversation
    api = api_as(agent)
    url = f"/api/v1/chat/conversations/{conversation.pk}/"

    before = api.get(url).json()
    assert before["visitor"]["verified"] is False
    assert before["customer_panel"]["claimed_email_owner"] == {
        "customer": owner.pk,
        "name": "Vera Holm",
        "open_tickets": 1,
        "verified": False,
    }
    assert [h["reference"] for h in before["customer_panel"]["history"]] == [conversation.ticket.reference]

    assert api.post(url + "confirm-identity/").status_code == 200

    after = api.get(url).json()
    assert after["visitor"]["verified"] is True
    assert after["customer"]["id"] == owner.pk
    assert after["customer_panel"]["claimed_email_owner"] is None
    assert sorted(h["reference"] for h in after["customer_panel"]["history"]) == sorted(
        [earlier.reference, conversation.ticket.reference]
    )
