"""Tell browsers that something changed: the one way code sends to them.

The database is the truth; a push carries only what changed (ids), never the
content, and the consumer that receives it applies the same access rule as
the pages before passing it on (``servicedesk/live/consumers.py``). A lost push
loses nothing: a client that reconnects catches up from the database.

``realtime_publish`` sends after the current transaction commits (at once
outside one), so no browser hears of a change that is rolled back. It never
raises: a channel layer that is down (Redis unreachable) is logged, and the
change stays committed.

The layer is ``CHANNEL_LAYERS["default"]``: channels-redis with ``REDIS_URL``,
else channels-lite's SQLite layer in the var directory, which needs no server
and reaches every process on the machine (web, worker, beat).
"""

from __future__ import annotations

import logging
import re
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


def _send(group: str, message: dict[str, Any]) -> None:
    from channels.layers import get_channel_layer

    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The change is committed; clients catch up from the database when they reconnect.
        log.warning("Could not push %s to %s", message.get("type"), group, exc_info=True)
