"""The screen pop: the push to the ringing agents' desks, what each agent's pop shows, and its actions."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from channels_app.phone.api import signature_make
from channels_app.phone.models import Call, PhoneLine
from servicedesk.routing.models import AgentProfile, Availability
from servicedesk.tickets.models import Identity, IdentityKind, Message, Session, Ticket
from servicedesk.tickets.statuses import Status
from tests.channels_app.phone.test_events import CALLER, LINE_NUMBER, SECRET, call_events
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make
from tests.live.test_desk_stream import cookie_for, desk, run


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}


def post_event(event: dict[str, Any]) -> int:
    body = json.dumps(event).encode()
    response = Client().post(
        "/api/v1/phone/events/",
        data=body,
        content_type="application/json",
        HTTP_X_SERVICEDESK_SIGNATURE=signature_make(body, SECRET, int(time.time())),
    )
    return response.status_code


def setting_up() -> dict[str, Any]:
    support, billing = QueueFactory(slug="support"), QueueFactory(slug="billing")
    PhoneLine.objects.create(key="default", name="Main line", number=LINE_NUMBER, queue=support)
    ann = AgentFactory(username="ann", email="ann@example.com", queues=[support])
    bob = AgentFactory(username="bob", email="bob@example.com", queues=[support])
    eve = AgentFactory(username="eve", email="eve@example.com", queues=[billing])
    customer = CustomerFactory(name="Maeve Byrne")
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    open_ticket = ticket_make(customer=customer, queue=support, subject="Router keeps dropping")
    return {"ann": ann, "bob": bob, "eve": eve, "customer": customer, "ticket": open_ticket}


def ring(call_id: str, users: list[str], *, seconds_ago: int = 5) -> dict[str, Any]:
    return {
        "event": "newCall",
        "call_id": call_id,
        "from": CALLER,
        "to": LINE_NUMBER,
        "direction": "in",
        "user": users,
        "at": (timezone.now() - timedelta(seconds=seconds_ago)).isoformat(),
    }


def answer(call_id: str, who: str) -> dict[str, Any]:
    return {"event": "answer", "call_id": call_id, "answering_user": who, "at": timezone.now().isoformat()}


def hangup(call_id: str) -> dict[str, Any]:
    return {"event": "hangup", "call_id": call_id, "cause": "normalClearing", "at": timezone.now().isoformat()}


async def phone_frame(ws: Any) -> dict[str, Any]:
    """The next call frame on a desk socket (the ticket a call opens is news of its own)."""
    while True:
        frame = await ws.receive_json_from(timeout=5)
        if frame.get("type") == "phone":
            return frame


@pytest.mark.django_db(transaction=True)
def test_a_ringing_call_pops_on_the_ringing_agents_desks_only():
    async_to_sync(get_channel_layer().flush)()
    people = setting_up()
    cookies = {name: cookie_for(people[name]) for name in ("ann", "bob", "eve")}

    async def scenario() -> None:
        sockets = {}
        for name, cookie in cookies.items():
            ws = desk(cookie)
            assert (await ws.connect())[0]
            assert (await ws.receive_json_from())["type"] == "hello"
            sockets[name] = ws
        assert await database_sync_to_async(post_event)(ring("p-1", ["ann@example.com", "bob@example.com"])) == 200
        call_id = await database_sync_to_async(lambda: Call.objects.get(call_id="p-1").pk)()
        for name in ("ann", "bob"):
            assert await sockets[name].receive_json_from(timeout=5) == {
                "type": "phone",
                "event": "call",
                "call": call_id,
            }
        assert await sockets["eve"].receive_nothing(timeout=0.5)
        # Ann answers: Bob is told too, so his pop can go.
        assert await database_sync_to_async(post_event)(answer("p-1", "ann@example.com")) == 200
        for name in ("ann", "bob"):
            assert await phone_frame(sockets[name]) == {"type": "phone", "event": "call", "call": call_id}
        assert await sockets["eve"].receive_nothing(timeout=0.3)
        for ws in sockets.values():
            await ws.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_call_naming_nobody_pops_for_the_online_agents_of_the_lines_queue():
    async_to_sync(get_channel_layer().flush)()
    people = setting_up()
    AgentProfile.objects.update_or_create(
        user=people["ann"], defaults={"availability": Availability.ONLINE, "seen_at": timezone.now()}
    )
    cookies = {name: cookie_for(people[name]) for name in ("ann", "bob")}

    async def scenario() -> None:
        sockets = {}
        for name, cookie in cookies.items():
            ws = desk(cookie)
            assert (await ws.connect())[0]
            assert (await ws.receive_json_from())["type"] == "hello"
            sockets[name] = ws
        # Ann's socket made her online; Bob is offline.
        await database_sync_to_async(
            lambda: AgentProfile.objects.filter(user=people["bob"]).update(availability=Availability.OFFLINE)
        )()
        assert await database_sync_to_async(post_event)(ring("p-2", [])) == 200
        call_id = await database_sync_to_async(lambda: Call.objects.get(call_id="p-2").pk)()
        assert await sockets["ann"].receive_json_from(timeout=5) == {"type": "phone", "event": "call", "call": call_id}
        assert await sockets["bob"].receive_nothing(timeout=0.5)
        # The caller hangs up: the queue's agents hear of it too, so the pop leaves their screens.
        assert await database_sync_to_async(post_event)(hangup("p-2")) == 200
        assert await phone_frame(sockets["ann"]) == {"type": "phone", "event": "call", "call": call_id}
        # Bob hears of the callback ticket in his queue, never of the call.
        heard = []
        while not await sockets["bob"].receive_nothing(timeout=0.5):
            heard.append(await sockets["bob"].receive_json_from())
        assert [frame for frame in heard if frame.get("type") == "phone"] == []
        for ws in sockets.values():
            await ws.disconnect()

    run(scenario)


@pytest.mark.django_db
def test_the_pop_shows_the_caller_and_open_tickets_and_follows_the_call(client):
    people = setting_up()
    assert post_event(ring("p-3", ["ann@example.com", "bob@example.com"])) == 200
    call = Call.objects.get(call_id="p-3")
    pop_url = f"/desk/calls/{call.pk}/pop/"
    client.force_login(people["ann"])
    page = client.get(pop_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Incoming call" in html and "Maeve Byrne" in html and CALLER in html
    assert people["ticket"].reference in html and "Attach the call" in html and "New ticket" in html
    # Every pop of the agent, for a page that opens or a socket that reconnects.
    assert f'data-call="{call.pk}"' in client.get("/desk/calls/pops/").content.decode()
    # Eve works another queue and her phone did not ring: the call is not hers to see.
    eve = Client()
    eve.force_login(people["eve"])
    assert eve.get(pop_url).status_code == 404
    assert f'data-call="{call.pk}"' not in eve.get("/desk/calls/pops/").content.decode()

    assert post_event(answer("p-3", "ann@example.com")) == 200
    bob = Client()
    bob.force_login(people["bob"])
    assert bob.get(pop_url).status_code == 204
    html = client.get(pop_url).content.decode()
    assert "On a call" in html
    call.refresh_from_db()
    assert call.ticket_id is not None  # opened on answer

    assert post_event(hangup("p-3")) == 200
    html = client.get(pop_url).content.decode()
    assert "Call ended: wrap-up" in html and "Save wrap-up" in html
    assert bob.get(pop_url).status_code == 204


@pytest.mark.django_db
def test_attaching_the_call_to_an_open_ticket_moves_its_entry_there(client):
    people = setting_up()
    post_event(ring("p-4", ["ann@example.com"]))
    post_event(answer("p-4", "ann@example.com"))
    call = Call.objects.get(call_id="p-4")
    opened = call.ticket
    client.force_login(people["ann"])
    response = client.post(f"/desk/calls/{call.pk}/attach/", {"ticket": people["ticket"].reference})
    assert response.status_code == 302 and response["Location"].endswith(f"/desk/tickets/{people['ticket'].reference}/")
    call.refresh_from_db()
    assert call.ticket_id == people["ticket"].pk
    assert Session.objects.get(pk=call.session_id).ticket_id == people["ticket"].pk
    assert Message.objects.get(external_id=f"call:{call.pk}", channel="phone").ticket_id == people["ticket"].pk
    # The ticket the call opened on answer held nothing else: it is deleted.
    opened.refresh_from_db()
    assert opened.is_deleted


@pytest.mark.django_db
def test_attaching_to_a_ticket_the_agent_may_not_see_changes_nothing(client):
    people = setting_up()
    hidden = ticket_make(customer=people["customer"], queue=QueueFactory(slug="billing"))
    post_event(ring("p-5", ["ann@example.com"]))
    call = Call.objects.get(call_id="p-5")
    client.force_login(people["ann"])
    client.post(f"/desk/calls/{call.pk}/attach/", {"ticket": hidden.reference})
    call.refresh_from_db()
    assert call.ticket_id is None
    # And a call the agent may not see is no call at all.
    eve = Client()
    eve.force_login(people["eve"])
    assert eve.post(f"/desk/calls/{call.pk}/attach/", {"ticket": hidden.reference}).status_code == 404
    assert eve.post(f"/desk/calls/{call.pk}/ticket/").status_code == 404
    call.refresh_from_db()
    assert call.ticket_id is None


@pytest.mark.django_db
def test_new_ticket_from_the_pop_while_it_rings(client):
    people = setting_up()
    post_event(ring("p-6", ["ann@example.com"]))
    call = Call.objects.get(call_id="p-6")
    client.force_login(people["ann"])
    response = client.post(f"/desk/calls/{call.pk}/ticket/")
    call.refresh_from_db()
    assert response.status_code == 302 and call.ticket.reference in response["Location"]
    assert call.ticket.channel == "phone"
    # Answered later: the call stays on that ticket, no second one.
    post_event(answer("p-6", "ann@example.com"))
    call.refresh_from_db()
    assert Ticket.objects.filter(channel="phone").count() == 1


@pytest.mark.django_db
def test_the_wrap_up_saves_the_note_and_status_and_ends_the_after_contact_work(client):
    people = setting_up()
    post_event(ring("p-7", ["ann@example.com"]))
    post_event(answer("p-7", "ann@example.com"))
    post_event(hangup("p-7"))
    call = Call.objects.get(call_id="p-7")
    Call.objects.filter(pk=call.pk).update(ended_at=timezone.now() - timedelta(seconds=40))
    bob = Client()
    bob.force_login(people["bob"])
    bob.post(f"/desk/calls/{call.pk}/wrap-up/", {"note": "not mine", "status": "solved"})
    assert Session.objects.get(pk=call.session_id).after_work_seconds == 0
    client.force_login(people["ann"])
    response = client.post(
        f"/desk/calls/{call.pk}/wrap-up/", {"note": "Reset the router <b>remotely</b>", "status": Status.SOLVED}
    )
    assert response.status_code == 302
    call.refresh_from_db()
    assert call.wrapped_up_at is not None
    assert 39 <= Session.objects.get(pk=call.session_id).after_work_seconds <= 45
    ticket = Ticket.objects.get(pk=call.ticket_id)
    assert ticket.status == Status.SOLVED
    assert Message.objects.filter(ticket=ticket, kind="internal", text="Reset the router <b>remotely</b>").exists()
    assert client.get(f"/desk/calls/{call.pk}/pop/").status_code == 204
    # Saved twice: nothing changes.
    client.post(f"/desk/calls/{call.pk}/wrap-up/", {"note": "again", "status": Status.OPEN})
    assert Ticket.objects.get(pk=call.ticket_id).status == Status.SOLVED
    assert not Message.objects.filter(ticket=ticket, text="again").exists()


@pytest.mark.django_db
def test_a_bad_wrap_up_status_is_refused_with_nothing_saved(client):
    people = setting_up()
    for event in call_events("p-8"):
        post_event(dict(event, answering_user="ann@example.com") if event["event"] == "answer" else event)
    call = Call.objects.get(call_id="p-8")
    client.force_login(people["ann"])
    client.post(f"/desk/calls/{call.pk}/wrap-up/", {"note": "x", "status": "nonsense"})
    call.refresh_from_db()
    assert call.wrapped_up_at is None
    assert not Message.objects.filter(ticket_id=call.ticket_id, kind="internal").exists()


@pytest.mark.django_db
def test_customers_and_strangers_get_no_pop(client):
    people = setting_up()
    post_event(ring("p-9", ["ann@example.com"]))
    call = Call.objects.get(call_id="p-9")
    response = client.get(f"/desk/calls/{call.pk}/pop/")
    assert response.status_code in (302, 403)
    assert client.get("/desk/calls/pops/").status_code in (302, 403)
    assert people["customer"].name not in client.get("/desk/calls/pops/").content.decode()
