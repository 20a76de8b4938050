"""What an event's ``data`` says: a documented subset of the REST API's shapes (docs/webhooks.md).

Built inside the transaction that raised the event, so it is the state the
change left. Nothing here is more than a manager's API token reads: the
ticket as ``TicketSerializer`` names its fields (without SLA targets),
public messages only (no internal notes, no system messages), attachments
without download links.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from servicedesk.accounts.models import User
from servicedesk.tickets.models import Message, MessageKind, Rating, Ticket

# Messages an event may carry: a customer's and an agent's public ones.
PUBLIC_MESSAGE_KINDS = frozenset({MessageKind.PUBLIC_ENDUSER, MessageKind.PUBLIC_AGENT})


def instant(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def person(user: User | None) -> dict[str, Any] | None:
    return {"id": user.pk, "name": str(user)} if user is not None else None


def ticket_data(ticket_id: int) -> dict[str, Any] | None:
    """The ticket as it is now in this transaction (None when it is gone)."""
    ticket = (
        Ticket.objects.select_related("queue", "topic", "assignee", "customer")
        .prefetch_related("tags")
        .filter(pk=ticket_id)
        .first()
    )
    if ticket is None or ticket.reference is None:
        return None
    return {
        "reference": ticket.reference,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "initiator": ticket.initiator,
        "queue": ticket.queue.slug,
        "topic": ticket.topic.slug if ticket.topic is not None else None,
        "assignee": person(ticket.assignee),
        "customer": {"id": ticket.customer_id, "name": ticket.customer.name},
        "tags": sorted(tag.name for tag in ticket.tags.all()),
        "created_at": instant(ticket.created_at),
        "updated_at": instant(ticket.updated_at),
        "first_reply_at": instant(ticket.first_reply_at),
        "solved_at": instant(ticket.solved_at),
        "is_spam": ticket.is_spam,
        "is_deleted": ticket.is_deleted,
        "version": ticket.version,
        "url": settings.SITE_URL + reverse("tickets_api:ticket-detail", kwargs={"reference": ticket.reference}),
    }


def message_data(message: Message) -> dict[str, Any]:
    """A public message as the API's ``MessageSerializer`` shows it, without download links."""
    if message.author_user_id:
        author: dict[str, Any] = {"type": "agent", "id": message.author_user_id, "name": str(message.author_user)}
    elif message.author_customer_id:
        author = {"type": "customer", "id": message.author_customer_id, "name": str(message.author_customer)}
    else:
        author = {"type": "system", "id": None, "name": message.author_name}
    return {
        "id": message.pk,
        "kind": message.kind,
        "channel": message.channel,
        "author": author,
        "text": message.text,
        "created_at": instant(message.created_at),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size} for a in message.attachments.all()
        ],
    }


def rating_data(rating: Rating) -> dict[str, Any]:
    return {"score": rating.score, "comment": rating.comment, "at": instant(rating.at)}
