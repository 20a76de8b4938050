"""Tell browsers that something changed: the one way code sends to them.

The database is the truth; a push carries only what changed (ids), never the
content, and the consumer that receives it applies the same access rule as
the pages before passing it on (``servicedesk/live/consumers.py``). A lost push
loses nothing: a client that reconnects catches up from the database.

``realtime_publish`` sends after the current transaction commits (at once
outside one), so no browser hears of a change that is rolled back. It never
raises and never waits for the layer: the push is handed to a thread of the
process that sends it (``_Sender``); a layer that is down (Redis
unreachable) is logged there, and the change stays committed.

The layer is ``CHANNEL_LAYERS["default"]``: channels-redis with ``REDIS_URL``,
else channels-lite's SQLite layer in the var directory, which needs no server
and reaches every process on the machine (web, worker, beat).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import threading
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

log = logging.getLogger(__name__)

# Channels' rule for group names, checked here so a bad name fails where it is made.
_GROUP = re.compile(r"^[a-zA-Z\d\-_.]{1,99}$")


def realtime_publish(*, group: str, kind: str, data: dict[str, Any], using: str | None = None) -> None:
    """After commit, send ``{"type": kind, **data}`` to the consumers in ``group``.

    ``kind`` names the consumer's handler (``ticket.changed`` calls
    ``ticket_changed``); ``data`` must be JSON-serialisable ids and small
    values. Failures of the layer are logged, never raised.
    """
    if not _GROUP.match(group):
        raise ValueError(f"invalid group name {group!r}")
    message = {"type": kind, **data}
    transaction.on_commit(lambda: _send(group, message), using=using, robust=True)


async def realtime_publish_committed(*, group: str, kind: str, data: dict[str, Any]) -> None:
    """``realtime_publish`` for code on the event loop whose change is committed already
    (a statement in autocommit, ``core/loop_db.py``): sent at once, on this loop, as the
    consumers' own group joins are. Never raises and never waits for the layer: the
    send is a task of the loop (at most ``_Sender.MAX_WAITING`` at once, as the thread's)."""
    if not _GROUP.match(group):
        raise ValueError(f"invalid group name {group!r}")
    message = {"type": kind, **data}
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    try:
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            # Process-local (the tests): at once.
            await layer.group_send(group, message)
        elif layer is not None:
            _loop_sends.start(layer, group, message)
    except Exception:
        log.warning("Could not push %s to %s", kind, group, exc_info=True)


class _LoopSends:
    """The pushes sent as tasks of the event loop, each held until it is done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropped = 0

    def start(self, layer: Any, group: str, message: dict[str, Any]) -> None:
        if len(self._tasks) >= _Sender.MAX_WAITING:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("%d pushes dropped: the channel layer does not keep up", self._dropped)
            return
        task = asyncio.get_running_loop().create_task(self._send(layer, group, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _send(layer: Any, group: str, message: dict[str, Any]) -> None:
        try:
            await layer.group_send(group, message)
        except Exception:
            log.warning("Could not push %s to %s", message.get("type"), group, exc_info=True)


_loop_sends = _LoopSends()


def _send(group: str, message: dict[str, Any]) -> None:
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    try:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            # Process-local (the tests): sent on the caller's event loop.
            async_to_sync(layer.group_send)(group, message)
            return
        _sender().submit(layer, group, message)
    except Exception:
        # The change is committed; clients catch up from the database when they reconnect.
        log.warning("Could not push %s to %s", message.get("type"), group, exc_info=True)


class _Sender:
    """A thread of the process with an event loop of its own that sends the pushes, in order.

    The caller only hands the push over: a request, a chat line or a mail
    never waits for the layer, and the layer's connections stay open on this
    one loop instead of being opened for every push. At most ``MAX_WAITING``
    pushes wait (the layer down, each attempt waiting for its timeout); more
    are dropped with a warning, since the database has the change anyway.
    """

    MAX_WAITING = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting = 0
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[Any, str, dict[str, Any]]] | None = None

    def submit(self, layer: Any, group: str, message: dict[str, Any]) -> None:
        with self._lock:
            if self._waiting >= self.MAX_WAITING:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning("%d pushes dropped: the channel layer does not keep up", self._dropped)
                return
            self._waiting += 1
            loop, queue = self._loop_running()
        loop.call_soon_threadsafe(queue.put_nowait, (layer, group, message))

    def _loop_running(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[Any, str, dict[str, Any]]]]:
        if self._loop is None or self._queue is None:
            loop = asyncio.new_event_loop()
            queue: asyncio.Queue[tuple[Any, str, dict[str, Any]]] = asyncio.Queue()
            threading.Thread(target=self._run, args=(loop, queue), name="realtime-publish", daemon=True).start()
            self._loop, self._queue = loop, queue
        return self._loop, self._queue

    def _run(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[Any, str, dict[str, Any]]]) -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._drain(queue))

    async def _drain(self, queue: asyncio.Queue[tuple[Any, str, dict[str, Any]]]) -> None:
        """Send the pushes one after the other, in the order they were handed over."""
        while True:
            layer, group, message = await queue.get()
            try:
                await layer.group_send(group, message)
            except Exception:
                log.warning("Could not push %s to %s", message.get("type"), group, exc_info=True)
            finally:
                with self._lock:
                    self._waiting -= 1
                    if not self._waiting:
                        self._idle.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until every push handed over is sent (or failed); False after ``timeout`` seconds."""
        with self._lock:
            return self._idle.wait_for(lambda: self._waiting == 0, timeout)


_current = _Sender()


def _sender() -> _Sender:
    return _current


def _sender_renew() -> None:
    # A forked child (a Celery pool process) has no copy of the parent's thread.
    global _current
    _current = _Sender()


def realtime_flush(timeout: float = 2.0) -> bool:
    """Wait up to ``timeout`` seconds for the pushes handed over so far; True when all went out.

    Called at exit, so a command that ends right after a change still sends it.
    """
    return _sender().wait(timeout)


os.register_at_fork(after_in_child=_sender_renew)
atexit.register(realtime_flush)
