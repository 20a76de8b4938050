"""Database work of the live sockets: in a pool of threads, not all on one.

Channels' ``database_sync_to_async`` runs every consumer's database work of
a process on one thread, one call after the other: with a thousand chats a
visitor's line waited behind every other socket's statements (and behind
each statement's wait for the interpreter lock). ``in_thread`` runs the
function on the event loop's pool of threads instead; the work of many
sockets waits on the database side by side. A socket still awaits its own
calls one at a time, so its frames keep their order; rows shared between
sockets are guarded by the services' row locks, as for concurrent requests.

Old connections are closed around the call inside the call's own context,
where Django keeps the connection it opened (``asgiref.local``): with the
web server's pool that returns it to the pool after every call.

``SocketConsumer`` is the base of the live consumers. Channels' consumers
close old connections before every message they handle (each frame and each
push), on its one thread for such work, so every message of every socket of
the process waited in one line for that thread; a consumer whose database
work goes through ``in_thread`` has nothing for that sweep to close.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import close_old_connections


def in_thread(function: Callable[..., Any]) -> Any:
    """``function`` as a coroutine function run on a thread of the pool (also a decorator)."""

    @functools.wraps(function)
    def work(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return SyncToAsync(work, thread_sensitive=False)


class SocketConsumer(AsyncJsonWebsocketConsumer):
    """A JSON WebSocket consumer whose database work runs through ``in_thread``."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # As Channels' dispatch, without closing old connections first (``in_thread`` does).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
