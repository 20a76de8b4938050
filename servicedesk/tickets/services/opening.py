"""An agent opens a ticket for a customer (the API's ``POST /api/v1/tickets/``).

Two ways, one function: the customer's own message that the agent records
(``inbound``, through the intake like any channel) or the agent's first reply
(``outbound``). A repeated request with the same caller-scoped idempotency key
answers with the ticket the first one opened. What the agent then sees of the
customer is decided by ``access.customer_shown_to``: opening a ticket for an
address that belongs to a customer outside the agent's queues never shows them
that customer's name, other addresses or history (docs/architecture.md,
"Access rules").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.tickets.access import customers_visible_to, tickets_visible_to
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, IntakeResult, SenderIdentity
from servicedesk.tickets.models import Customer, Message, Queue, Ticket, Topic
from servicedesk.tickets.services.customers import customer_find_by_identity, customer_resolve, identity_normalize
from servicedesk.tickets.services.idempotency import IdempotencyKeyReused
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


def _opened_by_intake(result: IntakeResult) -> Ticket:
    # A repeated key must have opened a ticket, not joined one: intake stamps a
    # new ticket and its first message with the same instant.
    if result.duplicate and result.ticket.created_at != result.message.created_at:
        raise _key_reused()
    return result.ticket


def _opened_with(agent: User, external_id: str) -> Message | None:
    """The opening message, on a ticket the agent may see, that carries this caller-scoped key."""
    return (
        Message.objects.filter(
            ticket__in=tickets_visible_to(agent),
            channel=API_CHANNEL,
            external_id=external_id,
            created_at=F("ticket__created_at"),
        )
        .select_related("ticket")
        .first()
    )


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
    external_id: str | None = None,
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

    Idempotency key: ``external_id``, the caller's Idempotency-Key already
    scoped to the caller (``<user id>:<key>``), stored as the external id of
    the opening message on channel ``api``. A repeat returns the first
    ticket with ``created`` False.

    Errors: ``IdempotencyKeyReused`` (422) when the key belongs to a message
    that did not open a ticket visible to ``agent``; the intake's and
    ``ticket_open_outbound``'s refusals (``EmptyMessage``, ``InvalidIdentity``
    and so on, 400) with nothing written.
    """
    at = at or timezone.now()
    actor = Actor.agent(agent, source=API_CHANNEL)
    address = identity_normalize(kind="email", value=customer_email)
    if initiator == "inbound":
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

    if external_id is not None:
        earlier = _opened_with(agent, external_id)
        if earlier is not None:
            return TicketOpening(ticket=earlier.ticket, message=earlier, created=False, address=address)
    # The ticket and its first reply share one instant: that is how a repeated
    # key recognises the message that opened the ticket.
    try:
        with transaction.atomic():
            if customer is None:
                customer, _created = customer_resolve(kind="email", value=customer_email, name=customer_name, at=at)
            reply = ticket_open_outbound(
                customer=customer,
                subject=subject,
                text=text,
                author=agent,
                channel=API_CHANNEL,
                queue=queue,
                topic=topic,
                priority=priority,
                actor=actor,
                external_id=external_id,
                at=at,
            )
    except IntegrityError:
        if external_id is None:
            raise
        earlier = _opened_with(agent, external_id)
        if earlier is None:
            raise _key_reused() from None
        return TicketOpening(ticket=earlier.ticket, message=earlier, created=False, address=address)
    return TicketOpening(ticket=reply.ticket, message=reply, created=True, address=address)


def ticket_open_for_customer(
    *,
    sender: SenderIdentity,
    subject: str,
    text: str,
    topic: Topic | None = None,
    external_id: str | None = None,
) -> TicketOpening:
    """A signed-in customer opens a ticket for themselves, writing from ``sender``
    (one of their own addresses, which the caller checked).

    Guarantee: the text is their message through ``inbound_message_receive``
    (channel ``api``, acknowledged), in one transaction.

    Idempotency key: ``external_id``, the caller's Idempotency-Key scoped to
    the caller; a repeat returns the first ticket with ``created`` False.

    Errors: ``IdempotencyKeyReused`` (422) when the key belongs to a message
    that joined an existing ticket; the intake's refusals (400) with nothing
    written.
    """
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
        ticket=_opened_by_intake(result), message=result.message, created=not result.duplicate, address=sender.value
    )
