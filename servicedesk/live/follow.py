"""Every change to a ticket becomes a push to the agents of its queue, after commit.

Each change records a TicketEvent in its transaction (``tickets/events.py``);
the ticket hooks hand every new event here. The events of one transaction are
gathered and pushed once it commits: one message per queue, naming the
tickets that changed and their newest event id, nothing of their content.
A ticket moved between queues is pushed to both. Imported history pushes
nothing, and neither does a line of a live chat (a visitor's or an agent's
message in the chat): the agents in that chat hear of it through the chat's
own pushes (channels_app/chat/pushes.py), and a queue's desks are not told of
every line of every chat.
"""

from __future__ import annotations

import threading

from django.db import transaction

from servicedesk.core.realtime import realtime_publish
from servicedesk.tickets.models import TicketEvent

_SKIPPED_SOURCES = frozenset({"import"})
# Kind of the push a consumer receives for it (DeskConsumer.ticket_changed).
TICKET_CHANGED = "ticket.changed"


def queue_group(queue_id: int) -> str:
    return f"desk.queue.{queue_id}"


class _Pending(threading.local):
    def __init__(self) -> None:
        # queue id -> {ticket id: newest event id}
        self.changes: dict[int, dict[int, int]] = {}


_pending = _Pending()


def ticket_event_follow(*, event: TicketEvent) -> None:
    """Note the event's ticket as changed in its queue (and the queue it left); pushed after commit."""
    if event.source in _SKIPPED_SOURCES or event.pk is None or _is_chat_line(event):
        return
    ticket = event.ticket
    queues = {ticket.queue_id}
    if event.kind == TicketEvent.Kind.QUEUE and isinstance(event.before, int):
        queues.add(event.before)
    for queue_id in queues:
        if queue_id is None:
            continue
        tickets = _pending.changes.setdefault(queue_id, {})
        tickets[ticket.pk] = max(tickets.get(ticket.pk, 0), event.pk)
    # One callback per event: whichever runs first after the commit sends
    # everything gathered, the others find nothing. A callback dropped with a
    # rolled-back savepoint leaves its entries to the next commit, which at
    # worst pushes a change that did not happen: clients read the database.
    transaction.on_commit(_flush, robust=True)


def _is_chat_line(event: TicketEvent) -> bool:
    """A message written in a live chat: by its visitor (through the intake) or its agent (the chat's API)."""
    return (
        event.kind == TicketEvent.Kind.MESSAGE
        and event.source in _CHAT_LINE_SOURCES
        and isinstance(event.after, dict)
        and event.after.get("channel") == "chat"
    )


_CHAT_LINE_SOURCES = frozenset({"intake", "chat"})


def _flush() -> None:
    changes, _pending.changes = _pending.changes, {}
    for queue_id, tickets in changes.items():
        realtime_publish(
            group=queue_group(queue_id),
            kind=TICKET_CHANGED,
            data={"tickets": sorted([ticket_id, event_id] for ticket_id, event_id in tickets.items())},
        )
