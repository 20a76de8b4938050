"""WebSocket addresses (docs/architecture.md, "Live updates")."""

from typing import Any

from django.urls import path

from servicedesk.live.consumers import DeskConsumer

# Channels' URLRouter takes Django's path() with an ASGI application as the view.
websocket_urlpatterns: list[Any] = [
    path("ws/desk/", DeskConsumer.as_asgi()),  # type: ignore[arg-type]
]
