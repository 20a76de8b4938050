"""The floor for bench/bench_chat.py: a chat line's WebSocket hops without the database.

Served by the same server command as the desk (``servicedesk.serve``, one
uvicorn process, the project's Redis channel layer from its settings), at the
same addresses and with the same frames, so the benchmark's clients run
unchanged against it:

- ``/ws/chat/?token=…&c=<conversation>&a=<agent>``: a visitor. A ``message``
  frame makes the two pushes a stored line makes (``channels_app/chat/services.py``:
  ``_push_visitor`` and ``_push_agents``), both through the channel layer: to
  the visitor's group, whose consumer sends the line back with its
  ``client_id`` and ``seq`` (the echo), and to the agent's group. ``ping`` is
  answered with ``pong``, ``resume`` with the status. No token check and no
  Origin check: nothing here is stored or read.
- ``/ws/desk/?a=<agent>``: an agent's desk socket; a push for one of its chats
  becomes ``{"type": "chat", "event": "changed", "conversation": id}``.
- Any HTTP request: 200 (the benchmark's ``/healthz`` probe).

What the desk does on top of this (the token and Origin check, storing the
line through the intake, reading it back, the access rule on every push) is
the difference the benchmark reports.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
# The settings hold CHANNEL_LAYERS (REDIS_URL): the same layer and configuration as the desk's.
django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


def _query(scope: dict[str, Any], name: str) -> int:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name) or ["0"]
    return int(values[0])


def visitor_group(conversation_id: int) -> str:
    return f"echo.visitor.{conversation_id}"


def agent_group(agent_id: int) -> str:
    return f"echo.user.{agent_id}"


class EchoVisitor(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.conversation_id = _query(self.scope, "c")
        self.agent_id = _query(self.scope, "a")
        self.group = visitor_group(self.conversation_id)
        self.seq = 0
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._status()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _status(self) -> None:
        await self.send_json({"type": "status", "status": "active", "position": 0, "agent": "Agent"})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "message":
            self.seq += 1
            line = {"seq": self.seq, "client_id": content.get("client_id"), "text": content.get("text", "")}
            await self.channel_layer.group_send(self.group, {"type": "chat.changed", **line})
            await self.channel_layer.group_send(
                agent_group(self.agent_id), {"type": "chat.changed", "conversation": self.conversation_id}
            )
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "resume":
            await self._status()
        else:
            await self.send_json({"type": "error", "code": "bad_frame", "message": "Unknown frame type."})

    async def chat_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "message",
                "seq": event["seq"],
                "client_id": event["client_id"],
                "author": "visitor",
                "name": "",
                "text": event["text"],
                "at": "",
            }
        )


class EchoDesk(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.group = agent_group(_query(self.scope, "a"))
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "hello", "cursor": 0})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def chat_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "chat", "event": "changed", "conversation": event["conversation"]})


async def http_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b"ok\n"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {
        "http": http_ok,
        "websocket": URLRouter(
            [
                path("ws/chat/", EchoVisitor.as_asgi()),  # type: ignore[arg-type]
                path("ws/desk/", EchoDesk.as_asgi()),  # type: ignore[arg-type]
            ]
        ),
    }
)
