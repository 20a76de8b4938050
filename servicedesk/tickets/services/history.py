"""Recording what already happened, for imports of another desk's history.

Intake (``services/intake.py``) stores a customer's message *and* reacts to it:
it acknowledges, notifies and enqueues work. A historical message needs the
same rows without any of those reactions, so it has its own function here.

``HistoryBatch`` records many such records at once, for imports at thousands
of records per second: the same rows as the single services, written with a
few bulk statements per batch.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import JSONField, Model
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent, sees_all_queues
from servicedesk.core.errors import ApplicationError
from servicedesk.core.text import clean_line, clean_text, header_safe
from servicedesk.tickets.events import Actor, event_build, event_record
from servicedesk.tickets.locks import ticket_lock, tickets_lock_rows
from servicedesk.tickets.models import (
    Customer,
    DeliveryStatus,
    Identity,
    Message,
    MessageKind,
    Organization,
    Queue,
    Rating,
    Ticket,
    TicketEvent,
    Topic,
)
from servicedesk.tickets.services.tickets import (
    InvalidStatusTransition,
    _apply_status,
    assignee_check,
    priority_check,
    reference_for,
    status_fields_set,
    status_transition_check,
)
from servicedesk.tickets.statuses import Status


def ticket_customer_message_record(
    *,
    ticket: Ticket,
    customer: Customer,
    text: str,
    at: datetime,
    external_id: str,
    status: str | None = None,
    source: str = "import",
) -> Message:
    """Store a customer's (``public_enduser``) message exactly as it happened.

    Writes the message on the ticket's channel, its ``message`` event and, when
    ``status`` is given, the status change at the same instant after the
    message (TRANSITIONS apply). Without ``status`` the ticket keeps its status:
    the history states every change itself. Never acknowledges, notifies or
    enqueues anything. Idempotency key: (ticket channel, ``external_id``), unique.
    Raises ApplicationError (empty text, merged ticket, refused transition) with
    nothing written. Without ``status`` the ticket is not reloaded, so the
    caller passes an instance whose ``merged_into_id`` is current.
    """
    text = clean_text(text)
    if not text.strip():
        raise ApplicationError(_("The message is empty."), field="text")
    actor = Actor.of_customer(customer, source=source)
    with transaction.atomic():
        if status:
            ticket = ticket_lock(ticket.pk)
        if ticket.merged_into_id:
            raise ApplicationError(_("This ticket was merged into another one; write there."))
        message = Message(
            ticket=ticket,
            kind=MessageKind.PUBLIC_ENDUSER,
            channel=ticket.channel,
            author_customer=customer,
            text=text,
            external_id=external_id,
            created_at=at,
        )
        message.save(force_insert=True)
        event_record(
            ticket=ticket,
            kind=TicketEvent.Kind.MESSAGE,
            actor=actor,
            at=at,
            message=message,
            after={"kind": message.kind, "channel": message.channel, "automatic": False},
        )
        # A conditional update instead of a row lock: later history may already
        # have moved updated_at past this instant.
        Ticket.objects.filter(pk=ticket.pk, updated_at__lt=at).update(updated_at=at)
        if status:
            _apply_status(ticket, status, actor, at)
    return message


def rows_insert(model: type[Model], rows: list[Any]) -> None:
    """Insert new rows of one model with one statement.

    On PostgreSQL through COPY, which spares the per-value work of the ORM's
    INSERT compiler (a batch holds thousands of values); elsewhere through
    ``bulk_create``. The rows either all carry their primary key or all leave
    it to the database. Foreign keys are read from their ``_id`` attributes.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(rows)
        return
    with_pk = rows[0].pk is not None
    fields = [field for field in model._meta.concrete_fields if with_pk or not field.primary_key]
    attnames = [field.attname for field in fields]
    json_at = [i for i, field in enumerate(fields) if isinstance(field, JSONField)]
    stamped = [(i, field) for i, field in enumerate(fields) if getattr(field, "auto_now_add", False)]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = [getattr(row, attname) for attname in attnames]
            for i in json_at:
                if values[i] is not None:
                    values[i] = json.dumps(values[i], cls=getattr(fields[i], "encoder", None))
            for i, field in stamped:
                values[i] = field.pre_save(row, add=True)
            copy.write_row(values)


# Ticket columns a batch may change on a ticket stored before it.
_BATCH_TICKET_FIELDS = ("status", "priority", "assignee", "updated_at", "first_reply_at", "solved_at")


class HistoryBatch:
    """Record a batch of history: the rows of many records, written with a few bulk statements.

    Each method stands for one single service and produces exactly its rows and
    TicketEvents: ``customer_add`` (customer_create), ``ticket_add``
    (ticket_create), ``message_add`` (ticket_customer_message_record, and
    ticket_reply_create / ticket_note_create with ``deliver=False``),
    ``status_change``, ``priority_change``, ``assign``, ``rate``. The status
    rules are those of ``statuses.py`` and the events come from
    ``events.event_build``. A method checks everything before it changes
    anything: on ApplicationError the batch is as it was. Nothing reaches the
    database before ``flush()``, which writes customers, identities, tickets,
    messages, events and ratings with one INSERT each and the tickets stored
    earlier with one chunked UPDATE. Like the single services in their import
    use, it never acknowledges, notifies or enqueues anything.

    Use inside one transaction: tickets stored earlier come from
    ``tickets_load`` (locked, in id order). ``allocate(model, count)`` hands out
    primary keys, so rows of one batch point at each other and a new ticket's
    reference is known before its INSERT; ``expected`` bounds how many new
    customers, tickets and messages the batch will hold.
    """

    def __init__(self, *, allocate: Callable[[type[Model], int], list[int]], expected: dict[type[Model], int]) -> None:
        self._allocate = allocate
        self._expected = dict(expected)
        self._pools: dict[type[Model], list[int]] = {}
        self._customers: list[Customer] = []
        self._identities: list[Identity] = []
        self._tickets: list[Ticket] = []
        self._messages: list[Message] = []
        self._events: list[TicketEvent] = []
        self._ratings: list[Rating] = []
        self._members: set[tuple[int, int]] = set()
        self._states: dict[int, Ticket] = {}
        self._new: set[int] = set()
        self._changed: dict[int, Ticket] = {}
        self._changed_fields: set[str] = set()

    # --- tickets the batch works on ------------------------------------------

    def tickets_load(self, pks: Iterable[int]) -> None:
        """Lock and load, in one query, the stored tickets the batch will change."""
        missing = sorted(set(pks) - self._states.keys())
        if missing:
            for ticket in tickets_lock_rows(Ticket.objects.filter(pk__in=missing)):
                self._states[ticket.pk] = ticket

    def ticket(self, pk: int) -> Ticket:
        """The batch's current state of a ticket (loaded and locked on first use)."""
        state = self._states.get(pk)
        if state is None:
            self.tickets_load([pk])
            state = self._states[pk]
        return state

    def _take(self, model: type[Model]) -> int:
        pool = self._pools.get(model)
        if pool is None:
            pool = self._pools[model] = self._allocate(model, self._expected.get(model, 0))
            pool.reverse()
        if not pool:
            raise RuntimeError(f"more new {model.__name__} rows than the batch expected")
        return pool.pop()

    def _touch(self, ticket: Ticket, at: datetime, fields: Iterable[str] = ()) -> None:
        changed = list(fields)
        if at > ticket.updated_at:
            ticket.updated_at = at
            changed.append("updated_at")
        if changed and ticket.pk not in self._new:
            self._changed[ticket.pk] = ticket
            self._changed_fields.update(changed)

    # --- records ---------------------------------------------------------------

    def customer_add(
        self,
        *,
        name: str,
        identities: list[tuple[str, str]],
        organization: Organization | None,
        external_id: str,
        at: datetime | None = None,
    ) -> Customer:
        """customer_create: ``identities`` are normalised (kind, value) pairs not taken by anyone."""
        customer = Customer(
            pk=self._take(Customer),
            name=header_safe(name),
            organization=organization,
            language="",
            created_at=at or timezone.now(),
            external_id=external_id,
        )
        self._customers.append(customer)
        self._identities += [Identity(customer=customer, kind=k, value=v) for k, v in dict.fromkeys(identities)]
        return customer

    def member_add(self, *, user: User, queue_id: int) -> None:
        """Make an agent a member of a queue they work in (managers and admins see all)."""
        if not sees_all_queues(user):
            self._members.add((queue_id, user.pk))

    def ticket_add(
        self,
        *,
        customer: Customer,
        subject: str,
        channel: str,
        actor: Actor,
        initiator: str,
        queue: Queue,
        topic: Topic | None,
        priority: str,
        at: datetime,
        external_id: str,
        same_issue_as_id: int | None,
        is_spam: bool,
        is_deleted: bool,
    ) -> Ticket:
        """ticket_create: a ticket in status ``new`` with its ``created`` event."""
        priority_check(priority)
        pk = self._take(Ticket)
        ticket = Ticket(
            pk=pk,
            reference=reference_for(pk),
            subject=clean_line(subject, max_length=300) or _("(no subject)"),
            channel=channel,
            initiator=initiator,
            status=Status.NEW,
            priority=priority,
            customer=customer,
            topic=topic,
            queue=queue,
            assignee=None,
            language="",
            portal_key=secrets.token_hex(16),
            external_id=external_id,
            same_issue_as_id=same_issue_as_id,
            is_spam=is_spam,
            is_deleted=is_deleted,
            created_at=at,
            updated_at=at,
        )
        self._tickets.append(ticket)
        self._states[pk] = ticket
        self._new.add(pk)
        self._events.append(
            event_build(
                ticket=ticket,
                kind=TicketEvent.Kind.CREATED,
                actor=actor,
                at=at,
                after={
                    "status": Status.NEW,
                    "priority": priority,
                    "channel": channel,
                    "initiator": initiator,
                    "queue": queue.slug,
                    "topic": topic.slug if topic else None,
                    "assignee": None,
                },
            )
        )
        return ticket

    def message_add(
        self,
        *,
        ticket: Ticket,
        kind: str,
        text: str,
        at: datetime,
        actor: Actor,
        external_id: str,
        author_user: User | None = None,
        author_customer: Customer | None = None,
        status: str | None = None,
    ) -> Message:
        """A message as it happened, then the status it set at the same instant.

        ``public_enduser`` as ticket_customer_message_record; the other kinds
        as ticket_reply_create / ticket_note_create without delivery (a
        ``public_agent`` message is the first reply when none came before).
        """
        text = clean_text(text)
        if not text.strip():
            raise ApplicationError(_("The message is empty."), field="text")
        if ticket.merged_into_id:
            raise ApplicationError(_("This ticket was merged into another one; write there."))
        step = self._status_step(ticket, status) if status else None
        after: dict[str, Any] = {"kind": kind, "channel": ticket.channel}
        if kind == MessageKind.PUBLIC_ENDUSER:
            after["automatic"] = False
        message = Message(
            pk=self._take(Message),
            ticket=ticket,
            kind=kind,
            channel=ticket.channel,
            author_customer=author_customer,
            author_user=author_user,
            text=text,
            html="",
            external_id=external_id,
            delivery_status=DeliveryStatus.NONE,
            created_at=at,
        )
        self._messages.append(message)
        self._events.append(
            event_build(ticket=ticket, kind=TicketEvent.Kind.MESSAGE, actor=actor, at=at, message=message, after=after)
        )
        fields = []
        if kind == MessageKind.PUBLIC_AGENT and ticket.first_reply_at is None:
            ticket.first_reply_at = at
            fields.append("first_reply_at")
        self._touch(ticket, at, fields)
        if step:
            self._status_apply(ticket, step, actor, at)
        return message

    def status_change(self, *, ticket: Ticket, status: str, actor: Actor, at: datetime) -> None:
        """ticket_status_change: TRANSITIONS apply, the same status is a no-op."""
        if ticket.merged_into_id:
            raise InvalidStatusTransition(_("This ticket was merged into another one."), field="status")
        step = self._status_step(ticket, status)
        if step:
            self._status_apply(ticket, step, actor, at)

    def priority_change(self, *, ticket: Ticket, priority: str, actor: Actor, at: datetime) -> None:
        """ticket_priority_change."""
        priority_check(priority)
        if ticket.priority != priority:
            before = ticket.priority
            ticket.priority = priority
            self._touch(ticket, at, ["priority"])
            self._events.append(
                event_build(
                    ticket=ticket, kind=TicketEvent.Kind.PRIORITY, actor=actor, at=at, before=before, after=priority
                )
            )

    def assign(
        self, *, ticket: Ticket, assignee: User | None, actor: Actor, at: datetime, add_member: bool = False
    ) -> None:
        """ticket_assign. With ``add_member`` the assignee first joins the ticket's queue
        (history records who worked where); otherwise they must already work there."""
        if assignee is not None:
            if not assignee.is_active or not is_agent(assignee):
                assignee_check(ticket=ticket, assignee=assignee)
            if add_member:
                self.member_add(user=assignee, queue_id=ticket.queue_id)
            elif not sees_all_queues(assignee) and (ticket.queue_id, assignee.pk) not in self._members:
                assignee_check(ticket=ticket, assignee=assignee)
        new_id = assignee.pk if assignee else None
        if ticket.assignee_id != new_id:
            before = ticket.assignee_id
            ticket.assignee = assignee
            self._touch(ticket, at, ["assignee"])
            self._events.append(
                event_build(
                    ticket=ticket, kind=TicketEvent.Kind.ASSIGNEE, actor=actor, at=at, before=before, after=new_id
                )
            )

    def rate(
        self,
        *,
        ticket: Ticket,
        score: int,
        comment: str,
        actor: Actor,
        at: datetime,
        external_key: str | None,
    ) -> Rating:
        """ticket_rate."""
        if not isinstance(score, int) or not 1 <= score <= 5:
            raise ApplicationError(_("A rating is a whole number from 1 to 5."), field="score")
        rating = Rating(ticket=ticket, score=score, comment=comment, at=at, external_key=external_key)
        self._ratings.append(rating)
        self._touch(ticket, at)
        self._events.append(
            event_build(ticket=ticket, kind=TicketEvent.Kind.RATING, actor=actor, at=at, after={"score": score})
        )
        return rating

    def _status_step(self, ticket: Ticket, status: str) -> tuple[str, str] | None:
        """Check a status change as the single service does; None when the ticket already has it."""
        if not status_transition_check(current=ticket.status, target=status):
            return None
        return ticket.status, status

    def _status_apply(self, ticket: Ticket, step: tuple[str, str], actor: Actor, at: datetime) -> None:
        before, status = step
        self._touch(ticket, at, status_fields_set(ticket, status, at))
        self._events.append(
            event_build(ticket=ticket, kind=TicketEvent.Kind.STATUS, actor=actor, at=at, before=before, after=status)
        )

    # --- writing -----------------------------------------------------------------

    def flush(self) -> None:
        """Write everything recorded; a batch is flushed once, then holds nothing."""
        for model, rows in (
            (Customer, self._customers),
            (Identity, self._identities),
            (Ticket, self._tickets),
            (Message, self._messages),
            (TicketEvent, self._events),
            (Rating, self._ratings),
        ):
            rows_insert(model, rows)
        if self._changed:
            Ticket.objects.bulk_update(
                sorted(self._changed.values(), key=lambda t: t.pk),
                [f for f in _BATCH_TICKET_FIELDS if f in self._changed_fields],
                batch_size=250,
            )
        if self._members:
            through = Queue.members.through
            through.objects.bulk_create(
                [through(queue_id=q, user_id=u) for q, u in sorted(self._members)],
                ignore_conflicts=True,
            )
        for rows in (self._customers, self._identities, self._tickets, self._messages, self._events, self._ratings):
            rows.clear()
        for held in (
            self._pools,
            self._expected,
            self._members,
            self._states,
            self._new,
            self._changed,
            self._changed_fields,
        ):
            held.clear()
