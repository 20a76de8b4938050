"""Where webhook events come from: one outbox row, written in the transaction of the change.

Ticket events come from the timeline: ``WebhooksConfig.ready`` registers
``ticket_event_follow`` with the ticket hooks, so every TicketEvent any
service records (workspace, API, intake, tasks) is seen here, inside its
transaction, and becomes at most one outbox row per event type and ticket
and transaction:

- ``created``  -> ``ticket.created``
- ``message`` of a public message -> ``message.created``
- ``status``, ``priority``, ``assignee``, ``queue``, ``topic``, ``subject``,
  ``tags`` -> one ``ticket.updated`` per transaction (the service call), its
  ``changes`` naming every field changed; a change made while the ticket is
  being opened is part of its ``ticket.created`` instead
- ``status`` to solved or closed -> ``ticket.solved`` as well
- ``rating`` -> ``rating.received``

Sessions are not on the timeline: the chat and phone channels call
``chat_event_emit`` and ``call_ended_emit`` in the transaction that starts or
ends one. Imported history raises nothing.

Writing here is the one write a ticket hook follower makes: the outbox row
must commit or roll back with the change (docs/webhooks.md, "Durability").
Nothing is written when no active endpoint takes the event's type; after
commit the row's dispatch task is enqueued, and the sweep finds any row
whose task was lost.
"""

from __future__ import annotations

import dataclasses
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.process_cache import ProcessCached
from servicedesk.tickets import statuses
from servicedesk.tickets.models import Message, Rating, TicketEvent
from servicedesk.webhooks import payloads
from servicedesk.webhooks.models import EventType, WebhookEndpoint, WebhookEvent

_SKIPPED_SOURCES = frozenset({"import"})
UPDATE_KINDS: dict[str, str] = {
    TicketEvent.Kind.STATUS: "status",
    TicketEvent.Kind.PRIORITY: "priority",
    TicketEvent.Kind.ASSIGNEE: "assignee",
    TicketEvent.Kind.QUEUE: "queue",
    TicketEvent.Kind.TOPIC: "topic",
    TicketEvent.Kind.SUBJECT: "subject",
    TicketEvent.Kind.TAGS: "tags",
}


@dataclasses.dataclass(eq=False)
class _Transaction:
    """What one transaction has written so far: the rows later events of the same ticket join.

    ``marker`` is the after-commit callback that tells this transaction from the next one.
    """

    marker: Callable[[], None] | None = None
    # ticket id -> id of its ticket.created / ticket.updated row in this transaction
    created: dict[int, uuid.UUID] = dataclasses.field(default_factory=dict)
    updated: dict[int, uuid.UUID] = dataclasses.field(default_factory=dict)


# One per database connection (a thread's, or an async context's): never shared by two transactions.
_by_connection: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Transaction] = weakref.WeakKeyDictionary()


def _still_pending(connection: BaseDatabaseWrapper, marker: Callable[[], None]) -> bool:
    """Whether ``marker`` still waits among the connection's after-commit callbacks.

    Django keeps them in ``connection.run_on_commit`` (what its own
    ``captureOnCommitCallbacks`` reads); each entry holds the callback. Read
    without assuming the entry's shape; should the list ever be gone, every
    call is taken for a new transaction (an update is then one event per
    field changed, never a change joined to another transaction's event).
    """
    pending = getattr(connection, "run_on_commit", None)
    if not isinstance(pending, list):
        return False
    return any(
        entry is marker or (isinstance(entry, tuple) and any(part is marker for part in entry)) for entry in pending
    )


def _state() -> _Transaction:
    """The state of the transaction this code runs in, new for each transaction.

    A transaction is told by a marker callback registered with ``on_commit``
    when its first event is seen. While the marker waits in the connection's
    after-commit list, this is the same transaction. A commit runs the
    marker, which drops the state; a rollback (of the whole transaction, or
    of the savepoint the marker was registered in) drops the marker with the
    rows written since, and the next event starts afresh. A savepoint rolled
    back after the marker was registered leaves the marker: the rows the
    state names may be gone, so every join reads its row first and writes a
    new one when it is missing. See docs/webhooks.md, "One ticket.updated per change".
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        # Autocommit: each statement is its own transaction, nothing to join.
        return _Transaction()
    state = _by_connection.get(connection)
    if state is not None and state.marker is not None and _still_pending(connection, state.marker):
        return state
    state = _Transaction()

    def marker() -> None:
        if _by_connection.get(connection) is state:
            del _by_connection[connection]

    state.marker = marker
    _by_connection[connection] = state
    transaction.on_commit(marker, robust=True)
    return state


def subscribed_types() -> frozenset[str]:
    """The event types at least one active endpoint takes."""
    types: set[str] = set()
    for event_types in WebhookEndpoint.objects.filter(is_active=True).values_list("event_types", flat=True):
        types.update(event_types or ())
    return frozenset(types)


# Read once per process and dropped when an endpoint is saved (core/process_cache.py): a
# change on a ticket costs no statement here while no endpoint takes its event.
_SUBSCRIBED = ProcessCached("webhooks.subscribed_types", subscribed_types, depends_on=[WebhookEndpoint])


def _subscribed(event_type: str) -> bool:
    return event_type in _SUBSCRIBED.get()


def _dispatch_after_commit(event_id: uuid.UUID) -> None:
    def enqueue() -> None:
        from servicedesk.webhooks.tasks import webhook_event_dispatch_task

        # With the broker down the row waits for the sweep (webhooks.sweep).
        task_enqueue(webhook_event_dispatch_task, str(event_id))

    transaction.on_commit(enqueue, robust=True)


def _insert(
    *, event_type: str, data: dict[str, Any], at: datetime, ticket_id: int | None, dedupe_key: str | None = None
) -> uuid.UUID | None:
    event = WebhookEvent(type=event_type, data=data, created_at=at, ticket_id=ticket_id, dedupe_key=dedupe_key)
    if dedupe_key is None:
        event.save(force_insert=True)
    else:
        # Raised before (a call folded again): ON CONFLICT DO NOTHING, and nothing to dispatch.
        WebhookEvent.objects.bulk_create([event], ignore_conflicts=True)
        if not WebhookEvent.objects.filter(pk=event.pk).exists():
            return None
    _dispatch_after_commit(event.pk)
    return event.pk


def webhook_event_emit(
    *,
    event_type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    at: datetime | None = None,
    ticket_id: int | None = None,
    dedupe_key: str | None = None,
) -> uuid.UUID | None:
    """Write one event to the outbox, in the caller's transaction; its id, or None when no
    active endpoint takes ``event_type`` (or ``dedupe_key`` was raised before).

    Call inside the transaction that makes the change: the event commits or
    rolls back with it. ``data`` may be a function, called only when the event is written.
    Idempotency key: ``dedupe_key`` (unique) when given.
    """
    if not _subscribed(event_type):
        return None
    return _insert(
        event_type=event_type,
        data=data() if callable(data) else data,
        at=at or timezone.now(),
        ticket_id=ticket_id,
        dedupe_key=dedupe_key,
    )


# --- Ticket events --------------------------------------------------------------------


def ticket_event_follow(*, event: TicketEvent) -> None:
    """The ticket hook: turn one just-recorded TicketEvent into its webhook events (see the module)."""
    if event.source in _SKIPPED_SOURCES:
        return
    kind = event.kind
    if kind == TicketEvent.Kind.CREATED:
        _ticket_created(event)
    elif kind == TicketEvent.Kind.MESSAGE:
        _message_created(event)
    elif kind == TicketEvent.Kind.RATING:
        _rating_received(event)
    if kind in UPDATE_KINDS:
        _ticket_updated(event, UPDATE_KINDS[kind])
    if (
        kind == TicketEvent.Kind.STATUS
        and isinstance(event.before, str)
        and isinstance(event.after, str)
        and statuses.is_solve(event.before, event.after)
    ):
        _ticket_solved(event)


def _ticket_created(event: TicketEvent) -> None:
    if not _subscribed(EventType.TICKET_CREATED):
        if _subscribed(EventType.TICKET_UPDATED):
            # Remembered all the same: what follows in this transaction is part of the opening.
            _state().created.setdefault(event.ticket_id, uuid.UUID(int=0))
        return
    state = _state()
    data = {"ticket": payloads.ticket_data(event.ticket_id)}
    event_id = _insert(event_type=EventType.TICKET_CREATED, data=data, at=event.at, ticket_id=event.ticket_id)
    if event_id is not None:
        state.created[event.ticket_id] = event_id


def _ticket_updated(event: TicketEvent, field: str) -> None:
    if not (_subscribed(EventType.TICKET_UPDATED) or _subscribed(EventType.TICKET_CREATED)):
        return
    state = _state()
    ticket_id = event.ticket_id
    created = state.created.get(ticket_id)
    if created is not None:
        # Changed while being opened (routed, say): the opening's event shows the result.
        if created.int:
            WebhookEvent.objects.filter(pk=created).update(data={"ticket": payloads.ticket_data(ticket_id)})
        return
    if not _subscribed(EventType.TICKET_UPDATED):
        return
    ticket = payloads.ticket_data(ticket_id)
    earlier = state.updated.get(ticket_id)
    if earlier is not None:
        row = WebhookEvent.objects.filter(pk=earlier).values_list("data", flat=True).first()
        if row is not None:
            changes = list(row.get("changes", []))
            change = _change(event, field)
            changes = [c for c in changes if c["field"] != field] + [_merge(changes, change)]
            WebhookEvent.objects.filter(pk=earlier).update(data={"ticket": ticket, "changes": changes})
            return
    data = {"ticket": ticket, "changes": [_change(event, field)]}
    event_id = _insert(event_type=EventType.TICKET_UPDATED, data=data, at=event.at, ticket_id=ticket_id)
    if event_id is not None:
        state.updated[ticket_id] = event_id


def _change(event: TicketEvent, field: str) -> dict[str, Any]:
    """One changed field. Status, priority, subject and tags carry their values before and after; an
    assignee, queue or topic is named by the ticket's current one in ``ticket``."""
    if field in ("status", "priority", "subject", "tags"):
        return {"field": field, "before": event.before, "after": event.after}
    return {"field": field}


def _merge(changes: list[dict[str, Any]], change: dict[str, Any]) -> dict[str, Any]:
    """A field changed twice in one call: from its first ``before`` to its last ``after``."""
    first = next((c for c in changes if c["field"] == change["field"]), None)
    if first is not None and "before" in first:
        return {**change, "before": first["before"]}
    return change


def _ticket_solved(event: TicketEvent) -> None:
    if not _subscribed(EventType.TICKET_SOLVED):
        return
    data = {"ticket": payloads.ticket_data(event.ticket_id)}
    _insert(event_type=EventType.TICKET_SOLVED, data=data, at=event.at, ticket_id=event.ticket_id)


def _message_created(event: TicketEvent) -> None:
    if event.message_id is None or not _subscribed(EventType.MESSAGE_CREATED):
        return
    message = (
        Message.objects.select_related("author_user", "author_customer")
        .prefetch_related("attachments")
        .filter(pk=event.message_id)
        .first()
    )
    if message is None or message.kind not in payloads.PUBLIC_MESSAGE_KINDS:
        return
    data = {"message": payloads.message_data(message), "ticket": payloads.ticket_data(event.ticket_id)}
    _insert(event_type=EventType.MESSAGE_CREATED, data=data, at=event.at, ticket_id=event.ticket_id)


def _rating_received(event: TicketEvent) -> None:
    if not _subscribed(EventType.RATING_RECEIVED):
        return
    rating = Rating.objects.filter(ticket_id=event.ticket_id).order_by("-at", "-pk").first()
    if rating is None:
        return
    rating_received_emit(ticket_id=event.ticket_id, rating=rating)


def rating_received_emit(*, ticket_id: int, rating: Rating) -> uuid.UUID | None:
    """``rating.received`` for a rating stored without a ``rating`` TicketEvent (a chat's rating).

    Call in the transaction that stores the rating. Idempotency key: the
    rating's id and score (a rating changed to another score is a new event).
    """
    return webhook_event_emit(
        event_type=EventType.RATING_RECEIVED,
        data=lambda: {"rating": payloads.rating_data(rating), "ticket": payloads.ticket_data(ticket_id)},
        at=rating.at,
        ticket_id=ticket_id,
        dedupe_key=f"rating:{rating.pk}:{rating.score}:{payloads.instant(rating.at)}",
    )


# --- Sessions (chat, phone) -----------------------------------------------------------


def chat_event_emit(
    *,
    event_type: str,
    chat_id: int,
    ticket_id: int,
    status: str,
    requested_at: datetime,
    ended_at: datetime | None = None,
    agent_id: int | None = None,
) -> uuid.UUID | None:
    """``chat.started`` or ``chat.ended`` of one live chat; call in the transaction that starts or ends it.

    Idempotency key: the chat and the event type (a chat starts and ends once).
    """
    if event_type not in (EventType.CHAT_STARTED, EventType.CHAT_ENDED):
        raise ValueError(event_type)

    def data() -> dict[str, Any]:
        chat = {
            "id": chat_id,
            "status": status,
            "requested_at": payloads.instant(requested_at),
            "ended_at": payloads.instant(ended_at),
            "agent": payloads.person(_user(agent_id)),
        }
        return {"chat": chat, "ticket": payloads.ticket_data(ticket_id)}

    return webhook_event_emit(
        event_type=event_type,
        data=data,
        at=ended_at or requested_at,
        ticket_id=ticket_id,
        dedupe_key=f"{event_type}:{chat_id}",
    )


def _user(user_id: int | None) -> User | None:
    return User.objects.filter(pk=user_id).first() if user_id is not None else None


def call_ended_emit(
    *,
    call_id: int,
    direction: str,
    outcome: str,
    rang_at: datetime,
    answered_at: datetime | None,
    ended_at: datetime | None,
    agent_id: int | None,
    customer_id: int | None,
    ticket_id: int | None,
) -> uuid.UUID | None:
    """``call.ended`` of one call; call in the transaction that records its end.

    Idempotency key: the call (folding it again after it ended raises nothing).
    """

    def data() -> dict[str, Any]:
        call = {
            "id": call_id,
            "direction": direction,
            "outcome": outcome,
            "rang_at": payloads.instant(rang_at),
            "answered_at": payloads.instant(answered_at),
            "ended_at": payloads.instant(ended_at),
            "agent": payloads.person(_user(agent_id)),
            "customer_id": customer_id,
        }
        return {"call": call, "ticket": payloads.ticket_data(ticket_id) if ticket_id is not None else None}

    return webhook_event_emit(
        event_type=EventType.CALL_ENDED,
        data=data,
        at=ended_at,
        ticket_id=ticket_id,
        dedupe_key=f"call.ended:{call_id}",
    )
