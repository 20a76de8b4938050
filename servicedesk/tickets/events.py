"""Who did a change, and the one helper that records it on the ticket's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from servicedesk.core.prepared import row_insert
from servicedesk.tickets import hooks
from servicedesk.tickets.models import TicketEvent

if TYPE_CHECKING:
    from servicedesk.accounts.models import User
    from servicedesk.tickets.models import Customer, Message, Ticket


@dataclass(frozen=True)
class Actor:
    """The agent, customer or automation behind a change, and where it came from."""

    user: User | None = None
    customer: Customer | None = None
    source: str = "system"  # ui, api, intake, portal, import, system

    @classmethod
    def agent(cls, user: User, *, source: str = "ui") -> Actor:
        return cls(user=user, source=source)

    @classmethod
    def of_customer(cls, customer: Customer, *, source: str = "intake") -> Actor:
        return cls(customer=customer, source=source)

    @classmethod
    def system(cls, *, source: str = "system") -> Actor:
        return cls(source=source)


def event_build(
    *,
    ticket: Ticket,
    kind: str,
    actor: Actor,
    at: datetime,
    before: Any = None,
    after: Any = None,
    message: Message | None = None,
) -> TicketEvent:
    return TicketEvent(
        ticket=ticket,
        kind=kind,
        at=at,
        actor_user=actor.user,
        actor_customer=actor.customer,
        before=before,
        after=after,
        message=message,
        source=actor.source,
    )


def event_record(**kwargs: Any) -> TicketEvent:
    """Store one TicketEvent. Call inside the transaction that makes the change.

    The ticket hooks' followers see each event (routing: capacity freed, a
    ticket left waiting), see ``hooks.py``.
    """
    event = event_build(**kwargs)
    event.save(force_insert=True)
    hooks.event_followers_run(event=event)
    return event


def events_store(events: list[TicketEvent]) -> None:
    """Store events gathered in a transaction in one INSERT, ids in list order, and
    hand each to the ticket hooks' followers, as ``event_record`` does; empties the list.

    Build them with ``event_build``; an event may name a message or a ticket
    that was not saved when it was built, as long as both are saved now.
    """
    if not events:
        return
    if len(events) == 1:
        # The usual case (a message, a reply): one row, its SQL made once per connection.
        row_insert(events[0])
    else:
        TicketEvent.objects.bulk_create(events)
    for event in events:
        hooks.event_followers_run(event=event)
    events.clear()
