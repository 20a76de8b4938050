"""Who else has a ticket open: what one ``/ws/desk/`` connection has heard from the others.

Presence lives in the channel layer and in the connections' memory, never in
the database: each connection on a ticket page announces itself to the
ticket's group (``desk.ticket.<id>``) when it opens the page and every
``VIEW_EVERY`` seconds after, and announces its departure when it leaves or
disconnects. Each connection keeps the announcements it heard, per
connection of the others (an agent with two tabs is one viewer, still there
while one tab is), and forgets one not renewed within ``VIEWER_TTL``: a
server killed before it could say goodbye leaves nobody shown for long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# The client announces the page this often; a viewer not heard of for VIEWER_TTL is gone.
VIEW_EVERY = 20.0
VIEWER_TTL = 45.0


def clock() -> float:
    """Seconds on a monotonic clock; the one clock of presence (tests replace it)."""
    return time.monotonic()


def ticket_group(ticket_id: int) -> str:
    """The channel-layer group of the connections viewing one ticket."""
    return f"desk.ticket.{int(ticket_id)}"


@dataclass
class Seen:
    user_id: int
    name: str
    at: float


class Viewers:
    """The other connections heard viewing one ticket, by channel name."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}

    def seen(self, channel: str, *, user_id: int, name: str, at: float) -> None:
        self._seen[channel] = Seen(user_id=user_id, name=name, at=at)

    def gone(self, channel: str) -> None:
        self._seen.pop(channel, None)

    def current(self, *, now: float, exclude_user: int) -> list[dict[str, object]]:
        """The agents viewing now, once each, by name; never ``exclude_user`` (the connection's own agent)."""
        self._seen = {channel: seen for channel, seen in self._seen.items() if now - seen.at <= VIEWER_TTL}
        agents: dict[int, str] = {}
        for seen in self._seen.values():
            if seen.user_id != exclude_user:
                agents[seen.user_id] = seen.name
        return [{"id": pk, "name": name} for pk, name in sorted(agents.items(), key=lambda item: (item[1], item[0]))]
