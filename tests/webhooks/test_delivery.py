"""Webhooks from the change to the receiver: the outbox row in the change's transaction, one
delivery per endpoint, signed requests, retries with backoff, the automatic pause, redelivery."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_status_change, ticket_update
from servicedesk.webhooks import services
from servicedesk.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from servicedesk.webhooks.signing import signature_verify
from servicedesk.webhooks.tasks import webhook_event_dispatch_task
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


def opened(customer, queue, commit, subject="Parcel lost"):  # type: ignore[no-untyped-def]
    with commit(execute=True):
        return ticket_make(customer=customer, queue=queue, subject=subject)


def test_a_new_ticket_reaches_the_receiver_signed(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    created = endpoint_for(receiver.url, ["ticket.created"])

    ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    event = WebhookEvent.objects.get()
    [request] = receiver.requests
    assert request.headers["Servicedesk-Event-Id"] == str(event.pk)
    assert request.headers["Servicedesk-Event-Type"] == "ticket.created"
    assert request.headers["Content-Type"] == "application/json"
    assert signature_verify(
        secret=created.secret, header=request.headers["Servicedesk-Signature"], body=request.body, now=int(time.time())
    )
    assert not signature_verify(
        secret="whsec_other", header=request.headers["Servicedesk-Signature"], body=request.body, now=int(time.time())
    )
    assert not signature_verify(
        secret=created.secret,
        header=request.headers["Servicedesk-Signature"],
        body=request.body + b" ",
        now=int(time.time()),
    )
    body = json.loads(request.body)
    assert (body["id"], body["type"], body["version"]) == (str(event.pk), "ticket.created", 1)
    assert body["data"]["ticket"]["reference"] == ticket.reference
    assert body["data"]["ticket"]["customer"] == {"id": customer.pk, "name": "Alice Byrne"}
    assert body["data"]["ticket"]["queue"] == "support"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    attempt = WebhookAttempt.objects.get()
    assert (attempt.number, attempt.status_code, attempt.response_excerpt, attempt.succeeded) == (1, 200, "ok", True)


def test_an_old_signature_is_refused_by_the_receiver_check(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    created = endpoint_for(receiver.url, ["ticket.created"])
    opened(customer, queue, django_capture_on_commit_callbacks)
    request = receiver.requests[0]

    assert not signature_verify(
        secret=created.secret,
        header=request.headers["Servicedesk-Signature"],
        body=request.body,
        now=int(time.time()) + 301,
    )


def test_without_allow_private_the_same_url_is_refused_and_logged(
    receiver, endpoint_for, admin, customer, queue, monkeypatch, django_capture_on_commit_callbacks
):
    # An address is refused when the endpoint is added ...
    with pytest.raises(ApplicationError) as refused:
        endpoint_for(receiver.url, ["ticket.created"], private=False)
    assert (refused.value.field, WebhookEndpoint.objects.count()) == ("url", 0)
    # ... a name is resolved at each delivery: one that leads to the receiver's loopback address is refused then.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "hooks.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = f"http://hooks.example.test:{receiver.port}/hooks"
    endpoint = endpoint_for(url, ["ticket.created"], private=False).endpoint

    opened(customer, queue, django_capture_on_commit_callbacks)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error == "127.0.0.1 is a loopback address; only public addresses receive webhooks."
    assert WebhookAttempt.objects.get().error == delivery.last_error
    # The same name with the flag an admin sets reaches the receiver.
    services.webhook_endpoint_update(endpoint=endpoint, actor=admin, changes={"allow_private_addresses": True})
    services.webhook_delivery_attempt(delivery_id=delivery.pk, at=delivery.next_attempt_at)
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"hooks.example.test:{receiver.port}"


def test_no_endpoint_no_outbox_row(customer, queue, django_capture_on_commit_callbacks):
    opened(customer, queue, django_capture_on_commit_callbacks)

    assert WebhookEvent.objects.count() == 0


def test_a_paused_endpoint_gets_nothing(receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks):
    endpoint = endpoint_for(receiver.url, ["ticket.created"]).endpoint
    services.webhook_endpoint_pause(endpoint=endpoint)

    opened(customer, queue, django_capture_on_commit_callbacks)

    assert (WebhookEvent.objects.count(), WebhookDelivery.objects.count(), receiver.requests) == (0, 0, [])


def test_a_rolled_back_change_raises_no_event(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created", "ticket.updated", "ticket.solved"])
    ticket = opened(customer, queue, django_capture_on_commit_callbacks)
    events_before = WebhookEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        ticket_status_change(ticket=ticket, status="solved", actor=Actor.system())
        assert WebhookEvent.objects.count() == events_before + 2  # written in the change's transaction
        raise RuntimeError("the change fails after its event was written")

    assert WebhookEvent.objects.count() == events_before
    assert [r.headers["Servicedesk-Event-Type"] for r in receiver.requests] == ["ticket.created"]


def test_one_call_changing_several_fields_is_one_update(
    receiver, endpoint_for, customer, queue, agent, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.updated", "ticket.solved"])
    ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        ticket_update(ticket=ticket, actor=Actor.agent(agent), status="solved", priority="high", assignee=agent)
    with django_capture_on_commit_callbacks(execute=True):
        ticket_update(ticket=ticket, actor=Actor.agent(agent), subject="Parcel found")

    types = [r.headers["Servicedesk-Event-Type"] for r in receiver.requests]
    assert sorted(types) == ["ticket.solved", "ticket.updated", "ticket.updated"]
    first, second = [
        json.loads(r.body) for r in receiver.requests if r.headers["Servicedesk-Event-Type"] == "ticket.updated"
    ]
    assert first["data"]["changes"] == [
        {"field": "priority", "before": "normal", "after": "high"},
        {"field": "assignee"},
        {"field": "status", "before": "new", "after": "solved"},
    ]
    assert (first["data"]["ticket"]["status"], first["data"]["ticket"]["assignee"]["id"]) == ("solved", agent.pk)
    assert second["data"]["changes"] == [{"field": "subject", "before": "Parcel lost", "after": "Parcel found"}]


def test_changes_in_one_transaction_are_one_update_and_a_rolled_back_savepoint_is_left_out(
    receiver, endpoint_for, customer, queue, agent, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.updated"])
    ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="high")
        with pytest.raises(RuntimeError), transaction.atomic():
            ticket_update(ticket=ticket, actor=Actor.agent(agent), subject="Never saved")
            raise RuntimeError("this part fails")
        ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="urgent", assignee=agent)

    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["data"]["changes"] == [
        {"field": "priority", "before": "normal", "after": "urgent"},
        {"field": "assignee"},
    ]
    assert (body["data"]["ticket"]["subject"], body["data"]["ticket"]["priority"]) == ("Parcel lost", "urgent")
    assert WebhookEvent.objects.filter(type="ticket.updated").count() == 1


def test_a_savepoint_that_wrote_the_first_update_rolled_back_leaves_the_next_change_its_own_event(
    receiver, endpoint_for, customer, queue, agent, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.updated"])
    ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        ticket_update(ticket=ticket, actor=Actor.agent(agent), tags=["vip"])  # the transaction's first event
        with pytest.raises(RuntimeError), transaction.atomic():
            ticket_update(ticket=ticket, actor=Actor.agent(agent), priority="high")
            raise RuntimeError("this part fails")
        ticket_update(ticket=ticket, actor=Actor.agent(agent), subject="Parcel found")

    [request] = receiver.requests
    assert json.loads(request.body)["data"]["changes"] == [
        {"field": "tags", "before": [], "after": ["vip"]},
        {"field": "subject", "before": "Parcel lost", "after": "Parcel found"},
    ]


def test_internal_notes_are_never_sent(
    receiver, endpoint_for, customer, queue, agent, django_capture_on_commit_callbacks
):
    from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create

    endpoint_for(receiver.url, ["message.created"])
    ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        ticket_note_create(ticket=ticket, text="Customer is on the VIP list.", author=agent, actor=Actor.agent(agent))
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply_create(ticket=ticket, text="We are on it.", author=agent, actor=Actor.agent(agent))

    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["data"]["message"]["text"] for b in bodies] == ["We are on it."]
    assert bodies[0]["data"]["message"]["kind"] == "public_agent"
    assert bodies[0]["data"]["message"]["author"] == {"type": "agent", "id": agent.pk, "name": str(agent)}
    assert "VIP" not in json.dumps([json.loads(r.body) for r in receiver.requests])


def test_broker_down_the_event_waits_for_the_sweep(
    receiver, endpoint_for, customer, queue, monkeypatch, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])

    def broker_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patch:
        patch.setattr(webhook_event_dispatch_task, "delay", broker_down)
        ticket = opened(customer, queue, django_capture_on_commit_callbacks)

    event = WebhookEvent.objects.get()
    assert (event.dispatched_at, WebhookDelivery.objects.count(), receiver.requests) == (None, 0, [])
    assert services.webhooks_sweep()["dispatched"] == 0  # its task may still be on its way
    # Half a minute on, the task is taken for lost.
    WebhookEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=31))

    swept = services.webhooks_sweep()

    assert swept["dispatched"] == 1
    [request] = receiver.requests
    assert json.loads(request.body)["data"]["ticket"]["reference"] == ticket.reference
    assert services.webhooks_sweep()["dispatched"] == 0
    assert len(receiver.requests) == 1


def test_a_dispatch_run_twice_makes_one_delivery(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])
    opened(customer, queue, django_capture_on_commit_callbacks)
    event = WebhookEvent.objects.get()

    assert services.webhook_event_dispatch(event_id=str(event.pk)) == []
    assert WebhookDelivery.objects.count() == 1


def test_retries_back_off_then_the_delivery_fails(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])
    receiver.answer(500, body=b"boom", times=20)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    at = WebhookAttempt.objects.get().at
    waits = []
    for _ in range(7):
        delivery.refresh_from_db()
        due = delivery.next_attempt_at
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk, at=due - timedelta(seconds=1)) is None
        waits.append(due - at)
        at = due
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk, at=due) is not None

    delivery.refresh_from_db()
    assert waits == [timedelta(minutes=m) for m in (1, 5, 30, 120, 300, 600, 1440)]
    assert sum(waits, timedelta()) >= timedelta(hours=24)
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 8, None)
    assert delivery.last_error == "The endpoint answered 500."
    assert list(WebhookAttempt.objects.values_list("number", "status_code", "response_excerpt")) == [
        (n, 500, "boom") for n in range(1, 9)
    ]
    assert len(receiver.requests) == 8
    assert len({r.headers["Servicedesk-Event-Id"] for r in receiver.requests}) == 1


def test_a_failing_endpoint_is_paused_after_24_hours_and_resumed(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks, manager, client
):
    endpoint = endpoint_for(receiver.url, ["ticket.created"]).endpoint
    receiver.answer(503, times=10)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    failing_since = WebhookEndpoint.objects.get().failing_since
    assert failing_since is not None

    assert services.webhooks_sweep(at=failing_since + timedelta(hours=23, minutes=59))["paused"] == 0
    assert services.webhooks_sweep(at=failing_since + timedelta(hours=24))["paused"] == 1

    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.paused_reason) == (False, "failing")
    assert endpoint.paused_at == failing_since + timedelta(hours=24)
    # Paused: nothing due is sent.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    client.force_login(manager)
    page = client.get("/desk/webhooks/").content.decode()
    assert f"{receiver.url} was paused after 24 hours of failed deliveries." in page

    receiver.answers.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/desk/webhooks/{endpoint.pk}/resume/")

    assert response.status_code == 302
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert (endpoint.is_active, endpoint.paused_reason, endpoint.failing_since) == (True, "", None)
    assert (delivery.state, delivery.last_status_code) == ("succeeded", 200)


def test_managers_and_admins_are_told_of_the_pause_in_the_bell(
    receiver, endpoint_for, admin, manager, agent, customer, queue, client, django_capture_on_commit_callbacks
):
    from servicedesk.notifications.models import Notification

    endpoint = endpoint_for(receiver.url, ["ticket.created"]).endpoint
    receiver.answer(503, times=10)
    opened(customer, queue, django_capture_on_commit_callbacks)
    failing_since = WebhookEndpoint.objects.get().failing_since
    assert failing_since is not None

    services.webhooks_sweep(at=failing_since + timedelta(hours=24))
    services.webhooks_sweep(at=failing_since + timedelta(hours=25))  # paused already: told once

    notices = Notification.objects.filter(kind="webhook_paused").order_by("user_id")
    assert [n.user for n in notices] == sorted([admin, manager], key=lambda u: u.pk)
    notice = notices[0]
    assert notice.title == f"Webhook endpoint paused: {receiver.url}"
    assert notice.url == f"/desk/webhooks/{endpoint.pk}/"
    assert (notice.ticket, notice.read_at) == (None, None)
    client.force_login(manager)
    assert 'data-unread="1"' in client.get("/desk/webhooks/").content.decode()
    assert f"Webhook endpoint paused: {receiver.url}" in client.get("/desk/notifications/").content.decode()


def test_a_success_ends_the_run_of_failures(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])
    receiver.answer(500)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert WebhookEndpoint.objects.get().failing_since is not None

    services.webhook_delivery_attempt(delivery_id=delivery.pk, at=delivery.next_attempt_at)

    assert WebhookEndpoint.objects.get().failing_since is None
    assert services.webhooks_sweep(at=timezone.now() + timedelta(days=2))["paused"] == 0


def test_a_delivered_event_is_never_delivered_again(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk, manual=True) is None
    with pytest.raises(services.Conflict):
        services.webhook_delivery_redeliver(delivery=delivery)
    assert len(receiver.requests) == 1
    assert WebhookAttempt.objects.count() == 1


def test_two_workers_claim_a_delivery_once(receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks):
    endpoint_for(receiver.url, ["ticket.created"])
    receiver.answer(500)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    due = delivery.next_attempt_at

    # One worker holds it (its request under way): another finds nothing to send.
    assert services._claim(delivery.pk, at=due, manual=False) is not None
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk, at=due) is None
    # The lease of a worker that died runs out: the delivery is sent again.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk, at=due + services.CLAIM_LEASE * 2) is not None
    assert len(receiver.requests) == 2


def test_redeliver_by_hand_from_the_desk(
    receiver, endpoint_for, customer, queue, manager, client, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver.url, ["ticket.created"]).endpoint
    receiver.answer(500, times=8)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=8, next_attempt_at=None)
    receiver.answers.clear()
    client.force_login(manager)

    page = client.get(f"/desk/webhooks/{endpoint.pk}/").content.decode()
    assert f'action="/desk/webhooks/deliveries/{delivery.pk}/redeliver/"' in page
    assert "The endpoint answered 500." in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/desk/webhooks/deliveries/{delivery.pk}/redeliver/", follow=True)

    assert response.redirect_chain == [(f"/desk/webhooks/{endpoint.pk}/", 302)]
    assert "The event is being sent again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("succeeded", 9)
    last = WebhookAttempt.objects.get(number=9)
    assert (last.manual, last.status_code) == (True, 200)
    assert len(receiver.requests) == 2


def test_redelivery_needs_a_post_with_its_csrf_token(
    receiver, endpoint_for, customer, queue, manager, django_capture_on_commit_callbacks
):
    from django.test import Client

    endpoint_for(receiver.url, ["ticket.created"])
    receiver.answer(500)
    opened(customer, queue, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(manager)

    assert browser.get(f"/desk/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 405
    assert browser.post(f"/desk/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 403
    assert WebhookAttempt.objects.count() == 1
