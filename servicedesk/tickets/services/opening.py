"""An agent opens a ticket for a customer (the API's ``POST /api/v1/tickets/``).

Two ways, one function: the customer's own message that the agent records
(``inbound``, through the intake like any channel) or the agent's first reply
(``outbound``). A caller's ``Idempotency-Key`` is stored with the digest of
its request and the message that opened the ticket (``idempotency.py``): the
same request again answers with that ticket, another request with the key is
refused, and nothing is inferred from timestamps. What the agent then sees of the
customer is decided by ``access.customer_shown_to``: opening a ticket for an
address that belongs to a customer outside the agent's queues never shows them
that customer's name, other addresses or history (docs/architecture.md,
"Access rules").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.tickets.access import customers_visible_to, tickets_visible_to
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, IntakeResult, SenderIdentity
from servicedesk.tickets.models import Customer, Message, Queue, Ticket, Topic
from servicedesk.tickets.services.customers import customer_find_by_identity, customer_resolve, identity_normalize
from servicedesk.tickets.services.idempotency import IdempotencyKeyReused, idempotent_request
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_open_outbound
from servicedesk.tickets.statuses import Priority

IDEMPOTENCY_FIELD = "Idempotency-Key"
API_CHANNEL = "api"


@dataclass(frozen=True)
class TicketOpening:
    """The opened ticket; ``created`` is False when an earlier request with the same key opened it."""

    ticket: Ticket
    message: Message  # the message that opened it: the customer's, or the agent's first reply
    created: bool
    address: str  # the customer's email address as stored (normalised)


def _key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        _("This Idempotency-Key was already used for a different request."), field=IDEMPOTENCY_FIELD
    )


def external_id_for(user: User, key: str | None) -> str | None:
    """The key as the opening message's external id on channel ``api``, scoped to the caller,
    so one caller's key never answers with another caller's ticket."""
    return f"{user.pk}:{key}" if key is not None else None


def _opening_message(message: Message) -> bool:
    """Whether ``message`` opened its ticket through the API: the ticket was opened on channel ``api``
    and no message of it came before this one (a message that joined a ticket opened elsewhere did not)."""
    return (
        message.ticket.channel == API_CHANNEL
        and not Message.objects.filter(ticket_id=message.ticket_id, pk__lt=message.pk).exists()
    )


def _opened_by_intake(result: IntakeResult) -> Ticket:
    # A message stored under the key before keys were kept with their request
    # (see ``_keyed``) must have opened its ticket, not joined one.
    if result.duplicate and not _opening_message(result.message):
        raise _key_reused()
    return result.ticket


def _opened_with(agent: User, external_id: str) -> Message | None:
    """The opening message, on a ticket the agent may see, that carries this caller-scoped key."""
    message = (
        Message.objects.filter(ticket__in=tickets_visible_to(agent), channel=API_CHANNEL, external_id=external_id)
        .select_related("ticket")
        .first()
    )
    return message if message is not None and _opening_message(message) else None


def _keyed(
    *, user: User, key: str | None, digest: str, address: str, open_ticket: Callable[[], TicketOpening]
) -> TicketOpening:
    """Run ``open_ticket`` under the caller's key: stored with ``digest`` and the opening message in
    the same transaction; a repeat with the same digest answers with that message's ticket."""
    with idempotent_request(user=user, key=key, digest=digest) as idem:
        if idem.replay is not None:
            return TicketOpening(ticket=idem.replay.ticket, message=idem.replay, created=False, address=address)
        opening = open_ticket()
        idem.message = opening.message
        return opening


def ticket_open_for_agent(
    *,
    agent: User,
    customer_email: str,
    subject: str,
    text: str,
    initiator: str = "inbound",
    customer: Customer | None = None,
    customer_name: str = "",
    queue: Queue | None = None,
    topic: Topic | None = None,
    priority: str = Priority.NORMAL,
    acknowledge: bool = False,
    idempotency_key: str | None = None,
    request_digest: str = "",
    at: datetime | None = None,
) -> TicketOpening:
    """Open a ticket for the customer behind ``customer_email`` (or ``customer``) as ``agent``.

    Guarantee: ``inbound`` stores the text as the customer's message through
    ``inbound_message_receive`` (channel ``api``; acknowledged when
    ``acknowledge``, unless the address belongs to a customer the agent may
    not see, whose name the acknowledgement would show them); ``outbound`` opens the ticket with the agent's first
    public reply, sent after commit. The address is the customer's: an unknown
    one creates the customer, a known one opens the ticket for the customer
    who holds it (one customer per identity), and the agent is recorded as the
    one who opened it, which alone never lets them see that customer's record
    (``access.customer_shown_to``). Everything is written in one transaction
    or not at all.

    Idempotency key: (``agent``, ``idempotency_key``), stored with
    ``request_digest`` (``idempotency.request_digest`` of the request) and
    the opening message, whose external id on channel ``api`` is the key
    scoped to the agent. The same key and digest again return the first
    ticket with ``created`` False; two requests with one key at once open
    one ticket (the second waits for the first).

    Errors: ``IdempotencyKeyReused`` (422) when the key was first used with
    another request, or (a key used before keys were stored) names a message
    that did not open a ticket visible to ``agent``; the intake's and
    ``ticket_open_outbound``'s refusals (``EmptyMessage``, ``InvalidIdentity``
    and so on, 400) with nothing written and the key left unused.
    """
    at = at or timezone.now()
    address = identity_normalize(kind="email", value=customer_email)
    external_id = external_id_for(agent, idempotency_key)

    def open_ticket() -> TicketOpening:
        if initiator == "inbound":
            return _agent_inbound(
                agent=agent,
                address=address,
                customer_email=customer_email,
                customer_name=customer_name,
                subject=subject,
                text=text,
                queue=queue,
                topic=topic,
                priority=priority,
                acknowledge=acknowledge,
                external_id=external_id,
            )
        try:
            with transaction.atomic():
                holder = customer
                if holder is None:
                    holder, _created = customer_resolve(kind="email", value=customer_email, name=customer_name, at=at)
                reply = ticket_open_outbound(
                    customer=holder,
                    subject=subject,
                    text=text,
                    author=agent,
                    channel=API_CHANNEL,
                    queue=queue,
                    topic=topic,
                    priority=priority,
                    actor=Actor.agent(agent, source=API_CHANNEL),
                    external_id=external_id,
                    at=at,
                )
        except IntegrityError:
            # The key's message exists already: stored before keys were kept with their request.
            if external_id is None:
                raise
            earlier = _opened_with(agent, external_id)
            if earlier is None:
                raise _key_reused() from None
            return TicketOpening(ticket=earlier.ticket, message=earlier, created=False, address=address)
        return TicketOpening(ticket=reply.ticket, message=reply, created=True, address=address)

    return _keyed(user=agent, key=idempotency_key, digest=request_digest, address=address, open_ticket=open_ticket)


def _agent_inbound(
    *,
    agent: User,
    address: str,
    customer_email: str,
    customer_name: str,
    subject: str,
    text: str,
    queue: Queue | None,
    topic: Topic | None,
    priority: str,
    acknowledge: bool,
    external_id: str | None,
) -> TicketOpening:
    holder = customer_find_by_identity(kind="email", value=address)
    if holder is not None and not customers_visible_to(agent).filter(pk=holder.pk).exists():
        # The acknowledgement greets the customer by name on a thread the agent reads.
        acknowledge = False
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel=API_CHANNEL,
            external_id=external_id or uuid.uuid4().hex,
            sender=SenderIdentity(kind="email", value=customer_email, name=customer_name),
            subject=subject,
            text=text,
            queue=queue.slug if queue else None,
            topic=topic.slug if topic else None,
            priority=priority,
            acknowledge=acknowledge,
            recorded_by=agent,
        )
    )
    return TicketOpening(
        ticket=_opened_by_intake(result), message=result.message, created=not result.duplicate, address=address
    )


def ticket_open_for_customer(
    *,
    user: User,
    sender: SenderIdentity,
    subject: str,
    text: str,
    topic: Topic | None = None,
    idempotency_key: str | None = None,
    request_digest: str = "",
) -> TicketOpening:
    """A signed-in customer (``user``) opens a ticket for themselves, writing from ``sender``
    (one of their own addresses, which the caller checked).

    Guarantee: the text is their message through ``inbound_message_receive``
    (channel ``api``, acknowledged), in one transaction.

    Idempotency key: (``user``, ``idempotency_key``) with ``request_digest``,
    as ``ticket_open_for_agent``; a repeat returns the first ticket with
    ``created`` False.

    Errors: ``IdempotencyKeyReused`` (422) when the key was first used with
    another request, or names a message that joined an existing ticket; the
    intake's refusals (400) with nothing written.
    """
    external_id = external_id_for(user, idempotency_key)

    def open_ticket() -> TicketOpening:
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel=API_CHANNEL,
                external_id=external_id or uuid.uuid4().hex,
                sender=sender,
                subject=subject,
                text=text,
                topic=topic.slug if topic else None,
                acknowledge=True,
            )
        )
        return TicketOpening(
            ticket=_opened_by_intake(result),
            message=result.message,
            created=not result.duplicate,
            address=sender.value,
        )

    return _keyed(user=user, key=idempotency_key, digest=request_digest, address=sender.value, open_ticket=open_ticket)
