"""What an agent's ``/ws/desk/`` sockets hear of chats (servicedesk/live/pushes.py).

Every push is checked with the chat access rule before it is sent on, and
only names the chat: the console reads it again from the API. A socket asks
the rule once per chat and ``REUSE_SECONDS`` for "changed" and "typing" (a
busy chat sends several a second) and forgets the answers on each ping;
offers and queue changes are checked every time.

- ``{"type": "chat", "event": "offer", "conversation": id}``: a chat was offered
  to the agent, or an offer of theirs was withdrawn (read the chat to know which);
- ``{"type": "chat", "event": "changed", "conversation": id}``: new lines or status;
- ``{"type": "chat", "event": "typing", "conversation": id}``: the visitor is typing;
- ``{"type": "chat", "event": "queue", "conversation": id}``: the waiting list of one
  of the agent's queues changed.
"""

from __future__ import annotations

from typing import Any

from servicedesk.live.pushes import user_push

from .access import chats_visible_to

REUSE_SECONDS = 60


def _frame(event: str, user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    conversation_id = data.get("conversation")
    if not isinstance(conversation_id, int) or not chats_visible_to(user).filter(pk=conversation_id).exists():
        return None
    return {"type": "chat", "event": event, "conversation": conversation_id}


@user_push("chat.offer")
def chat_offer(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    return _frame("offer", user, data)


@user_push("chat.changed", reuse_seconds=REUSE_SECONDS)
def chat_changed(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    return _frame("changed", user, data)


@user_push("chat.typing", reuse_seconds=REUSE_SECONDS)
def chat_typing(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    return _frame("typing", user, data)


@user_push("chat.queue")
def chat_queue(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    return _frame("queue", user, data)
