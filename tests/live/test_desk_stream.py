"""``/ws/desk/`` through the whole ASGI application: Origin check, session sign-in, access on every push."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from servicedesk.asgi import application
from servicedesk.live.consumers import CLOSE_FORBIDDEN, RESUME_LIMIT
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import TicketEvent
from servicedesk.tickets.services.tickets import ticket_priority_change
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


def cookie_for(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def desk(cookie: bytes | None, origin: bytes | None = b"http://testserver") -> WebsocketCommunicator:
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/desk/", headers=headers)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


def change_priority(ticket: Any, priority: str) -> None:
    ticket.refresh_from_db()
    ticket_priority_change(ticket=ticket, priority=priority, actor=Actor.system(source="test"))


def test_an_agent_hears_of_changes_in_their_queues_and_of_nothing_else():
    support, billing = QueueFactory(slug="support"), QueueFactory(slug="billing")
    agent = AgentFactory(username="ann", queues=[support])
    mine = ticket_make(queue=support, customer=CustomerFactory())
    theirs = ticket_make(queue=billing, customer=CustomerFactory())
    cookie = cookie_for(agent)

    async def scenario() -> None:
        ws = desk(cookie)
        connected, _ = await ws.connect()
        assert connected
        hello = await ws.receive_json_from()
        assert hello["type"] == "hello" and hello["cursor"] >= 1

        await database_sync_to_async(change_priority)(theirs, "high")
        await database_sync_to_async(change_priority)(mine, "urgent")
        frame = await ws.receive_json_from(timeout=5)
        last = await database_sync_to_async(lambda: TicketEvent.objects.filter(ticket=mine).latest("pk").pk)()
        assert frame == {
            "type": "changed",
            "tickets": [{"id": mine.pk, "reference": mine.reference, "event": last}],
            "cursor": last,
        }
        # Nothing of the other queue's ticket, not even its id.
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)


def test_a_push_is_checked_against_access_when_it_arrives_not_when_the_agent_joined():
    support = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[support])
    ticket = ticket_make(queue=support, customer=CustomerFactory())
    cookie = cookie_for(agent)

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        # Taken out of the queue while connected: the very next push is filtered.
        await database_sync_to_async(lambda: agent.queues.remove(support))()
        await database_sync_to_async(change_priority)(ticket, "high")
        assert await ws.receive_nothing(timeout=0.5)
        # A ping re-reads the queues: the consumer leaves the group.
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    run(scenario)


def test_managers_hear_of_every_queue():
    manager = AgentFactory(username="max", role="manager")
    ticket = ticket_make(queue=QueueFactory(slug="billing"), customer=CustomerFactory())
    cookie = cookie_for(manager)

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await database_sync_to_async(change_priority)(ticket, "high")
        frame = await ws.receive_json_from(timeout=5)
        assert [t["id"] for t in frame["tickets"]] == [ticket.pk]
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize("who", ["nobody", "customer"])
def test_only_signed_in_staff_may_open_the_stream(who, caplog):
    cookie = None
    if who == "customer":
        from servicedesk.tickets.models import Customer

        user = AgentFactory.build(username="carla")
        user.save()
        customer = CustomerFactory(email="carla@example.com")
        Customer.objects.filter(pk=customer.pk).update(user=user)
        cookie = cookie_for(user)

    async def scenario() -> None:
        ws = desk(cookie)
        connected, code = await ws.connect()
        assert (connected, code) == (False, CLOSE_FORBIDDEN)

    with caplog.at_level(logging.INFO, logger="servicedesk.live.consumers"):
        run(scenario)
    assert ("not signed in" if who == "nobody" else "is not staff") in caplog.text


@pytest.mark.parametrize("origin", [b"https://evil.example", b"null", None])
def test_a_socket_opened_from_another_site_is_refused_and_logged(origin, caplog):
    support = QueueFactory(slug="support")
    cookie = cookie_for(AgentFactory(username="ann", queues=[support]))

    async def scenario() -> None:
        ws = desk(cookie, origin=origin)
        connected, _ = await ws.connect()
        assert not connected

    with caplog.at_level(logging.WARNING, logger="servicedesk.live.origin"):
        run(scenario)
    assert "Refused a WebSocket from origin" in caplog.text


def test_resume_replays_from_the_database_what_the_agent_may_see():
    support, billing = QueueFactory(slug="support"), QueueFactory(slug="billing")
    agent = AgentFactory(username="ann", queues=[support])
    mine = [ticket_make(queue=support, customer=CustomerFactory()) for _ in range(3)]
    theirs = ticket_make(queue=billing, customer=CustomerFactory())
    cursor = TicketEvent.objects.latest("pk").pk
    # Changed while the agent was away.
    change_priority(mine[1], "high")
    change_priority(theirs, "high")
    change_priority(mine[0], "low")
    cookie = cookie_for(agent)

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await ws.send_json_to({"type": "resume", "after": cursor})
        frame = await ws.receive_json_from()
        assert frame["type"] == "changed" and frame["more"] is False
        assert [t["id"] for t in frame["tickets"]] == [mine[1].pk, mine[0].pk]
        assert frame["cursor"] == frame["tickets"][-1]["event"]
        # From the new cursor nothing is left.
        await ws.send_json_to({"type": "resume", "after": frame["cursor"]})
        assert (await ws.receive_json_from())["tickets"] == []
        await ws.disconnect()

    run(scenario)


def test_resume_pages_a_long_absence():
    support = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[support])
    customer = CustomerFactory()
    for _ in range(RESUME_LIMIT + 5):
        ticket_make(queue=support, customer=customer)
    cookie = cookie_for(agent)

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await ws.send_json_to({"type": "resume", "after": 0})
        first = await ws.receive_json_from()
        assert (len(first["tickets"]), first["more"]) == (RESUME_LIMIT, True)
        await ws.send_json_to({"type": "resume", "after": first["cursor"]})
        second = await ws.receive_json_from()
        assert (len(second["tickets"]), second["more"]) == (5, False)
        assert not {t["id"] for t in first["tickets"]} & {t["id"] for t in second["tickets"]}
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"type": "resume"}',
        '{"type": "resume", "after": -1}',
        '{"type": "resume", "after": true}',
        "[1]",
        '{"type": "x"}',
    ],
)
def test_a_malformed_frame_gets_an_error_frame_and_the_socket_stays_open(frame):
    cookie = cookie_for(AgentFactory(username="ann", queues=[QueueFactory(slug="support")]))

    async def scenario() -> None:
        ws = desk(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await ws.send_to(text_data=frame)
        error = await ws.receive_json_from()
        assert error["type"] == "error" and error["code"] == "bad_frame" and error["message"]
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from())["type"] == "pong"
        await ws.disconnect()

    run(scenario)


def test_imported_history_pushes_nothing(monkeypatch):
    from servicedesk.live import follow

    ticket = ticket_make(queue=QueueFactory(slug="support"), customer=CustomerFactory())
    sent: list[str] = []
    monkeypatch.setattr(follow, "realtime_publish", lambda **kwargs: sent.append(kwargs["group"]))
    ticket_priority_change(ticket=ticket, priority="high", actor=Actor.system(source="import"))
    assert sent == []
    ticket_priority_change(ticket=ticket, priority="low", actor=Actor.system(source="test"))
    assert sent == [f"desk.queue.{ticket.queue_id}"]


@pytest.mark.parametrize("on", [True, False])
def test_desk_pages_open_the_stream_from_the_newest_change_when_live_updates_are_on(client, settings, on):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "LIVE_UPDATES": on}
    support = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[support])
    ticket = ticket_make(queue=support, customer=CustomerFactory())
    client.force_login(agent)
    newest = TicketEvent.objects.latest("pk").pk
    for path in ("/desk/", f"/desk/tickets/{ticket.reference}/"):
        page = client.get(path).content.decode()
        assert ('src="/static/desk/live.js"' in page) is on, path
        assert (f'data-cursor="{newest}"' in page) is on, path
        assert ('id="live-status"' in page) is on, path
    # The customer's pages never carry it.
    assert "live.js" not in client.get("/help/contact/").content.decode()
