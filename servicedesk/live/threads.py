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
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync
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
