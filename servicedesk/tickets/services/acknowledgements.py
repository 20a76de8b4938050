"""The automatic acknowledgement a customer gets when a ticket is opened."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.models import DeliveryStatus, Message, MessageKind, Ticket, TicketEvent
from servicedesk.tickets.statuses import Status


def ticket_first_reply_due(ticket: Ticket) -> datetime:
    """When the customer may expect the first answer: the configured default
    number of hours after creation (SLA policies replace this when they apply)."""
    return ticket.created_at + timedelta(hours=settings.SERVICEDESK["DEFAULT_FIRST_REPLY_HOURS"])


def ticket_portal_url(ticket: Ticket) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("web:ticket", kwargs={"token": portal_token_for(ticket)})


def ticket_acknowledgement_create(*, ticket: Ticket) -> Message | None:
    """Create the acknowledgement message for a ticket, queued for delivery.

    At most one per ticket (a unique constraint decides, so concurrent or
    repeated calls agree). Returns the queued message, or None when one exists
    already or the ticket should not be acknowledged (spam, deleted, merged,
    outbound). Intake calls it inside its transaction; delivery happens after
    commit through ``services.delivery``.
    """
    if ticket.is_spam or ticket.is_deleted or ticket.merged_into_id or ticket.initiator != "inbound":
        return None
    language = ticket.language or ticket.customer.language or settings.LANGUAGE_CODE
    with translation.override(language):
        due = ticket_first_reply_due(ticket)
        context = {
            "ticket": ticket,
            "customer_name": ticket.customer.name,
            "due": timezone.localtime(due, timezone.get_default_timezone()),
            "hours": settings.SERVICEDESK["DEFAULT_FIRST_REPLY_HOURS"],
            "link": ticket_portal_url(ticket),
            "closed": ticket.status == Status.CLOSED,
        }
        text = render_to_string("tickets/acknowledgement.txt", context).strip() + "\n"
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message(
                ticket=ticket,
                kind=MessageKind.SYSTEM,
                purpose=Message.Purpose.ACKNOWLEDGEMENT,
                channel=ticket.channel,
                text=text,
                delivery_status=DeliveryStatus.QUEUED,
                created_at=now,
            )
            message.save(force_insert=True)
            event_record(
                ticket=ticket, kind=TicketEvent.Kind.ACKNOWLEDGED, actor=Actor.system(), at=now, message=message,
                after={"due": due.isoformat()},
            )
    except IntegrityError:
        return None
    return message

