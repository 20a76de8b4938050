"""Who may see which chat: the one rule for chats, on every path (API, console, pushes).

An agent sees a chat when they may see its ticket (``tickets_visible_to``,
the rule of the pages and the API); a visitor only ever reaches the one
conversation their token opens (``services.conversation_for_token``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from servicedesk.accounts.roles import user_role
from servicedesk.core.errors import NotFound
from servicedesk.tickets.access import tickets_visible_to

from .models import ChatConversation


def chats_visible_to(user: Any) -> QuerySet[ChatConversation]:
    if user is None or not user.is_authenticated or user_role(user) is None:
        return ChatConversation.objects.none()
    return ChatConversation.objects.filter(ticket__in=tickets_visible_to(user).values("pk"))


def chat_get_for(user: Any, conversation_id: Any) -> ChatConversation:
    """The chat with this id if ``user`` may see it, else NotFound (the same answer as for no chat)."""
    try:
        pk = int(conversation_id)
    except (TypeError, ValueError):
        raise NotFound("No such chat.") from None
    conversation = (
        chats_visible_to(user)
        .select_related("widget", "agent", "customer__organization", "ticket", "queue", "session")
        .filter(pk=pk)
        .first()
    )
    if conversation is None:
        raise NotFound("No such chat.")
    return conversation
