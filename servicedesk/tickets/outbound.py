"""Outbound delivery registry. The domain never imports a channel.

Each channel registers a deliverer for the channels whose replies it carries
(at start-up, in its AppConfig.ready). The web form's replies go by email.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servicedesk.tickets.models import Message


class DeliveryError(Exception):
    """Delivery failed. ``temporary`` failures are retried with backoff."""

    def __init__(self, reason: str, *, temporary: bool):
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


@dataclass(frozen=True)
class DeliveryReceipt:
    rfc_message_id: str | None = None
    recipients: tuple[str, ...] = ()


Deliverer = Callable[["Message"], DeliveryReceipt]

_registry: dict[str, Deliverer] = {}


def register(ticket_channel: str, deliverer: Deliverer) -> None:
    """Deliver public messages of tickets that arrived on ``ticket_channel``."""
    _registry[ticket_channel] = deliverer


def deliverer_for(ticket_channel: str) -> Deliverer | None:
    return _registry.get(ticket_channel)


def registered_channels() -> list[str]:
    return sorted(_registry)
