"""``/ws/desk/``: the agent workspace's live stream (signed in by the session cookie).

Server frames:

- ``{"type": "hello", "cursor": n}``: connected; ``n`` is the newest event id now;
- ``{"type": "changed", "tickets": [{"id", "reference", "event"}], "cursor": n}``:
  these tickets changed (read them again from the page or the API);
- ``{"type": "viewers", "ticket": ref, "viewers": [{"id", "name"}]}``: the
  other agents viewing that ticket now (never the agent themself), sent on
  every ``view`` and whenever the list changes;
- ``{"type": "typing", "ticket": ref, "agent": {"id", "name"}}``: another agent
  is typing a reply or note on it (shown for a few seconds);
- the frames of user pushes (below), such as ``{"type": "bell", "unread": n}``;
- ``{"type": "error", "code", "message"}``: a frame the server did not take.
  ``bad_frame`` (not JSON, not an object, an unknown type, a missing or
  malformed field, larger than 4 KiB), ``not_found`` (a ticket that does not
  exist or that the agent may not see: the two are not told apart),
  ``rate_limited`` (over the flood limit, ``live/flood.py``), ``unavailable``
  (a ``view``, ``typing`` or ``leave`` while the channel layer is unreachable:
  the socket stays, and the page's next ``view`` joins again). A connection
  that keeps flooding is closed with 4429; one not signed in as staff with
  4403. Every refusal is logged with its reason (logger ``servicedesk.live``).

Client frames: ``{"type": "resume", "after": n}`` (what changed after event
``n``, from the database: everything missed while disconnected, in pages of
``RESUME_LIMIT`` tickets with ``"more": true`` while more wait);
``{"type": "ping"}`` (every half minute, answered with ``{"type": "pong"}``;
the consumer re-reads which queues the agent works in, so a change of
membership takes effect, and reports the agent's heartbeat to routing);
``{"type": "view", "ticket": ref}`` (on opening a ticket page and every 20 s
after), ``{"type": "leave", "ticket": ref}`` and ``{"type": "typing",
"ticket": ref}`` (at most every 3 s while the agent types).

Groups: the queues the agent works in (``desk.queue.<id>``, ``live.follow``),
the agent's own (``desk.user.<id>``, ``live.pushes``) and the tickets the
page views (``desk.ticket.<id>``, ``live.presence``), joined only after
``ticket_get_for`` (the one access rule) found the ticket for this agent.

**User pushes.** Anything sent to ``desk.user.<id>`` with
``realtime_publish(group=user_group(id), kind=k, data=...)`` reaches every
socket of that user; the consumer runs the handler registered for ``k``
with ``@user_push(k)`` (``live/pushes.py``) in a thread with the socket's
user and the data, and sends the frame it returns (None: nothing). The
handler is the kind's access check and reads the truth from the database;
``notifications.changed`` (``notifications/pushes.py``) is the first. A
push of a kind without a handler is logged and dropped. The frame of a kind
registered with ``reuse_seconds`` (a chat's notices, ``chat/pushes.py``) is
sent again for the same data without asking the handler for that long; one
used in the last quarter of that time is asked for again behind the frame
sent (``_renew``), so a busy chat's pushes never wait for the database, and
each is still sent only within ``reuse_seconds`` of a check. The kept frames
are forgotten when a ping finds the agent's queues changed (an answer read
before that is not kept). Pushes are answered
side by side (``_answer``), so one waiting for the database holds up no other.

Every ticket push passes ``tickets_visible_to`` (the one rule for tickets, as
on the pages and in the API) before it is sent on: a ticket the agent may
not see, or no longer may, is never named.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from channels.consumer import get_handler_name
from django.db.models import Max

from servicedesk.accounts.roles import user_role
from servicedesk.core.errors import NotFound
from servicedesk.live import presence
from servicedesk.live.flood import FloodLimit
from servicedesk.live.follow import queue_group
from servicedesk.live.frames import BadFrame, Frame, frame_read
from servicedesk.live.presence import Viewers, ticket_group
from servicedesk.live.pushes import PushHandler, user_group, user_push_handler, user_push_reuse_seconds
from servicedesk.live.threads import SocketConsumer, in_thread
from servicedesk.routing import services as routing_services
from servicedesk.tickets.access import queues_visible_to, ticket_get_for, tickets_visible_to
from servicedesk.tickets.models import TicketEvent

log = logging.getLogger(__name__)


RESUME_LIMIT = 200
# Close codes (4000-4999 are the application's): not signed in as an agent; kept flooding.
CLOSE_FORBIDDEN = 4403
CLOSE_FLOODING = 4429
# Tickets one connection views at once (a page views one); a further view leaves the oldest.
MAX_VIEWING = 5
# Seconds between the heartbeats the server sends for an open socket (well
# inside the presence timeout, SD_PRESENCE_TIMEOUT_SECONDS, default 45).
HEARTBEAT_EVERY = 20
# Frames of pushes registered with ``reuse_seconds`` that one socket keeps at most (then forgets them all).
REUSED_FRAMES_MAX = 2000
# A kept frame used in the last quarter of its time is asked for again behind it, so a busy
# chat's frames never wait for the database: each is still sent only while its check holds.
REUSE_RENEW_SHARE = 0.25
# Pushes one socket answers at once (each a thread's database read), and answers waiting at most.
ANSWERS_AT_ONCE = 4
ANSWERS_WAITING_MAX = 500


class LayerUnreachable(Exception):
    """The channel layer refused a call (Redis down): the frame that needed it is answered ``unavailable``."""


class DeskConsumer(SocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        user: Any = self.scope.get("user")
        refusal = await self._refusal(user)
        if refusal:
            log.info("Refused /ws/desk/: %s", refusal)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user: Any = user
        self.agent = {"id": user.pk, "name": str(user)}
        self.joined: set[str] = set()
        self.viewing: dict[int, str] = {}  # ticket id -> its reference
        self.viewers: dict[int, Viewers] = {}
        self.flood = FloodLimit()
        self.closing = False
        # (kind, data) -> (until when, frame): push frames sent again without asking the handler.
        self.reused: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[float, dict[str, Any]]] = {}
        # Moves on each time the kept frames are forgotten: an answer read before that is not kept.
        self.reused_generation = 0
        self.renewing: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()
        # Pushes being answered (``_answer``): (kind, data) -> whether it came again meanwhile.
        self.answering: dict[tuple[str, tuple[tuple[str, Any], ...]], bool] = {}
        self.answer_tasks: set[asyncio.Task[None]] = set()
        self.answer_slots = asyncio.Semaphore(ANSWERS_AT_ONCE)
        await self.accept()
        await self._groups_refresh()
        await self._heartbeat()
        # The server beats for the open socket: a browser slows the timers of a
        # background tab (to one a minute), which must not take the agent offline.
        self.beating = asyncio.get_running_loop().create_task(self._beat_while_open())
        await self.send_json({"type": "hello", "cursor": await self._cursor()})

    async def _beat_while_open(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await self._heartbeat()

    @in_thread
    def _refusal(self, user: Any) -> str:
        if user is None or not user.is_authenticated:
            return "not signed in"
        if user_role(user) is None:
            return f"user {user.pk} is not staff"
        return ""

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "user"):
            return
        beating = getattr(self, "beating", None)
        if beating is not None:
            beating.cancel()
        for task in list(getattr(self, "answer_tasks", ())):
            task.cancel()
        try:
            for ticket_id in list(self.viewing):
                await self._leave(ticket_id)
            for group in self.joined:
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:
            # The layer forgets the memberships at its expiry; the socket is gone either way.
            log.warning("Could not leave the groups of user %s's socket", self.user.pk, exc_info=True)

    # --- Frames from the browser ------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if self.closing:
            return
        if not self.flood.allow():
            await self._flooded()
            return
        try:
            frame = frame_read(text_data, bytes_data)
        except BadFrame as exc:
            await self._error("bad_frame", exc.reason)
            return
        await self._take(frame)

    async def _take(self, frame: Frame) -> None:
        try:
            await self._take_frame(frame)
        except LayerUnreachable:
            # Presence needs the layer; the socket, its pushes once the layer is back, and the pages do not.
            await self._error("unavailable", "live presence is unavailable for now; try again shortly")

    async def _layer(self, call: Awaitable[None]) -> None:
        """Await a channel layer call; LayerUnreachable (logged) when the layer is down."""
        try:
            await call
        except Exception as exc:
            log.warning("User %s's socket: the channel layer is unreachable", self.user.pk, exc_info=True)
            raise LayerUnreachable from exc

    async def _take_frame(self, frame: Frame) -> None:
        if frame.kind == "ping":
            await self._groups_refresh()
            await self._heartbeat()
            await self.send_json({"type": "pong"})
        elif frame.kind == "resume":
            await self.send_json({"type": "changed", **await self._changed_since(frame.after)})
        elif frame.kind == "view":
            await self._view(frame.ticket)
        elif frame.kind == "leave":
            ticket_id = self._viewed(frame.ticket)
            if ticket_id is not None:
                await self._leave(ticket_id)
        elif frame.kind == "typing":
            ticket_id = self._viewed(frame.ticket)
            if ticket_id is None:
                await self._error("bad_frame", "typing needs a view of that ticket first")
                return
            await self._layer(
                self.channel_layer.group_send(
                    ticket_group(ticket_id),
                    {"type": "presence.typing", "ticket": ticket_id, "agent": self.agent, "sender": self.channel_name},
                )
            )

    async def _flooded(self) -> None:
        if self.flood.exhausted:
            log.warning("Closed /ws/desk/ of user %s: it kept sending over the flood limit", self.user.pk)
            self.closing = True
            await self.close(code=CLOSE_FLOODING)
            return
        await self._error("rate_limited", "too many frames: slow down")

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        log.info("/ws/desk/ frame refused for user %s (%s): %s", self.user.pk, code, message)
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    # --- Ticket presence (live/presence.py) ---------------------------------------

    async def _view(self, reference: str) -> None:
        found = await self._ticket_visible(reference)
        if found is None:
            known = self._viewed(reference)
            if known is not None:
                await self._leave(known)
            await self._error("not_found", "no such ticket, or not yours to see", ticket=reference)
            return
        ticket_id, reference = found
        greet = ticket_id not in self.viewing
        if greet:
            if len(self.viewing) >= MAX_VIEWING:
                await self._leave(next(iter(self.viewing)))
            await self._layer(self.channel_layer.group_add(ticket_group(ticket_id), self.channel_name))
            self.viewing[ticket_id] = reference
            self.viewers[ticket_id] = Viewers()
        # A newcomer's greeting is answered by every viewer, so it learns of them at once.
        await self._layer(self.channel_layer.group_send(ticket_group(ticket_id), self._here(ticket_id, greet=greet)))
        await self._viewers_send(ticket_id)

    def _here(self, ticket_id: int, *, greet: bool) -> dict[str, Any]:
        return {
            "type": "presence.here",
            "ticket": ticket_id,
            "agent": self.agent,
            "sender": self.channel_name,
            "greet": greet,
        }

    def _viewed(self, reference: str) -> int | None:
        return next((pk for pk, ref in self.viewing.items() if ref == reference), None)

    async def _leave(self, ticket_id: int) -> None:
        """Stop viewing: forgotten here first, so a layer that is down leaves nothing half done
        (the layer drops the membership at its expiry; the others' viewer lists age out)."""
        self.viewing.pop(ticket_id, None)
        self.viewers.pop(ticket_id, None)
        group = ticket_group(ticket_id)
        await self._layer(self.channel_layer.group_discard(group, self.channel_name))
        await self._layer(
            self.channel_layer.group_send(
                group, {"type": "presence.gone", "ticket": ticket_id, "sender": self.channel_name}
            )
        )

    async def _viewers_send(self, ticket_id: int, *, unless: list[dict[str, object]] | None = None) -> None:
        viewers = self.viewers.get(ticket_id)
        if viewers is None:
            return
        now = viewers.current(now=presence.clock(), exclude_user=self.user.pk)
        if unless is not None and now == unless:
            return
        await self.send_json({"type": "viewers", "ticket": self.viewing[ticket_id], "viewers": now})

    async def presence_here(self, message: dict[str, Any]) -> None:
        """Another connection views a ticket this one views (or answers this one's greeting)."""
        ticket_id, sender = message.get("ticket"), message.get("sender")
        viewers = self.viewers.get(ticket_id) if isinstance(ticket_id, int) else None
        if viewers is None or not isinstance(ticket_id, int) or not isinstance(sender, str):
            return
        if sender == self.channel_name:
            return
        now = presence.clock()
        before = viewers.current(now=now, exclude_user=self.user.pk)
        agent = message["agent"]
        viewers.seen(sender, user_id=int(agent["id"]), name=str(agent["name"]), at=now)
        if message.get("greet"):
            try:
                await self.channel_layer.send(sender, self._here(ticket_id, greet=False))
            except Exception:
                # The newcomer learns of this viewer from its next greeting instead.
                log.warning("User %s's socket: the channel layer is unreachable", self.user.pk, exc_info=True)
        await self._viewers_send(ticket_id, unless=before)

    async def presence_gone(self, message: dict[str, Any]) -> None:
        """Another connection left a ticket this one views, or disconnected."""
        ticket_id = message.get("ticket")
        viewers = self.viewers.get(ticket_id) if isinstance(ticket_id, int) else None
        if viewers is None or not isinstance(ticket_id, int):
            return
        before = viewers.current(now=presence.clock(), exclude_user=self.user.pk)
        viewers.gone(str(message.get("sender")))
        await self._viewers_send(ticket_id, unless=before)

    async def presence_typing(self, message: dict[str, Any]) -> None:
        """Another agent types on a ticket this one views."""
        ticket_id, agent = message.get("ticket"), message.get("agent") or {}
        if not isinstance(ticket_id, int) or ticket_id not in self.viewing:
            return
        if message.get("sender") == self.channel_name or agent.get("id") == self.user.pk:
            return
        await self.send_json(
            {
                "type": "typing",
                "ticket": self.viewing[ticket_id],
                "agent": {"id": int(agent["id"]), "name": str(agent["name"])},
            }
        )

    @in_thread
    def _ticket_visible(self, reference: str) -> tuple[int, str] | None:
        try:
            ticket = ticket_get_for(self.user, reference)
        except NotFound:
            return None
        return ticket.pk, ticket.reference or reference

    # --- Pushes: tickets of the agent's queues, and the agent's own ------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        handler = user_push_handler(kind)
        if handler is None:
            if not str(kind).startswith("websocket.") and not hasattr(self, get_handler_name(message)):
                # A push of a kind no app of this process registered (yet): dropped, the socket stays.
                log.warning("/ws/desk/ has no handler for push %s; dropped", kind)
                return
            await super().dispatch(message)
            return
        if not hasattr(self, "user") or self.closing:
            return
        reuse = user_push_reuse_seconds(kind)
        key = _reuse_key(message)
        if reuse and key is not None:
            kept = self.reused.get(key)
            now = asyncio.get_running_loop().time()
            if kept is not None and kept[0] > now:
                await self.send_json(kept[1])
                if kept[0] - now < reuse * REUSE_RENEW_SHARE and key not in self.renewing:
                    self._renew(handler, message, key, reuse)
                return
        if key is not None and key in self.answering:
            # The same push is being answered: it is answered once more after that.
            self.answering[key] = True
            return
        if len(self.answer_tasks) >= ANSWERS_WAITING_MAX:
            # Too many waiting: this one is answered before the socket reads on.
            await self._answer(handler, message, key, reuse)
            return
        if key is not None:
            self.answering[key] = False
        task = asyncio.get_running_loop().create_task(self._answer(handler, message, key, reuse))
        self.answer_tasks.add(task)
        task.add_done_callback(self.answer_tasks.discard)

    def _kept(self, key: tuple[str, tuple[tuple[str, Any], ...]]) -> dict[str, Any] | None:
        kept = self.reused.get(key)
        return kept[1] if kept is not None and kept[0] > asyncio.get_running_loop().time() else None

    def _keep(
        self, key: tuple[str, tuple[tuple[str, Any], ...]], frame: dict[str, Any] | None, reuse: float, generation: int
    ) -> None:
        """Keep the frame an answer read (None: forget the key), unless the kept frames were
        forgotten since the read began (the agent's queues changed meanwhile)."""
        if generation != self.reused_generation:
            return
        if frame is None:
            self.reused.pop(key, None)
            return
        if len(self.reused) >= REUSED_FRAMES_MAX:
            self._reused_forget()
        self.reused[key] = (asyncio.get_running_loop().time() + reuse, frame)

    def _reused_forget(self) -> None:
        self.reused.clear()
        self.reused_generation += 1

    def _renew(
        self, handler: PushHandler, message: dict[str, Any], key: tuple[str, tuple[tuple[str, Any], ...]], reuse: float
    ) -> None:
        """Ask the handler again for a kept frame near the end of its time, behind the frames sent meanwhile."""
        self.renewing.add(key)

        async def renew() -> None:
            generation = self.reused_generation
            try:
                async with self.answer_slots:
                    frame = await self._push_frame(handler, message)
                self._keep(key, frame, reuse, generation)
            except Exception:
                # Not renewed: the next push after it runs out asks the handler as usual.
                log.info("User %s's socket: a kept push frame was not renewed", self.user.pk, exc_info=True)
            finally:
                self.renewing.discard(key)

        task = asyncio.get_running_loop().create_task(renew())
        self.answer_tasks.add(task)
        task.add_done_callback(self.answer_tasks.discard)

    async def _answer(
        self,
        handler: PushHandler,
        message: dict[str, Any],
        key: tuple[str, tuple[tuple[str, Any], ...]] | None,
        reuse: float,
    ) -> None:
        """Ask the push's handler (the access check and the read) and send its frame.

        A socket's pushes are answered side by side, at most ANSWERS_AT_ONCE
        at a time, so one waiting for the database holds up no other (a frame
        only says what changed: the browser reads the rest, so their order
        does not matter). The same push arriving meanwhile is answered once
        more afterwards, from a read that starts after it came.
        """
        try:
            while True:
                frame = self._kept(key) if reuse and key is not None else None
                if frame is None:
                    generation = self.reused_generation
                    async with self.answer_slots:
                        frame = await self._push_frame(handler, message)
                    if frame is not None and reuse and key is not None:
                        self._keep(key, frame, reuse, generation)
                if frame is not None and not self.closing:
                    await self.send_json(frame)
                if key is None or not self.answering.get(key):
                    return
                self.answering[key] = False
        except Exception:
            # The socket closed under the frame; its disconnect ends the rest.
            log.info("User %s's socket: a push frame was not sent", self.user.pk, exc_info=True)
        finally:
            if key is not None:
                self.answering.pop(key, None)

    @in_thread
    def _push_frame(self, handler: PushHandler, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = message["type"]
        data = {key: value for key, value in message.items() if key != "type"}
        try:
            frame = handler(self.user, data)
        except Exception:
            log.exception("The handler of push %s failed for user %s; the push is dropped", kind, self.user.pk)
            return None
        if frame is not None and not (isinstance(frame, dict) and isinstance(frame.get("type"), str)):
            log.error("The handler of push %s returned %r, not a frame with a type; dropped", kind, type(frame))
            return None
        return frame

    async def ticket_changed(self, message: dict[str, Any]) -> None:
        """A push from ``live.follow``: pass on the tickets this agent may see."""
        events = {int(ticket_id): int(event_id) for ticket_id, event_id in message.get("tickets", [])}
        visible = await self._visible(list(events))
        if visible:
            tickets = [{"id": pk, "reference": ref, "event": events[pk]} for pk, ref in visible]
            await self.send_json({"type": "changed", "tickets": tickets, "cursor": max(events.values())})

    @in_thread
    def _visible(self, ticket_ids: list[int]) -> list[tuple[int, str]]:
        rows = tickets_visible_to(self.user).filter(pk__in=ticket_ids).values_list("pk", "reference").order_by("pk")
        return [(pk, reference or "") for pk, reference in rows]

    @in_thread
    def _cursor(self) -> int:
        return TicketEvent.objects.aggregate(last=Max("pk"))["last"] or 0

    @in_thread
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
        """Join the agent's own group and those of the queues they work in now, leave the others.

        With the channel layer unreachable the socket stays open without pushes
        (logged); the next ping joins what is missing.
        """
        wanted = {queue_group(pk) for pk in await self._queue_ids()} | {user_group(self.user.pk)}
        if wanted != self.joined:
            # Who may see what changed: the frames kept for reuse are asked for again.
            self._reused_forget()
        try:
            for group in wanted - self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
                self.joined.add(group)
            for group in self.joined - wanted:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.joined.discard(group)
        except Exception:
            log.warning(
                "User %s's socket: no live pushes, the channel layer is unreachable", self.user.pk, exc_info=True
            )

    @in_thread
    def _queue_ids(self) -> list[int]:
        return list(queues_visible_to(self.user).values_list("pk", flat=True))

    @in_thread
    def _heartbeat(self) -> None:
        """Tell routing the agent is here: on connect, every ping, and every HEARTBEAT_EVERY
        seconds while the socket is open (``routing.services.agent_heartbeat``)."""
        try:
            routing_services.agent_heartbeat(user_id=self.user.pk)
        except Exception:
            # Presence is routing's business: a failure there must not take the workspace's stream down.
            log.warning("The heartbeat of user %s failed", self.user.pk, exc_info=True)


def _reuse_key(message: dict[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """The key a push's frame is kept under: its kind and data (None: data that cannot be a key)."""
    items = tuple(sorted((k, v) for k, v in message.items() if k != "type"))
    if not all(isinstance(v, (int, str, bool, type(None))) for _k, v in items):
        return None
    return str(message["type"]), items
