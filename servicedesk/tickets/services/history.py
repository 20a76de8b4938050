"""Recording what already happened, for imports of another desk's history.

Intake (``services/intake.py``) stores a customer's message *and* reacts to it:
it acknowledges, notifies and enqueues work. A historical message needs the
same rows without any of those reactions, so it has its own function here.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.core.text import clean_text
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import Customer, Message, MessageKind, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import _apply_status


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
            ticket=ticket, kind=TicketEvent.Kind.MESSAGE, actor=actor, at=at, message=message,
            after={"kind": message.kind, "channel": message.channel, "automatic": False},
        )
        # A conditional update instead of a row lock: later history may already
        # have moved updated_at past this instant.
        Ticket.objects.filter(pk=ticket.pk, updated_at__lt=at).update(updated_at=at)
        if status:
            _apply_status(ticket, status, actor, at)
    return message
