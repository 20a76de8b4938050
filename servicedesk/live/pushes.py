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
(``live/threads.in_thread``), so it may read the database; the push itself
only says what changed, and the database is the truth. A handler that raises
is logged and its push dropped; the socket stays open.

A kind whose answer only depends on who may see what (a chat's "changed"
notice) may be registered with ``reuse_seconds``: a socket then sends the
frame its handler returned for the same data again, without asking the
handler, for that long, and forgets every such frame when a ping finds the
agent's queues changed. An agent who loses access stops hearing of the
object within that time; the pages and the API refuse at once.

A socket answers its pushes side by side (a few at a time), so a handler
waiting for the database holds up no other push; a push that arrives while
the same one (kind and data) is being answered is answered once more after
it, from a read that starts after it came.

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
_reuse: dict[str, float] = {}


def user_group(user_id: int) -> str:
    """The channel-layer group of every ``/ws/desk/`` socket of one user."""
    return f"desk.user.{int(user_id)}"


def user_push(kind: str, *, reuse_seconds: float = 0) -> Callable[[PushHandler], PushHandler]:
    """Register the decorated function as the handler of pushes of ``kind`` to a user's group.

    One handler per kind: registering another function for a kind already
    taken raises ValueError (two apps would otherwise fight over it);
    registering the same function again is a no-op. Call it at import time
    of a module the app imports in ``AppConfig.ready``. ``reuse_seconds``:
    how long a socket may send the frame again for the same data without
    asking the handler (0, the default: ask for every push).
    """
    if not _KIND.match(kind) or kind.startswith(RESERVED_PREFIXES):
        raise ValueError(f"invalid push kind {kind!r}: '<app>.<what>', lower case, not {RESERVED_PREFIXES}")
    if not 0 <= reuse_seconds <= 60:
        raise ValueError(f"reuse_seconds of {kind!r} is {reuse_seconds}: between 0 and 60")

    def register(handler: PushHandler) -> PushHandler:
        taken = _handlers.get(kind)
        if taken is not None and taken is not handler:
            raise ValueError(f"push kind {kind!r} already has a handler: {taken.__module__}.{taken.__qualname__}")
        _handlers[kind] = handler
        _reuse[kind] = float(reuse_seconds)
        return handler

    return register


def user_push_handler(kind: Any) -> PushHandler | None:
    """The handler registered for ``kind``, if any."""
    return _handlers.get(kind) if isinstance(kind, str) else None


def user_push_reuse_seconds(kind: Any) -> float:
    """How long a socket may reuse the frame of a push of ``kind`` for the same data (0: never)."""
    return _reuse.get(kind, 0.0) if isinstance(kind, str) else 0.0


def user_push_kinds() -> list[str]:
    """Every registered kind, sorted (for the docs and the tests)."""
    return sorted(_handlers)
