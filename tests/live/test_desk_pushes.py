"""``/ws/desk/`` user pushes: each user's own group, the handler registry, and the bell that counts live."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from servicedesk.core.realtime import realtime_publish
from servicedesk.live import pushes
from servicedesk.live.pushes import user_group, user_push, user_push_handler
from servicedesk.notifications.models import Notification
from servicedesk.notifications.services import notification_mark_read, notification_send
from tests.factories import AgentFactory, QueueFactory
from tests.live.test_desk_stream import cookie_for, desk, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_layer() -> None:
    async_to_sync(get_channel_layer().flush)()


@user_push("testing.echo")
def echo(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """A test kind: answers with who received it, drops ``drop``, fails on ``fail``."""
    if data.get("fail"):
        raise RuntimeError("the handler failed")
    if data.get("drop"):
        return None
    return {"type": "echo", "to": user.username, "n": data["n"]}


REUSED_CALLS: list[int] = []


@user_push("testing.reused", reuse_seconds=30)
def reused(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """A test kind whose frame a socket may reuse: counts the handler's calls."""
    REUSED_CALLS.append(data["n"])
    return {"type": "reused", "n": data["n"]}


def publish(user_id: int, kind: str, **data: Any) -> None:
    realtime_publish(group=user_group(user_id), kind=kind, data=data)


async def connected(cookie: bytes) -> Any:
    ws = desk(cookie)
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from())["type"] == "hello"
    return ws


def test_a_push_to_a_user_reaches_every_socket_of_theirs_and_nobody_elses():
    support = QueueFactory(slug="support")
    ann = AgentFactory(username="ann", queues=[support])
    bob = AgentFactory(username="bob", queues=[support])
    ann_cookie, bob_cookie = cookie_for(ann), cookie_for(bob)

    async def scenario() -> None:
        ann_tab1, ann_tab2, bob_tab = [await connected(c) for c in (ann_cookie, ann_cookie, bob_cookie)]
        await database_sync_to_async(publish)(ann.pk, "testing.echo", n=1)
        assert await ann_tab1.receive_json_from(timeout=5) == {"type": "echo", "to": "ann", "n": 1}
        assert await ann_tab2.receive_json_from(timeout=5) == {"type": "echo", "to": "ann", "n": 1}
        assert await bob_tab.receive_nothing(timeout=0.3)
        for ws in (ann_tab1, ann_tab2, bob_tab):
            await ws.disconnect()

    run(scenario)


def test_a_handler_that_drops_or_fails_sends_nothing_and_the_socket_stays(caplog):
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)

    async def scenario() -> None:
        ws = await connected(cookie)
        await database_sync_to_async(publish)(ann.pk, "testing.echo", n=1, drop=True)
        await database_sync_to_async(publish)(ann.pk, "testing.echo", n=2, fail=True)
        await database_sync_to_async(publish)(ann.pk, "testing.unknown", n=3)
        assert await ws.receive_nothing(timeout=0.3)
        await database_sync_to_async(publish)(ann.pk, "testing.echo", n=4)
        assert await ws.receive_json_from(timeout=5) == {"type": "echo", "to": "ann", "n": 4}
        await ws.disconnect()

    with caplog.at_level(logging.INFO, logger="servicedesk.live"):
        run(scenario)
    assert "The handler of push testing.echo failed for user" in caplog.text
    assert "RuntimeError: the handler failed" in caplog.text
    assert "/ws/desk/ has no handler for push testing.unknown; dropped" in caplog.text


def test_a_kind_registered_for_reuse_asks_its_handler_once_per_data_until_the_agents_queues_change():
    support, billing = QueueFactory(slug="support"), QueueFactory(slug="billing")
    ann = AgentFactory(username="ann", queues=[support])
    cookie = cookie_for(ann)
    REUSED_CALLS.clear()

    async def scenario() -> None:
        ws = await connected(cookie)
        for n in (1, 1, 2, 1):
            await database_sync_to_async(publish)(ann.pk, "testing.reused", n=n)
            assert await ws.receive_json_from(timeout=5) == {"type": "reused", "n": n}
        # The same data again: the kept frame, without the handler.
        assert REUSED_CALLS == [1, 2]
        # A ping with the same queues keeps them; a change of queues forgets them.
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await database_sync_to_async(publish)(ann.pk, "testing.reused", n=1)
        assert await ws.receive_json_from(timeout=5) == {"type": "reused", "n": 1}
        assert REUSED_CALLS == [1, 2]
        await database_sync_to_async(ann.queues.add)(billing)
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await database_sync_to_async(publish)(ann.pk, "testing.reused", n=1)
        assert await ws.receive_json_from(timeout=5) == {"type": "reused", "n": 1}
        assert REUSED_CALLS == [1, 2, 1]
        await ws.disconnect()

    run(scenario)


RENEWED_CALLS: list[int] = []
RENEWED_REFUSE: set[int] = set()


@user_push("testing.renewed", reuse_seconds=4)
def renewed(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """A test kind kept for 4 s: counts the handler's calls, refuses the numbers in RENEWED_REFUSE."""
    RENEWED_CALLS.append(data["n"])
    return None if data["n"] in RENEWED_REFUSE else {"type": "renewed", "n": data["n"]}


def test_a_kept_frame_used_near_its_end_is_checked_again_behind_it_and_dropped_once_refused():
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    RENEWED_CALLS.clear()
    RENEWED_REFUSE.clear()

    async def push(n: int) -> None:
        await database_sync_to_async(publish)(ann.pk, "testing.renewed", n=n)

    async def scenario() -> None:
        ws = await connected(cookie)
        await push(1)
        assert await ws.receive_json_from(timeout=5) == {"type": "renewed", "n": 1}
        assert RENEWED_CALLS == [1]
        # Early in its time the kept frame is sent alone.
        await push(1)
        assert await ws.receive_json_from(timeout=5) == {"type": "renewed", "n": 1}
        assert RENEWED_CALLS == [1]
        # In its last quarter: sent at once, and the handler is asked again behind it.
        await asyncio.sleep(3.2)
        await push(1)
        assert await ws.receive_json_from(timeout=5) == {"type": "renewed", "n": 1}
        await asyncio.sleep(0.3)
        assert RENEWED_CALLS == [1, 1]
        # Past the first check's 4 s, the renewed frame still goes without the handler.
        await asyncio.sleep(1.0)
        await push(1)
        assert await ws.receive_json_from(timeout=5) == {"type": "renewed", "n": 1}
        assert RENEWED_CALLS == [1, 1]
        # The handler refuses at the next renewal (access lost): the frame is forgotten, and the
        # next push asks the handler, which sends nothing.
        RENEWED_REFUSE.add(1)
        await asyncio.sleep(2.1)
        await push(1)
        assert await ws.receive_json_from(timeout=5) == {"type": "renewed", "n": 1}
        await asyncio.sleep(0.3)
        assert RENEWED_CALLS == [1, 1, 1]
        await push(1)
        assert await ws.receive_nothing(timeout=0.5)
        assert RENEWED_CALLS == [1, 1, 1, 1]
        await ws.disconnect()

    run(scenario)


def test_a_kind_without_reuse_asks_its_handler_for_every_push():
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    calls: list[int] = []

    def counted(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
        calls.append(data["n"])
        return {"type": "counted", "n": data["n"]}

    user_push("testing.counted")(counted)

    async def scenario() -> None:
        ws = await connected(cookie)
        for _ in range(3):
            await database_sync_to_async(publish)(ann.pk, "testing.counted", n=7)
            assert await ws.receive_json_from(timeout=5) == {"type": "counted", "n": 7}
        await ws.disconnect()

    run(scenario)
    assert calls == [7, 7, 7]


SLOW_GATE = threading.Event()
SLOW_CALLS: list[int] = []


@user_push("testing.slow")
def slow(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """A test kind whose first answer waits for SLOW_GATE (a slow database read)."""
    SLOW_CALLS.append(data["n"])
    if len(SLOW_CALLS) == 1:
        SLOW_GATE.wait(10)
    return {"type": "slow", "n": data["n"], "call": len(SLOW_CALLS)}


def test_a_push_waiting_for_its_answer_holds_up_no_other_and_one_arriving_meanwhile_is_answered_after_it():
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    SLOW_GATE.clear()
    SLOW_CALLS.clear()

    async def scenario() -> None:
        ws = await connected(cookie)
        await database_sync_to_async(publish)(ann.pk, "testing.slow", n=1)
        for _ in range(100):
            if SLOW_CALLS:
                break
            await asyncio.sleep(0.05)
        assert SLOW_CALLS == [1]
        # Another push goes out while the first one's answer waits.
        await database_sync_to_async(publish)(ann.pk, "testing.echo", n=2)
        assert await ws.receive_json_from(timeout=5) == {"type": "echo", "to": "ann", "n": 2}
        # The same push twice more meanwhile: answered once more, after the first answer.
        await database_sync_to_async(publish)(ann.pk, "testing.slow", n=1)
        await database_sync_to_async(publish)(ann.pk, "testing.slow", n=1)
        assert await ws.receive_nothing(timeout=0.3)
        SLOW_GATE.set()
        assert await ws.receive_json_from(timeout=5) == {"type": "slow", "n": 1, "call": 1}
        assert await ws.receive_json_from(timeout=5) == {"type": "slow", "n": 1, "call": 2}
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    try:
        run(scenario)
    finally:
        SLOW_GATE.set()
    assert SLOW_CALLS == [1, 1]


def test_reuse_is_at_most_a_minute():
    with pytest.raises(ValueError, match="between 0 and 60"):
        user_push("testing.forever", reuse_seconds=3600)


def test_after_a_disconnect_the_socket_is_no_longer_in_the_users_group():
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)
    layer = get_channel_layer()

    async def scenario() -> None:
        ws = await connected(cookie)
        assert len(layer.groups[user_group(ann.pk)]) == 1
        await ws.disconnect()
        assert user_group(ann.pk) not in layer.groups

    run(scenario)


@pytest.mark.parametrize(
    "kind", ["echo", "Testing.echo", "websocket.receive", "ticket.changed", "presence.here", "testing.", "a b.c"]
)
def test_a_push_kind_must_be_app_dot_what_and_not_one_the_stream_uses_itself(kind):
    with pytest.raises(ValueError, match="invalid push kind"):
        user_push(kind)
    assert user_push_handler(kind) is None


def test_one_handler_per_kind():
    assert user_push_handler("testing.echo") is echo
    # The same function again (a module imported twice) is no change.
    assert user_push("testing.echo")(echo) is echo
    with pytest.raises(ValueError, match=r"already has a handler: tests\.live\.test_desk_pushes\.echo"):
        user_push("testing.echo")(lambda user, data: None)
    assert user_push_handler("testing.echo") is echo
    assert {"notifications.changed", "testing.echo"} <= set(pushes.user_push_kinds())


def test_user_group_names_the_user():
    assert user_group(42) == "desk.user.42"


# --- The bell -------------------------------------------------------------------------


def notify(user: Any, key: str) -> Notification | None:
    return notification_send(user=user, kind="sla_warning", key=key, title=f"Notice {key}", email=False)


def test_the_bell_counts_live_what_the_database_says():
    support = QueueFactory(slug="support")
    ann = AgentFactory(username="ann", queues=[support])
    bob = AgentFactory(username="bob", queues=[support])
    ann_cookie, bob_cookie = cookie_for(ann), cookie_for(bob)

    async def scenario() -> None:
        ann_ws, bob_ws = await connected(ann_cookie), await connected(bob_cookie)
        first = await database_sync_to_async(notify)(ann, "a")
        assert await ann_ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 1}
        await database_sync_to_async(notify)(ann, "b")
        assert await ann_ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 2}
        # Bob hears of nothing of Ann's.
        assert await bob_ws.receive_nothing(timeout=0.3)

        # The same notice again stores nothing, and pushes nothing.
        assert await database_sync_to_async(notify)(ann, "a") is None
        assert await ann_ws.receive_nothing(timeout=0.3)

        assert first is not None
        await database_sync_to_async(notification_mark_read)(user=ann, notification_id=first.pk)
        assert await ann_ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 1}
        # Read again: nothing changed, nothing pushed.
        await database_sync_to_async(notification_mark_read)(user=ann, notification_id=first.pk)
        assert await ann_ws.receive_nothing(timeout=0.3)
        await database_sync_to_async(notification_mark_read)(user=ann)
        assert await ann_ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 0}

        await database_sync_to_async(notify)(bob, "c")
        assert await bob_ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 1}
        assert await ann_ws.receive_nothing(timeout=0.3)
        await ann_ws.disconnect()
        await bob_ws.disconnect()

    run(scenario)
    assert Notification.objects.filter(user=ann, read_at__isnull=True).count() == 0


def test_a_rolled_back_notice_rings_no_bell():
    from django.db import transaction

    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    cookie = cookie_for(ann)

    def notify_then_fail() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            notify(ann, "rolled-back")
            raise RuntimeError

    async def scenario() -> None:
        ws = await connected(cookie)
        await database_sync_to_async(notify_then_fail)()
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)
    assert not Notification.objects.filter(user=ann).exists()


def test_the_push_reads_the_count_of_the_sockets_own_user_whatever_it_carries():
    """A push says only "changed": its data never decides what a socket shows."""
    ann = AgentFactory(username="ann", queues=[QueueFactory(slug="support")])
    bob = AgentFactory(username="bob", queues=[QueueFactory(slug="billing")])
    for key in ("a", "b", "c"):
        notify(bob, key)
    cookie = cookie_for(ann)

    async def scenario() -> None:
        ws = await connected(cookie)
        await database_sync_to_async(publish)(ann.pk, "notifications.changed", user=bob.pk, unread=3)
        assert await ws.receive_json_from(timeout=5) == {"type": "bell", "unread": 0}
        await ws.disconnect()

    run(scenario)
