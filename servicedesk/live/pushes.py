"""Pushes to one user's workspace: the group of each user, and a handler per kind of push.

Code that wants a user's open desk pages to hear of something calls
``realtime_publish(group=user_group(user.pk), kind=..., data=...)`` (after
commit, as every push). Each ``/ws/desk/`` socket of that user is in the
group and hands what arrives to the handler registered for its ``kind``,
which the app that sends the push registers when Django starts::

    @user_push("notifications.changed")
    def bell(user, data):
        return {"type": "bell", "unread": notification_unread_count(user=user)}

A handler takes the socket's user and the push's data (without ``type``) and
returns the frame to send to that browser, or None to send nothing: this is
where the access check of the kind goes (a chat line only to an agent who
may see the session, as the pages decide). It runs in a thread
(``database_sync_to_async``), so it may read the database; the push itself
only says what changed, and the database is the truth. A handler that raises
is logged and its push dropped; the socket stays open.

docs/architecture.md, "Live updates".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# What a handler gets: the signed-in user of the socket and the push's data.
PushHandler = Callable[[Any, dict[str, Any]], dict[str, Any] | None]

# "<app>.<what>", lower case: the kind is also the layer's message type, so it
# may not be one of the ASGI protocol's (websocket.*) nor the consumer's own.
_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
RESERVED_PREFIXES = ("websocket.", "ticket.", "presence.")

_handlers: dict[str, PushHandler] = {}


def user_group(user_id: int) -> str:
    """The channel-layer group of every ``/ws/desk/`` socket of one user."""
    return f"desk.user.{int(user_id)}"


def user_push(kind: str) -> Callable[[PushHandler], PushHandler]:
    """Register the decorated function as the handler of pushes of ``kind`` to a user's group.

    One handler per kind: registering another function for a kind already
    taken raises ValueError (two apps would otherwise fight over it);
    registering the same function again is a no-op. Call it at import time
    of a module the app imports in ``AppConfig.ready``.
    """
    if not _KIND.match(kind) or kind.startswith(RESERVED_PREFIXES):
        raise ValueError(f"invalid push kind {kind!r}: '<app>.<what>', lower case, not {RESERVED_PREFIXES}")

    def register(handler: PushHandler) -> PushHandler:
        taken = _handlers.get(kind)
        if taken is not None and taken is not handler:
            raise ValueError(f"push kind {kind!r} already has a handler: {taken.__module__}.{taken.__qualname__}")
        _handlers[kind] = handler
        return handler

    return register


def user_push_handler(kind: Any) -> PushHandler | None:
    """The handler registered for ``kind``, if any."""
    return _handlers.get(kind) if isinstance(kind, str) else None


def user_push_kinds() -> list[str]:
    """Every registered kind, sorted (for the docs and the tests)."""
    return sorted(_handlers)
