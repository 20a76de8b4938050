"""Chat test helpers: a widget, agents with a desk open, and starting a chat through the service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from channels_app.chat import services
from channels_app.chat.models import ChatWidget
from servicedesk.routing.models import AgentProfile, Availability
from servicedesk.tickets.models import Queue
from tests.factories import AgentFactory, QueueFactory

SHOP = "http://shop.example"


def widget_make(queue: Queue | None = None, **fields: Any) -> ChatWidget:
    fields.setdefault("allowed_origins", SHOP)
    fields.setdefault("name", "Shop chat")
    return ChatWidget.objects.create(queue=queue or QueueFactory(slug="chat"), **fields)


def chat_agent(queue: Queue, *, username: str | None = None, capacity: int = 2, at: datetime | None = None) -> Any:
    """An agent of ``queue``, online, with a desk open now (a heartbeat), who takes ``capacity`` chats."""
    agent = AgentFactory(queues=[queue], **({"username": username} if username else {}))
    AgentProfile.objects.update_or_create(
        user=agent,
        defaults={
            "availability": Availability.ONLINE,
            "seen_at": at or timezone.now(),
            "chat_capacity": capacity,
        },
    )
    return agent


def start(widget: ChatWidget, *, text: str = "Hello, my order is late", at: datetime | None = None, **fields: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "name": "Vera Visitor",
        "email": "vera@example.com",
        "topic": "",
        "text": text,
        "client_id": uuid.uuid4(),
        "origin": SHOP,
    }
    values.update(fields)
    return services.chat_start(services.ChatStart(widget=widget, **values), at=at)
