"""``/ws/chat/?token=<visitor token>``: the visitor's side of a chat (docs/chat-protocol.md).

The token opens exactly one conversation. The socket is refused (and the
refusal logged) for an unknown or expired token (close 4401) and for a page
whose Origin is not one of the widget's allowed origins nor the desk's own
(close 4403). The database is the truth: a push only says the conversation
changed, and the consumer reads the lines after the last one it sent.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg.errors
from django.utils import timezone

from servicedesk.core.errors import ApplicationError
from servicedesk.live.flood import Bucket
from servicedesk.live.threads import SocketConsumer, in_thread

from . import loop_line, services
from .loop_line import line_owner, loop_lines_enabled, visitor_line_store
from .models import ChatConversation, ChatWidget, LineAuthor

log = logging.getLogger(__name__)


CLOSE_UNKNOWN_TOKEN = 4401
CLOSE_ORIGIN = 4403
CLOSE_FLOOD = 4429
FRAME_MAX = 16 * 1024
REPLAY_PAGE = 500
# Messages and typing notices: a burst, then this many a second.
FLOOD_RATE = 3.0
FLOOD_BURST = 10
FLOOD_REFUSALS_MAX = 30
TYPING_EVERY = 2.0
# An active chat's visitor is recorded as seen at most this often on pings
# (the tick reads it for waiting chats only; a waiting chat's every ping counts).
SEEN_ACTIVE_EVERY = 60.0


def origin_allowed(widget: ChatWidget, origin: str, *, own_host: str) -> bool:
    """Whether a page of ``origin`` may use ``widget``: one of its allowed origins, or the desk
    itself (the same host and port as the request's own ``Host``)."""
    origin = (origin or "").strip().rstrip("/").lower()
    if not origin or origin == "null":
        return False
    if origin in widget.origins():
        return True
    return bool(own_host) and urlsplit(origin).netloc == own_host.strip().lower()


class ChatConsumer(SocketConsumer):
    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        conversation = await self._conversation(token)
        if conversation is None:
            log.warning("Refused /ws/chat/: unknown or expired token (origin %s)", origin[:200] or "none")
            await self.close(code=CLOSE_UNKNOWN_TOKEN)
            return
        own_host = headers.get(b"host", b"").decode("latin-1")
        if not origin_allowed(conversation.widget, origin, own_host=own_host):
            log.warning(
                "Refused /ws/chat/ for chat %s: origin %s is not allowed", conversation.pk, origin[:200] or "none"
            )
            await self.close(code=CLOSE_ORIGIN)
            return
        self.conversation_id = conversation.pk
        # Lines are stored from the loop while the chat's ticket and customer are these (loop_line.py).
        self.owner = line_owner(conversation) if loop_lines_enabled() else None
        self.group = services.visitor_group(conversation.pk)
        self.sent_seq: int | None = None
        self.last_status: dict[str, Any] | None = None
        self.bucket = Bucket(capacity=FLOOD_BURST, rate=FLOOD_RATE)
        self.refusals = 0
        self.typing_at = 0.0
        self.seen_at = 0.0
        await self.accept()
        self.joined = await self._join()
        await self._seen()
        await self._send_status()

    async def _join(self) -> bool:
        """Join the conversation's group; False (logged) while the channel layer is unreachable."""
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception:
            log.warning(
                "Chat %s: no live pushes, the channel layer is unreachable", self.conversation_id, exc_info=True
            )
            return False
        return True

    @in_thread
    def _conversation(self, token: str) -> ChatConversation | None:
        try:
            return services.conversation_for_token(token)
        except ApplicationError:
            return None

    async def disconnect(self, code: int) -> None:
        conversation_id = getattr(self, "conversation_id", None)
        if conversation_id is None:
            return
        try:
            await in_thread(services.visitor_left)(conversation_id)
        except Exception:
            # The tick notices the silence instead (no frame within the grace).
            log.warning("Could not record that chat %s's visitor left", conversation_id, exc_info=True)
        try:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        except Exception:
            # The layer forgets the membership at its expiry; the socket is gone either way.
            log.warning("Could not leave the group of chat %s", conversation_id, exc_info=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None or len(text_data) > FRAME_MAX:
            await self._error("bad_frame", "A frame is a JSON object of at most 16 KiB of text.")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error("bad_frame", "A frame is a JSON object.")
            return
        if not isinstance(content, dict):
            await self._error("bad_frame", "A frame is a JSON object.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type")
        if kind in ("message", "typing", "end") and not self.bucket.take():
            self.refusals += 1
            log.warning("Chat %s: visitor flood limit, %s frame refused", self.conversation_id, kind)
            await self._error("rate_limited", "Too many messages at once; wait a moment.")
            if self.refusals >= FLOOD_REFUSALS_MAX:
                log.warning("Chat %s: visitor socket closed for flooding", self.conversation_id)
                await self.close(code=CLOSE_FLOOD)
            return
        try:
            if kind == "message":
                await self._message(content)
            elif kind == "typing":
                await self._typing()
            elif kind == "resume":
                await self._resume(content)
            elif kind == "end":
                await in_thread(services.chat_end)(conversation_id=self.conversation_id, by="visitor")
                await self._catch_up()
            elif kind == "ping":
                if not self.joined:
                    # Without pushes (the layer was down) the chat still moves: each ping reads what is new.
                    self.joined = await self._join()
                # A push lost on the way (the layer is at most once) is made up for here.
                if await self._ping_behind():
                    await self._catch_up()
                await self.send_json({"type": "pong"})
            else:
                await self._error("bad_frame", "Unknown frame type.")
        except ApplicationError as exc:
            code = getattr(exc, "code", "") or exc.extra.get("code") or "invalid"
            log.info("Chat %s: visitor frame refused (%s): %s", self.conversation_id, code, exc.message)
            client_id = content.get("client_id") if kind == "message" else None
            await self._error(
                code, str(exc.message), field=exc.field, client_id=client_id if isinstance(client_id, str) else None
            )

    async def _message(self, content: dict[str, Any]) -> None:
        try:
            client_id = uuid.UUID(str(content.get("client_id")))
        except ValueError:
            await self._error("bad_frame", "A message needs a client_id, a UUID.")
            return
        text = content.get("text")
        if not isinstance(text, str):
            await self._error("bad_frame", "A message needs its text.")
            return
        frame = await self._store_on_loop(client_id, text)
        if frame is None:
            frame = await in_thread(self._store)(client_id, text)
        if self.sent_seq is not None and frame["seq"] == self.sent_seq + 1:
            # The next line is this very one (the usual case): its echo, the "delivered" mark, as stored.
            await self.send_json(frame)
            self.sent_seq = frame["seq"]
            return
        if self.sent_seq is None:
            # Not resumed yet: at least this line's echo.
            self.sent_seq = 0
        await self._catch_up()

    async def _store_on_loop(self, client_id: uuid.UUID, text: str) -> dict[str, Any] | None:
        """The usual line stored by one statement on the loop (``loop_line.py``); None: for the service."""
        if self.owner is None:
            return None
        try:
            stored = await visitor_line_store(self.owner, client_id=client_id, text=text, at=timezone.now())
        except psycopg.errors.UniqueViolation:
            # The same line from two sockets at once: the service answers it as stored.
            return None
        except Exception:
            # The database away, the pool exhausted: the service decides (and answers its error).
            log.warning("Chat %s: line handed to the service", self.conversation_id, exc_info=True)
            return None
        return None if stored is None else stored.frame()

    def _store(self, client_id: uuid.UUID, text: str) -> dict[str, Any]:
        line, _new = services.chat_visitor_message(conversation_id=self.conversation_id, client_id=client_id, text=text)
        return services.line_frame(line, line.conversation, for_visitor=True, files=[])

    async def _seen(self) -> None:
        """Record that the visitor is connected (``services.visitor_seen``)."""
        self.seen_at = time.monotonic()
        await in_thread(services.visitor_seen)(self.conversation_id)

    async def _ping_behind(self) -> bool:
        """On a ping: record the visitor as seen (an active chat's at most every SEEN_ACTIVE_EVERY
        seconds) and tell whether the conversation moved past what this socket sent (one thread hop)."""
        now = time.monotonic()
        status = (self.last_status or {}).get("status")
        seen = status != "active" or now - self.seen_at >= SEEN_ACTIVE_EVERY
        if seen:
            self.seen_at = now
        last_seq, stored_status = await self._ping_read(seen)
        # Lines only once the socket resumed (it asked for lines from a point on).
        return stored_status != status or (self.sent_seq is not None and last_seq > self.sent_seq)

    async def _ping_read(self, seen: bool) -> tuple[int, str]:
        if self.owner is not None:
            try:
                return await loop_line.visitor_ping(self.conversation_id, seen=seen, at=timezone.now())
            except Exception:
                log.warning("Chat %s: ping read by the service", self.conversation_id, exc_info=True)
        return await in_thread(services.visitor_ping)(self.conversation_id, seen=seen)

    async def _typing(self) -> None:
        now = time.monotonic()
        if now - self.typing_at < TYPING_EVERY:
            return
        self.typing_at = now
        await in_thread(self._typing_push)()

    def _typing_push(self) -> None:
        conversation = ChatConversation.objects.only("pk", "agent_id").get(pk=self.conversation_id)
        if conversation.agent_id:
            services.typing_push(conversation, author=LineAuthor.VISITOR)

    async def _resume(self, content: dict[str, Any]) -> None:
        after = content.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self._error("bad_frame", "resume needs 'after', a sequence number (0 for everything).")
            return
        self.sent_seq = after
        await self._seen()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Send the lines after the last one sent, then the status if it changed."""
        frames, status = await self._read(self.sent_seq)
        while frames:
            for frame in frames:
                await self.send_json(frame)
            self.sent_seq = frames[-1]["seq"]
            if len(frames) < REPLAY_PAGE:
                break
            frames, status = await self._read(self.sent_seq)
        if status != self.last_status:
            self.last_status = status
            await self.send_json(status)

    async def _send_status(self) -> None:
        _frames, status = await self._read(None)
        self.last_status = status
        await self.send_json(status)

    @in_thread
    def _read(self, after: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        conversation = ChatConversation.objects.select_related("widget", "agent", "customer__organization").get(
            pk=self.conversation_id
        )
        frames = []
        if after is not None and after < conversation.last_seq:
            frames = [
                services.line_frame(line, conversation, for_visitor=True)
                for line in services.lines_after(conversation, after, limit=REPLAY_PAGE)
            ]
        return frames, services.status_frame(conversation)

    async def _error(self, code: str, message: str, *, field: str | None = None, client_id: str | None = None) -> None:
        frame = {"type": "error", "code": code, "message": message}
        if field:
            frame["field"] = field
        if client_id:
            # The message the visitor sent that was refused.
            frame["client_id"] = client_id[:64]
        await self.send_json(frame)

    # Pushes (servicedesk/core/realtime.py): "chat.changed" calls chat_changed.
    async def chat_changed(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if isinstance(seq, int) and self.sent_seq is not None and seq <= self.sent_seq:
            return  # a new line this socket has sent already (its own message, read back at once)
        await self._catch_up()

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "author": "agent"})
