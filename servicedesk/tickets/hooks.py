"""Ticket hooks: how the domain calls a package above it without importing it.

Like the outbound registry (``outbound.py``), these are filled when Django
starts, by the package that acts on them (routing, in ``RoutingConfig.ready``;
see docs/architecture.md, "Dependency rules" and "Routing"):

- **event followers** see every TicketEvent as ``event_record`` (or a bulk
  SLA flush) stores it, inside the transaction that made the change. They may
  register after-commit work; they must not write, except the webhooks' outbox
  row, which must commit with the change (docs/webhooks.md).
- **inbound routers** may assign a ticket that intake just opened without an
  assignee, inside the transaction that opens it (calling ``before_write``
  before they write).
- **customer message followers** hear, after commit, of each message a
  customer wrote on an existing ticket (notifications tells the assignee).

With nothing registered (a package left out of ``INSTALLED_APPS``) the domain
works the same, without that behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from servicedesk.tickets.models import Ticket, TicketEvent


class EventFollower(Protocol):
    def __call__(self, *, event: TicketEvent) -> None: ...


class InboundRouter(Protocol):
    def __call__(self, *, ticket: Ticket, at: datetime, before_write: Callable[[], None]) -> object: ...


class CustomerMessageFollower(Protocol):
    def __call__(self, *, message_id: int, assignee_id: int | None) -> None: ...


_event_followers: list[EventFollower] = []
_inbound_routers: list[InboundRouter] = []
_customer_message_followers: list[CustomerMessageFollower] = []


def event_follower_register(follower: EventFollower) -> None:
    """Hand every new TicketEvent to ``follower`` (registering twice has no second effect)."""
    if follower not in _event_followers:
        _event_followers.append(follower)


def inbound_router_register(router: InboundRouter) -> None:
    """Offer every ticket intake opens without assignee to ``router`` (once per registration)."""
    if router not in _inbound_routers:
        _inbound_routers.append(router)


def customer_message_follower_register(follower: CustomerMessageFollower) -> None:
    """Tell ``follower`` of every customer message appended to an existing ticket (once per registration)."""
    if follower not in _customer_message_followers:
        _customer_message_followers.append(follower)


def event_followers_run(*, event: TicketEvent) -> None:
    """Call every registered follower with a just-stored event, in registration order."""
    for follower in _event_followers:
        follower(event=event)


def inbound_ticket_route(*, ticket: Ticket, at: datetime, before_write: Callable[[], None]) -> None:
    """Offer a ticket intake just opened without assignee to the registered routers.

    A router calls ``before_write`` before it writes anything: the opening
    stores what it gathered (its events, in timeline order) first.
    """
    for router in _inbound_routers:
        router(ticket=ticket, at=at, before_write=before_write)


def customer_message_followers_run(*, message_id: int, assignee_id: int | None) -> None:
    """After commit: a customer wrote message ``message_id`` on an existing ticket,
    assigned to ``assignee_id`` (None: nobody) when the message was stored."""
    for follower in _customer_message_followers:
        follower(message_id=message_id, assignee_id=assignee_id)
