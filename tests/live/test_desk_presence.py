"""Who else views a ticket, and who types on it: relayed between ``/ws/desk/`` sockets, checked by the access rule."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from servicedesk.live.presence import VIEWER_TTL, Viewers, ticket_group
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make
from tests.live.test_desk_stream import cookie_for, desk, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


@pytest.fixture
def desk_team() -> dict[str, Any]:
    support, billing = QueueFactory(slug="support"), QueueFactory(slug="billing")
    ann = AgentFactory(username="ann", display_name="Ann Agent", queues=[support])
    cid = AgentFactory(username="cid", display_name="Cid <b>Agent</b>", queues=[support])
    bob = AgentFactory(username="bob", display_name="Bob Billing", queues=[billing])
    ticket = ticket_make(queue=support, customer=CustomerFactory())
    return {
        "ticket": ticket,
        "ann": ann,
        "cid": cid,
        "bob": bob,
        "cookies": {name: cookie_for(user) for name, user in (("ann", ann), ("cid", cid), ("bob", bob))},
    }


async def connected(cookie: bytes) -> Any:
    ws = desk(cookie)
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from())["type"] == "hello"
    return ws


async def next_of(ws: Any, kind: str, *, timeout: float = 5) -> dict[str, Any]:
    """The next frame of type ``kind`` (others skipped)."""
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        if frame["type"] == kind:
            return frame


def test_agents_on_one_ticket_see_each_other_and_never_themselves(desk_team):
    ref = desk_team["ticket"].reference
    ann_id, cid_id = desk_team["ann"].pk, desk_team["cid"].pk
    cookies = desk_team["cookies"]

    async def scenario() -> None:
        ann, cid = await connected(cookies["ann"]), await connected(cookies["cid"])
        await ann.send_json_to({"type": "view", "ticket": ref})
        assert await ann.receive_json_from() == {"type": "viewers", "ticket": ref, "viewers": []}

        # Cid opens it: told of Ann (who answers his greeting); Ann told of Cid.
        await cid.send_json_to({"type": "view", "ticket": ref})
        assert await cid.receive_json_from() == {"type": "viewers", "ticket": ref, "viewers": []}
        assert await cid.receive_json_from(timeout=5) == {
            "type": "viewers",
            "ticket": ref,
            "viewers": [{"id": ann_id, "name": "Ann Agent"}],
        }
        # The name is passed on as the text it is; the page shows it as text.
        assert await ann.receive_json_from(timeout=5) == {
            "type": "viewers",
            "ticket": ref,
            "viewers": [{"id": cid_id, "name": "Cid <b>Agent</b>"}],
        }

        # Re-announcing (every 20 s) answers the announcer with the list; the others hear no change.
        await ann.send_json_to({"type": "view", "ticket": ref})
        assert (await ann.receive_json_from())["viewers"] == [{"id": cid_id, "name": "Cid <b>Agent</b>"}]
        assert await cid.receive_nothing(timeout=0.3)

        # Ann's second tab: Cid still sees Ann once; Ann's tabs never list Ann.
        ann2 = await connected(cookies["ann"])
        await ann2.send_json_to({"type": "view", "ticket": ref})
        assert (await ann2.receive_json_from())["viewers"] == []
        assert (await ann2.receive_json_from(timeout=5))["viewers"] == [{"id": cid_id, "name": "Cid <b>Agent</b>"}]
        assert await cid.receive_nothing(timeout=0.3)
        assert await ann.receive_nothing(timeout=0.3)

        # One of Ann's tabs leaves: she still views it in the other.
        await ann2.send_json_to({"type": "leave", "ticket": ref})
        assert await cid.receive_nothing(timeout=0.3)
        # The other disconnects: Cid is told she left.
        await ann.disconnect()
        assert await cid.receive_json_from(timeout=5) == {"type": "viewers", "ticket": ref, "viewers": []}
        await ann2.disconnect()
        await cid.disconnect()

    run(scenario)


def test_typing_reaches_the_other_viewers_only(desk_team):
    ref = desk_team["ticket"].reference
    cookies = desk_team["cookies"]
    cid_id = desk_team["cid"].pk

    async def scenario() -> None:
        ann, cid = await connected(cookies["ann"]), await connected(cookies["cid"])
        ann_elsewhere = await connected(cookies["ann"])  # a tab on the inbox: views nothing
        for ws in (ann, cid):
            await ws.send_json_to({"type": "view", "ticket": ref})
        await next_of(ann, "viewers")
        await next_of(cid, "viewers")
        await next_of(cid, "viewers")  # Ann answered
        await next_of(ann, "viewers")  # Cid arrived

        await cid.send_json_to({"type": "typing", "ticket": ref})
        assert await ann.receive_json_from(timeout=5) == {
            "type": "typing",
            "ticket": ref,
            "agent": {"id": cid_id, "name": "Cid <b>Agent</b>"},
        }
        # Not echoed to the typist; not heard by a socket that does not view the ticket.
        assert await cid.receive_nothing(timeout=0.3)
        assert await ann_elsewhere.receive_nothing(timeout=0.3)

        # Typing needs a view of the ticket first.
        await ann_elsewhere.send_json_to({"type": "typing", "ticket": ref})
        error = await ann_elsewhere.receive_json_from()
        assert (error["type"], error["code"]) == ("error", "bad_frame")
        assert await ann.receive_nothing(timeout=0.3)
        for ws in (ann, cid, ann_elsewhere):
            await ws.disconnect()

    run(scenario)


def test_a_ticket_the_agent_may_not_see_is_refused_and_its_viewers_never_hear_of_them(desk_team, caplog):
    """Bob works billing; the ticket is in support. Refused like a ticket that does not exist."""
    ref = desk_team["ticket"].reference
    cookies = desk_team["cookies"]
    ticket = desk_team["ticket"]
    layer = get_channel_layer()

    async def scenario() -> None:
        ann, bob = await connected(cookies["ann"]), await connected(cookies["bob"])
        await ann.send_json_to({"type": "view", "ticket": ref})
        await next_of(ann, "viewers")

        for reference in (ref, "SD-999999"):
            await bob.send_json_to({"type": "view", "ticket": reference})
            assert await bob.receive_json_from() == {
                "type": "error",
                "code": "not_found",
                "message": "no such ticket, or not yours to see",
                "ticket": reference,
            }
        assert len(layer.groups[ticket_group(ticket.pk)]) == 1  # Ann's socket only
        assert await ann.receive_nothing(timeout=0.3)

        # Bob hears nothing of the ticket: not Ann's typing, not her leaving.
        await ann.send_json_to({"type": "typing", "ticket": ref})
        await bob.send_json_to({"type": "typing", "ticket": ref})
        assert (await bob.receive_json_from())["code"] == "bad_frame"
        assert await bob.receive_nothing(timeout=0.3)
        await ann.disconnect()
        await bob.disconnect()

    with caplog.at_level(logging.INFO, logger="servicedesk.live"):
        run(scenario)
    assert f"frame refused for user {desk_team['bob'].pk} (not_found)" in caplog.text


def test_an_agent_taken_out_of_the_queue_leaves_the_ticket_at_the_next_view(desk_team):
    ref = desk_team["ticket"].reference
    cookies = desk_team["cookies"]
    ann_user = desk_team["ann"]
    support = desk_team["ticket"].queue

    async def scenario() -> None:
        ann, cid = await connected(cookies["ann"]), await connected(cookies["cid"])
        for ws in (ann, cid):
            await ws.send_json_to({"type": "view", "ticket": ref})
        await next_of(cid, "viewers")
        assert (await next_of(cid, "viewers"))["viewers"] == [{"id": ann_user.pk, "name": "Ann Agent"}]

        await database_sync_to_async(lambda: ann_user.queues.remove(support))()
        await ann.send_json_to({"type": "view", "ticket": ref})
        assert (await next_of(ann, "error"))["code"] == "not_found"
        assert await cid.receive_json_from(timeout=5) == {"type": "viewers", "ticket": ref, "viewers": []}
        # And her typing is no longer relayed.
        await ann.send_json_to({"type": "typing", "ticket": ref})
        assert (await ann.receive_json_from())["code"] == "bad_frame"
        assert await cid.receive_nothing(timeout=0.3)
        await ann.disconnect()
        await cid.disconnect()

    run(scenario)


def test_a_viewer_not_heard_of_for_45_seconds_is_gone():
    viewers = Viewers()
    viewers.seen("tab-1", user_id=1, name="Ann", at=100.0)
    viewers.seen("tab-2", user_id=2, name="Cid", at=110.0)
    viewers.seen("tab-3", user_id=1, name="Ann", at=120.0)  # Ann's second tab
    assert viewers.current(now=130.0, exclude_user=9) == [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Cid"}]
    assert viewers.current(now=130.0, exclude_user=1) == [{"id": 2, "name": "Cid"}]
    # Ann's first tab expires; her second keeps her shown.
    assert viewers.current(now=100.0 + VIEWER_TTL + 1, exclude_user=9) == [
        {"id": 1, "name": "Ann"},
        {"id": 2, "name": "Cid"},
    ]
    assert viewers.current(now=110.0 + VIEWER_TTL + 1, exclude_user=9) == [{"id": 1, "name": "Ann"}]
    assert viewers.current(now=120.0 + VIEWER_TTL + 1, exclude_user=9) == []
    viewers.seen("tab-2", user_id=2, name="Cid", at=200.0)
    viewers.gone("tab-2")
    assert viewers.current(now=200.0, exclude_user=9) == []


def test_a_silent_viewer_expires_from_the_list_sent_on_the_next_view(desk_team, monkeypatch):
    """A server killed before its sockets could say goodbye: its viewer is dropped after VIEWER_TTL."""
    from servicedesk.live import presence

    ref = desk_team["ticket"].reference
    cookies = desk_team["cookies"]
    now = [1000.0]
    monkeypatch.setattr(presence, "clock", lambda: now[0])

    async def scenario() -> None:
        ann = await connected(cookies["ann"])
        await ann.send_json_to({"type": "view", "ticket": ref})
        await next_of(ann, "viewers")
        # A viewer on another server that then went away without a word.
        await get_channel_layer().group_send(
            ticket_group(desk_team["ticket"].pk),
            {
                "type": "presence.here",
                "ticket": desk_team["ticket"].pk,
                "agent": {"id": 777, "name": "Gone Agent"},
                "sender": "specific.elsewhere!gone",
                "greet": False,
            },
        )
        assert (await ann.receive_json_from(timeout=5))["viewers"] == [{"id": 777, "name": "Gone Agent"}]
        now[0] += VIEWER_TTL - 1
        await ann.send_json_to({"type": "view", "ticket": ref})
        assert (await ann.receive_json_from())["viewers"] == [{"id": 777, "name": "Gone Agent"}]
        now[0] += 2
        await ann.send_json_to({"type": "view", "ticket": ref})
        assert (await ann.receive_json_from())["viewers"] == []
        await ann.disconnect()

    run(scenario)


def test_with_the_layer_unreachable_view_typing_and_leave_answer_unavailable_and_the_socket_stays(
    desk_team, monkeypatch, caplog
):
    ref = desk_team["ticket"].reference
    other = ticket_make(queue=desk_team["ticket"].queue, customer=CustomerFactory()).reference
    layer = get_channel_layer()

    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis is unreachable")

    async def scenario() -> None:
        ws = await connected(desk_team["cookies"]["ann"])
        await ws.send_json_to({"type": "view", "ticket": ref})
        assert (await next_of(ws, "viewers"))["viewers"] == []
        with monkeypatch.context() as patch:
            for name in ("group_add", "group_discard", "group_send", "send"):
                patch.setattr(layer, name, unreachable)
            for frame in (
                {"type": "view", "ticket": other},
                {"type": "view", "ticket": ref},
                {"type": "typing", "ticket": ref},
                {"type": "leave", "ticket": ref},
            ):
                await ws.send_json_to(frame)
                refused = await next_of(ws, "error")
                assert refused["code"] == "unavailable", (frame, refused)
            await ws.send_json_to({"type": "ping"})
            assert (await next_of(ws, "pong"))["type"] == "pong"
        # The layer back: views work again on the same socket.
        await ws.send_json_to({"type": "view", "ticket": other})
        assert (await next_of(ws, "viewers"))["viewers"] == []
        await ws.send_json_to({"type": "ping"})
        assert (await next_of(ws, "pong"))["type"] == "pong"
        await ws.disconnect()

    with caplog.at_level(logging.WARNING, logger="servicedesk.live"):
        run(scenario)
    assert "the channel layer is unreachable" in caplog.text
