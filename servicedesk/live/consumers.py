"""``/ws/desk/``: the agent workspace's live stream (signed in by the session cookie).

Server frames:

- ``{"type": "hello", "cursor": n}``: connected; ``n`` is the newest event id now;
- ``{"type": "changed", "tickets": [{"id", "reference", "event"}], "cursor": n}``:
  these tickets changed (read them again from the page or the API);
- ``{"type": "error", "code", "message"}``: a frame the server could not take.

Client frames: ``{"type": "resume", "after": n}`` (what changed after event
``n``, from the database: everything missed while disconnected, in pages of
``RESUME_LIMIT`` tickets with ``"more": true`` while more wait) and
``{"type": "ping"}`` (every half minute, answered with ``{"type": "pong"}``;
the consumer re-reads which queues the agent works in, so a change of
membership takes effect).

Every push passes ``tickets_visible_to`` (the one rule for tickets, as on the
pages and in the API) before it is sent on: a ticket the agent may not see,
or no longer may, is never named.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db.models import Max

from servicedesk.accounts.roles import user_role
from servicedesk.live.follow import queue_group
from servicedesk.tickets.access import queues_visible_to, tickets_visible_to
from servicedesk.tickets.models import TicketEvent

log = logging.getLogger(__name__)

RESUME_LIMIT = 200
# Close codes (4000-4999 are the application's): not signed in as an agent.
CLOSE_FORBIDDEN = 4403


class DeskConsumer(AsyncJsonWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        user = self.scope.get("user")
        refusal = await self._refusal(user)
        if refusal:
            log.info("Refused /ws/desk/: %s", refusal)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user: Any = user
        self.joined: set[str] = set()
        await self.accept()
        await self._groups_refresh()
        await self.send_json({"type": "hello", "cursor": await self._cursor()})

    @database_sync_to_async
    def _refusal(self, user: Any) -> str:
        if user is None or not user.is_authenticated:
            return "not signed in"
        if user_role(user) is None:
            return f"user {user.pk} is not staff"
        return ""

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self._groups_refresh()
            await self.send_json({"type": "pong"})
        elif kind == "resume":
            after = content.get("after")
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                await self._error("bad_frame", "resume needs 'after', a non-negative event id")
                return
            await self.send_json({"type": "changed", **await self._changed_since(after)})
        else:
            await self._error("bad_frame", "unknown frame type")

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def _error(self, code: str, message: str) -> None:
        log.info("/ws/desk/ frame refused for user %s: %s", self.user.pk, message)
        await self.send_json({"type": "error", "code": code, "message": message})

    async def ticket_changed(self, message: dict[str, Any]) -> None:
        """A push from ``live.follow``: pass on the tickets this agent may see."""
        events = {int(ticket_id): int(event_id) for ticket_id, event_id in message.get("tickets", [])}
        visible = await self._visible(list(events))
        if visible:
            tickets = [{"id": pk, "reference": ref, "event": events[pk]} for pk, ref in visible]
            await self.send_json({"type": "changed", "tickets": tickets, "cursor": max(events.values())})

    @database_sync_to_async
    def _visible(self, ticket_ids: list[int]) -> list[tuple[int, str]]:
        rows = tickets_visible_to(self.user).filter(pk__in=ticket_ids).values_list("pk", "reference").order_by("pk")
        return [(pk, reference or "") for pk, reference in rows]

    @database_sync_to_async
    def _cursor(self) -> int:
        return TicketEvent.objects.aggregate(last=Max("pk"))["last"] or 0

    @database_sync_to_async
    def _changed_since(self, after: int) -> dict[str, Any]:
        rows = list(
            TicketEvent.objects.filter(pk__gt=after, ticket__in=tickets_visible_to(self.user))
            .values("ticket_id", "ticket__reference")
            .annotate(last=Max("pk"))
            .order_by("last")[: RESUME_LIMIT + 1]
        )
        more = len(rows) > RESUME_LIMIT
        rows = rows[:RESUME_LIMIT]
        tickets = [{"id": r["ticket_id"], "reference": r["ticket__reference"], "event": r["last"]} for r in rows]
        cursor = rows[-1]["last"] if rows else after
        return {"tickets": tickets, "cursor": cursor, "more": more}

    async def _groups_refresh(self) -> None:
        wanted = {queue_group(pk) for pk in await self._queue_ids()}
        for group in wanted - self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        for group in self.joined - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = wanted

    @database_sync_to_async
    def _queue_ids(self) -> list[int]:
        return list(queues_visible_to(self.user).values_list("pk", flat=True))
