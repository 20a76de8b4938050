"""Chats, calls and ratings raise their webhook events once, in the transaction that records them."""

from __future__ import annotations

import json

import pytest

from channels_app.chat import services as chat
from channels_app.phone.models import Call
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_rate
from servicedesk.webhooks.models import WebhookEvent
from tests.channels_app.chat.helpers import chat_agent, start, widget_make
from tests.channels_app.phone.test_events import SECRET, call_events, post
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

SESSION_TYPES = ["chat.started", "chat.ended", "call.ended", "rating.received"]


def sent(receiver, event_type):  # type: ignore[no-untyped-def]
    return [json.loads(r.body)["data"] for r in receiver.requests if r.headers["Servicedesk-Event-Type"] == event_type]


def test_a_live_chat_starts_ends_and_is_rated(receiver, endpoint_for, django_capture_on_commit_callbacks):
    endpoint_for(receiver.url, SESSION_TYPES)
    queue = QueueFactory(slug="chat")
    agent = chat_agent(queue)
    widget = widget_make(queue)

    with django_capture_on_commit_callbacks(execute=True):
        conversation = start(widget).conversation
    with django_capture_on_commit_callbacks(execute=True):
        chat.chat_accept(conversation_id=conversation.pk, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        chat.chat_end(conversation_id=conversation.pk, by="agent", agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        chat.chat_end(conversation_id=conversation.pk, by="agent", agent=agent)  # ended already: nothing
    with django_capture_on_commit_callbacks(execute=True):
        chat.chat_rate(conversation_id=conversation.pk, score=5, comment="Quick!")

    [started] = sent(receiver, "chat.started")
    [ended] = sent(receiver, "chat.ended")
    [rated] = sent(receiver, "rating.received")
    reference = conversation.ticket.reference
    assert (started["chat"]["id"], started["chat"]["status"], started["ticket"]["reference"]) == (
        conversation.pk,
        "waiting",
        reference,
    )
    assert (ended["chat"]["status"], ended["chat"]["agent"]["id"]) == ("ended", agent.pk)
    assert ended["chat"]["ended_at"] is not None
    assert (rated["rating"]["score"], rated["rating"]["comment"], rated["ticket"]["reference"]) == (
        5,
        "Quick!",
        reference,
    )


def test_an_abandoned_chat_ends_and_an_offline_one_never_started(
    receiver, endpoint_for, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, SESSION_TYPES)
    queue = QueueFactory(slug="chat")
    chat_agent(queue)
    widget = widget_make(queue)
    with django_capture_on_commit_callbacks(execute=True):
        waiting = start(widget).conversation
    with django_capture_on_commit_callbacks(execute=True):
        chat.chat_end(conversation_id=waiting.pk, by="visitor")

    assert [e["chat"]["status"] for e in sent(receiver, "chat.ended")] == ["abandoned"]
    offline = widget_make(QueueFactory(slug="nobody"), key="night", name="Night chat")
    with django_capture_on_commit_callbacks(execute=True):
        start(offline)
    assert len(sent(receiver, "chat.started")) == 1


def test_a_call_that_ends_raises_one_event(
    receiver, endpoint_for, client, settings, django_capture_on_commit_callbacks
):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}
    endpoint_for(receiver.url, SESSION_TYPES)
    agent = AgentFactory(email="agent1@example.com")

    for event in call_events("c-77"):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, event).status_code == 200
    call = Call.objects.get(call_id="c-77")
    # The same hang-up again, folded again: still one event.
    with django_capture_on_commit_callbacks(execute=True):
        post(client, {**call_events("c-77")[-1], "cause": "normalClearing"})

    [ended] = sent(receiver, "call.ended")
    assert ended["call"]["id"] == call.pk
    assert (ended["call"]["outcome"], ended["call"]["direction"], ended["call"]["agent"]["id"]) == (
        "answered",
        call.direction,
        agent.pk,
    )
    assert ended["call"]["customer_id"] == call.customer_id
    assert ended["ticket"]["reference"] == call.ticket.reference
    assert WebhookEvent.objects.filter(type="call.ended").count() == 1


def test_a_survey_rating_is_received(receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks):
    endpoint_for(receiver.url, ["rating.received"])
    ticket = ticket_make(customer=customer, queue=queue)

    with django_capture_on_commit_callbacks(execute=True):
        ticket_rate(ticket=ticket, score=2, comment="Slow.", actor=Actor.of_customer(customer, source="portal"))

    [rated] = sent(receiver, "rating.received")
    assert (rated["rating"]["score"], rated["rating"]["comment"], rated["ticket"]["reference"]) == (
        2,
        "Slow.",
        ticket.reference,
    )
