"""Chat protocol v1 over HTTP: origins and CORS, throttles, field errors, the agents' access per chat."""

from __future__ import annotations

import logging
import uuid

import pytest
from rest_framework.test import APIClient

from channels_app.chat import services
from channels_app.chat.models import ChatConversation, ChatStatus, ChatWidget
from servicedesk.tickets.models import Message, Rating
from tests.api.conftest import client_for
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory

from .helpers import SHOP, chat_agent, start, widget_make

pytestmark = pytest.mark.django_db

URL = "/api/v1/chat/conversations/"


def visitor_client(origin: str | None = SHOP) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    if origin:
        client.defaults["HTTP_ORIGIN"] = origin
    return client


def body(**fields):  # type: ignore[no-untyped-def]
    values = {"name": "Vera", "email": "vera@example.com", "text": "Hello", "client_id": str(uuid.uuid4())}
    values.update(fields)
    return values


def test_a_visitor_starts_a_chat_from_an_allowed_origin_with_cors_headers():
    widget = widget_make()
    chat_agent(widget.queue)
    response = visitor_client().post(URL, body(), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "waiting"
    assert response["Access-Control-Allow-Origin"] == SHOP
    conversation = ChatConversation.objects.get(pk=data["id"])
    assert data["ticket"] == conversation.ticket.reference
    assert services.conversation_for_token(data["visitor_token"]).pk == conversation.pk
    assert conversation.origin == SHOP


def test_other_origins_are_refused_logged_and_get_no_cors(caplog):
    widget = widget_make()
    chat_agent(widget.queue)
    with caplog.at_level(logging.WARNING, logger="channels_app.chat"):
        refused = visitor_client("http://evil.example").post(URL, body(), format="json")
        preflight = visitor_client("http://evil.example").options(URL)
        no_origin = visitor_client(None).post(URL, body(), format="json")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused
    assert preflight.status_code == 403
    assert no_origin.status_code == 403
    assert "from origin http://evil.example" in caplog.text
    assert not ChatConversation.objects.exists()
    allowed = visitor_client().options(URL, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert allowed.status_code == 204 and allowed["Access-Control-Allow-Origin"] == SHOP
    assert "X-Visitor-Token" in allowed["Access-Control-Allow-Headers"]


def test_bad_input_gets_field_errors_and_stores_nothing():
    widget = widget_make(name_required=True)
    chat_agent(widget.queue)
    client = visitor_client()
    cases = [
        (body(text=""), "text"),
        (body(text="x" * 4001), "text"),
        (body(email="not-an-address"), "email"),
        (body(client_id="nope"), "client_id"),
        (body(name=""), "name"),
        (body(topic="no-such-topic"), "topic"),
        (body(email=""), "email"),
    ]
    for payload, field in cases:
        response = client.post(URL, payload, format="json")
        assert response.status_code == 400, (payload, response.content)
        assert field in response.json(), (field, response.json())
    malformed = client.post(URL, "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert not ChatConversation.objects.exists() and not Message.objects.exists()


def test_starting_chats_is_throttled_per_ip(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "chat_start": "2/minute"},
    }
    widget = widget_make()
    chat_agent(widget.queue)
    client = visitor_client()
    codes = [client.post(URL, body(), format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_widget_settings_say_whether_anyone_can_chat():
    widget = widget_make(greeting="Hi!", greeting_zh_hans="你好")
    client = visitor_client()
    offline = client.get(f"/api/v1/chat/widgets/{widget.key}/").json()
    assert offline["online"] is False and offline["offline_reason"] == "nobody_online"
    assert offline["email_required"] is True
    chat_agent(widget.queue)
    online = client.get(f"/api/v1/chat/widgets/{widget.key}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert online["online"] is True and online["greeting"] == "你好"
    assert visitor_client("http://evil.example").get(f"/api/v1/chat/widgets/{widget.key}/").status_code == 403


def test_the_desks_own_widget_shows_its_title_in_the_visitors_language_until_it_is_named():
    QueueFactory(slug="support")
    client = visitor_client("http://testserver")
    settings = client.get("/api/v1/chat/widgets/default/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    # Empty: the widget's own title, "在线咨询" or "Chat", by the visitor's language.
    assert settings["name"] == ""
    ChatWidget.objects.filter(key="default").update(name="Ask the shop")
    assert client.get("/api/v1/chat/widgets/default/").json()["name"] == "Ask the shop"


def test_visitor_calls_need_the_token_of_that_very_chat():
    widget = widget_make()
    agent = chat_agent(widget.queue)
    mine = start(widget)
    theirs = start(widget)
    services.chat_accept(conversation_id=theirs.conversation.pk, agent=agent)
    services.chat_end(conversation_id=theirs.conversation.pk, by="visitor")
    client = visitor_client()
    url = f"{URL}{theirs.conversation.pk}/rating/"
    assert client.post(url, {"score": 1}, format="json", HTTP_X_VISITOR_TOKEN=mine.token).status_code == 404
    assert client.post(url, {"score": 1}, format="json").status_code == 404
    assert not Rating.objects.exists()
    ok = client.post(url, {"score": 5, "comment": "great"}, format="json", HTTP_X_VISITOR_TOKEN=theirs.token)
    assert ok.status_code == 200 and Rating.objects.get().score == 5
    bad = client.post(url, {"score": 9}, format="json", HTTP_X_VISITOR_TOKEN=theirs.token)
    assert bad.status_code == 400 and "score" in bad.json()


def test_the_transcript_is_queued_to_the_address_given(django_capture_on_commit_callbacks):
    widget = widget_make()
    agent = chat_agent(widget.queue)
    started = start(widget, email="vera@example.com")
    services.chat_accept(conversation_id=started.conversation.pk, agent=agent)
    services.chat_agent_message(conversation_id=started.conversation.pk, agent=agent, text="Refund is on its way")
    response = visitor_client().post(
        f"{URL}{started.conversation.pk}/transcript/", {}, format="json", HTTP_X_VISITOR_TOKEN=started.token
    )
    assert response.status_code == 202 and response.json() == {"sent_to": "vera@example.com"}
    transcript = Message.objects.get(
        ticket=started.conversation.ticket, kind="system", external_id__contains="transcript"
    )
    assert "Refund is on its way" in transcript.text and "Hello, my order is late" in transcript.text
    assert transcript.delivery_status == "queued"


def test_agents_see_and_work_only_chats_of_their_queues():
    widget = widget_make()
    ann = chat_agent(widget.queue, username="ann")
    outsider = AgentFactory(username="olaf", queues=[QueueFactory(slug="other")])
    started = start(widget)
    pk = started.conversation.pk
    ann_api, olaf_api = client_for(ann), client_for(outsider)
    listed = ann_api.get(URL).json()["results"]
    assert [c["id"] for c in listed] == [pk]
    assert olaf_api.get(URL).json()["results"] == []
    assert olaf_api.get(f"{URL}{pk}/").status_code == 404
    assert olaf_api.post(f"{URL}{pk}/accept/").status_code == 404
    assert olaf_api.post(f"{URL}{pk}/messages/", {"text": "hi"}, format="json").status_code == 404
    assert ann_api.post(f"{URL}{pk}/accept/").status_code == 200
    taken = ann_api.post(f"{URL}{pk}/accept/")
    assert taken.status_code == 409 and taken.json()["code"] == "taken"
    sent = ann_api.post(f"{URL}{pk}/messages/", {"text": "<b>Hello</b>"}, format="json")
    assert sent.status_code == 201 and sent.json()["text"] == "<b>Hello</b>"
    detail = ann_api.get(f"{URL}{pk}/?after=1").json()
    assert [line["seq"] for line in detail["lines"]] == [2, 3]
    assert detail["status"] == ChatStatus.ACTIVE and detail["visitor"]["verified"] is False
    # A signed-in user without a desk role (a customer) works no chats.
    assert client_for(UserFactory(username="cust")).get(URL).status_code == 403


def test_the_agent_sees_an_address_owner_as_an_unverified_match_and_may_confirm_it():
    widget = widget_make()
    ann = chat_agent(widget.queue, username="ann")
    owner = CustomerFactory(email="kim@example.com", name="Kim Owner")
    from tests.factories import ticket_make

    ticket_make(customer=owner, queue=widget.queue)  # Kim wrote to this queue before: Ann may see her
    started = start(widget, email="kim@example.com", name="Kim?")
    api = client_for(ann)
    panel = api.get(f"{URL}{started.conversation.pk}/").json()["customer_panel"]
    assert panel["claimed_email_owner"]["customer"] == owner.pk
    assert panel["claimed_email_owner"]["verified"] is False
    assert api.post(f"{URL}{started.conversation.pk}/confirm-identity/").status_code == 200
    started.conversation.customer.refresh_from_db()
    assert started.conversation.customer.merged_into_id == owner.pk
    detail = api.get(f"{URL}{started.conversation.pk}/").json()
    assert detail["visitor"]["verified"] is True


def test_preflights_are_not_counted_and_a_429_is_readable_by_the_page(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "chat_start": "1/minute"},
    }
    widget = widget_make()
    chat_agent(widget.queue)
    client = visitor_client()
    for _ in range(3):
        assert client.options(URL, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST").status_code == 204
    assert client.post(URL, body(), format="json").status_code == 201
    throttled = client.post(URL, body(), format="json")
    assert throttled.status_code == 429 and throttled["Access-Control-Allow-Origin"] == SHOP
    assert int(throttled["Retry-After"]) >= 1


def test_a_visitor_sends_an_image_through_the_attachment_checks():
    import base64

    from django.core.files.uploadedfile import SimpleUploadedFile

    widget = widget_make()
    agent = chat_agent(widget.queue)
    started = start(widget)
    services.chat_accept(conversation_id=started.conversation.pk, agent=agent)
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
    )
    client = visitor_client()
    url = f"{URL}{started.conversation.pk}/files/"
    sent = client.post(
        url,
        {"file": SimpleUploadedFile("screen.png", png, "image/png"), "client_id": str(uuid.uuid4())},
        HTTP_X_VISITOR_TOKEN=started.token,
    )
    assert sent.status_code == 201, sent.content
    line = services.lines_after(started.conversation, sent.json()["seq"] - 1)[0]
    frame = services.line_frame(line, started.conversation, for_visitor=True)
    assert frame["files"] == [{"name": "screen.png", "type": "image/png", "size": len(png)}]
    script = client.post(
        url,
        {"file": SimpleUploadedFile("run.sh", b"#!/bin/sh\necho hi\n", "text/plain"), "client_id": str(uuid.uuid4())},
        HTTP_X_VISITOR_TOKEN=started.token,
    )
    assert script.status_code == 400 and "file" in script.json()


def test_a_customer_of_another_queue_who_owns_the_address_is_neither_named_nor_joined():
    from tests.factories import ticket_make

    widget = widget_make()
    ann = chat_agent(widget.queue, username="ann")
    elsewhere = CustomerFactory(email="kim@example.com", name="Kim Elsewhere")
    ticket_make(customer=elsewhere, queue=QueueFactory(slug="vip-desk"))
    started = start(widget, email="kim@example.com")
    api = client_for(ann)
    panel = api.get(f"{URL}{started.conversation.pk}/").json()["customer_panel"]
    assert panel["claimed_email_owner"] is None
    assert "Kim Elsewhere" not in str(panel)
    refused = api.post(f"{URL}{started.conversation.pk}/confirm-identity/")
    assert refused.status_code == 403
    started.conversation.customer.refresh_from_db()
    assert started.conversation.customer.merged_into_id is None
