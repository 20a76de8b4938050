"""The help centre's limits (contact form, replies through a signed link) and how it
behaves while Redis (cache and broker) is down."""

import base64
import json
import logging
import os
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
import redis
from django.core import mail
from django.utils import timezone

from servicedesk.core import ratelimit
from servicedesk.tickets import tasks
from servicedesk.tickets.models import Message, Ticket
from tests.channels_app.web.helpers import contact_data
from tests.channels_app.web.test_portal import receive, ticket_url
from tests.outage import CLOSED_PORT_REDIS, UNREACHABLE_CACHES, celery_broker

CONTACT_URL = "/help/contact/"
TOO_MANY = "Too many requests, try again later."
TOO_MANY_REPLIES = "Too many replies, try again later."


@pytest.fixture
def clock(monkeypatch):
    now = [1_080_000.0]  # an hour window starts here
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


@pytest.mark.django_db
def test_the_contact_form_refuses_the_attempt_after_the_limit_for_the_whole_window(client, settings, clock):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBFORM_RATE_PER_EMAIL": 2, "WEBFORM_RATE_WINDOW_SECONDS": 3600}
    allowed = [client.post(CONTACT_URL, contact_data()).status_code for _ in range(2)]

    clock[0] += 3599  # the last second of the window
    over = client.post(CONTACT_URL, contact_data(), REMOTE_ADDR="192.0.2.50")
    clock[0] += 1  # the next window
    next_window = client.post(CONTACT_URL, contact_data())

    assert allowed == [302, 302]
    assert over.status_code == 429
    assert over.context["form"].non_field_errors() == [TOO_MANY]
    assert next_window.status_code == 302
    assert Ticket.objects.count() == 3


@pytest.mark.django_db
def test_a_repost_of_a_stored_submission_is_not_counted(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBFORM_RATE_PER_EMAIL": 2}
    first, second, third = contact_data(), contact_data(), contact_data()

    reposts = [client.post(CONTACT_URL, first).status_code for _ in range(4)]
    stored = client.post(CONTACT_URL, second).status_code
    over = client.post(CONTACT_URL, third)

    assert reposts == [302, 302, 302, 302]
    assert stored == 302
    assert over.status_code == 429
    assert over.context["form"].non_field_errors() == [TOO_MANY]
    assert list(Message.objects.filter(kind="public_enduser").order_by("pk").values_list("external_id", flat=True)) == [
        first["submission_id"],
        second["submission_id"],
    ]


@pytest.mark.django_db
def test_portal_replies_are_limited_per_ticket_and_a_repost_is_not_counted(client, settings, clock):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "PORTAL_REPLY_RATE_PER_TICKET": 2,
        "PORTAL_REPLY_RATE_WINDOW_SECONDS": 3600,
    }
    ticket = receive().ticket
    url = ticket_url(ticket)
    once = {"message": "Any news?", "submission_id": str(uuid.uuid4())}

    posted = [client.post(url, once).status_code for _ in range(3)]
    posted.append(client.post(url, {"message": "Still waiting.", "submission_id": str(uuid.uuid4())}).status_code)
    clock[0] += 3599
    over = client.post(url, {"message": "Hello??", "submission_id": str(uuid.uuid4())}, REMOTE_ADDR="192.0.2.77")
    clock[0] += 1
    later = client.post(url, {"message": "Thanks.", "submission_id": str(uuid.uuid4())})

    assert posted == [302, 302, 302, 302]
    assert over.status_code == 429
    assert over.context["form"].non_field_errors() == [TOO_MANY_REPLIES]
    assert TOO_MANY_REPLIES in over.content.decode()
    assert later.status_code == 302
    assert list(Message.objects.filter(ticket=ticket, kind="public_enduser").values_list("text", flat=True)) == [
        "Password reset fails.",
        "Any news?",
        "Still waiting.",
        "Thanks.",
    ]


@pytest.mark.django_db
def test_portal_replies_are_limited_per_ip_across_tickets(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PORTAL_REPLY_RATE_PER_IP": 2}
    urls = [ticket_url(receive(email=f"p{n}@example.com").ticket) for n in range(3)]

    answers = [
        client.post(url, {"message": "Hi", "submission_id": str(uuid.uuid4())}, REMOTE_ADDR="203.0.113.5")
        for url in urls
    ]

    assert [answer.status_code for answer in answers] == [302, 302, 429]
    assert Message.objects.filter(kind="public_enduser", text="Hi").count() == 2


@pytest.fixture
def redis_down(settings):
    """The cache and the broker point at a port where nothing listens."""
    settings.CACHES = UNREACHABLE_CACHES
    with celery_broker(CLOSED_PORT_REDIS) as app:
        yield app


@pytest.fixture
def broker_queue():
    """The Celery queue this test uses on the real Redis, emptied before and after."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    name = f"test-outage-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    yield SimpleNamespace(url=url, name=name, client=client)
    client.delete(name)


@pytest.mark.django_db
def test_with_redis_down_the_form_stores_the_request_and_the_acknowledgement_goes_when_the_broker_returns(
    client, settings, redis_down, broker_queue, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        response = client.post(CONTACT_URL, contact_data())

    assert response.status_code == 302
    assert response["Location"] == "/help/contact/received/"
    ticket = Ticket.objects.get()
    assert client.get(response["Location"]).context["reference"] == ticket.reference
    assert list(Message.objects.filter(ticket=ticket).order_by("pk").values_list("kind", "delivery_status")) == [
        ("public_enduser", ""),
        ("system", "queued"),
    ]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "Rate limit ip not counted: the cache is unreachable" in warnings
    assert "Rate limit email not counted: the cache is unreachable" in warnings
    ack = Message.objects.get(ticket=ticket, purpose="acknowledgement")
    assert f"Could not enqueue tickets.message_deliver({ack.pk},): the broker is unreachable" in warnings
    assert mail.outbox == []

    # The broker returns; the beat re-dispatch (queued for over ten minutes) sends the task through it.
    later = timezone.now() + timedelta(minutes=11)
    monkeypatch.setattr(tasks, "timezone", SimpleNamespace(now=lambda: later))
    with celery_broker(broker_queue.url, queue=broker_queue.name):
        assert tasks.outbound_pending_dispatch() == 1
    # A worker takes the task from Redis and runs it.
    raw = broker_queue.client.lpop(broker_queue.name)
    assert raw is not None and broker_queue.client.llen(broker_queue.name) == 0
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == "tickets.messages_deliver"
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert (args, kwargs) == ([[ack.pk]], {})
    assert tasks.messages_deliver_task.apply(args=args).get() == {"sent": 1}

    ack.refresh_from_db()
    assert ack.delivery_status == "sent"
    assert [(sent.to, sent.subject) for sent in mail.outbox] == [
        (["Jane Doe <jane@example.com>"], f"[{ticket.reference}] Printer on fire")
    ]
