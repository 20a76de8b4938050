"""Delivering outbound messages through the channel registry, at most once each.

A message is claimed by moving it from ``queued`` to ``sending`` in one UPDATE;
only the caller that wins the claim sends. A task that runs twice therefore
sends once. Temporary failures go back to ``queued`` for a retry; permanent
ones end as ``failed`` with the server's reason.
"""

from __future__ import annotations

import enum

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from servicedesk.tickets import outbound
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.models import DeliveryStatus, Message, TicketEvent


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"  # already claimed, sent or not deliverable


def message_deliver(*, message_id: int) -> DeliveryOutcome:
    """Send one queued message through its ticket channel's deliverer."""
    claimed = Message.objects.filter(pk=message_id, delivery_status=DeliveryStatus.QUEUED).update(
        delivery_status=DeliveryStatus.SENDING, delivery_attempts=F("delivery_attempts") + 1
    )
    if not claimed:
        return DeliveryOutcome.SKIPPED
    message = Message.objects.select_related("ticket", "ticket__customer", "ticket__queue").get(pk=message_id)
    deliverer = outbound.deliverer_for(message.ticket.channel)
    if deliverer is None:
        _finish(message, DeliveryStatus.FAILED, f"No delivery for channel {message.ticket.channel!r}.")
        return DeliveryOutcome.FAILED
    try:
        receipt = deliverer(message)
    except outbound.DeliveryError as exc:
        if exc.temporary and message.delivery_attempts < settings.SERVICEDESK["OUTBOUND_MAX_ATTEMPTS"]:
            Message.objects.filter(pk=message.pk).update(
                delivery_status=DeliveryStatus.QUEUED, delivery_error=exc.reason[:2000]
            )
            return DeliveryOutcome.RETRY
        _finish(message, DeliveryStatus.FAILED, exc.reason)
        return DeliveryOutcome.FAILED
    message.rfc_message_id = receipt.rfc_message_id or message.rfc_message_id
    if receipt.recipients:
        message.recipients = list(receipt.recipients)
    _finish(message, DeliveryStatus.SENT, "")
    return DeliveryOutcome.SENT


def _finish(message: Message, status: str, error: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(
            delivery_status=status,
            delivery_error=error[:2000],
            sent_at=now if status == DeliveryStatus.SENT else None,
            rfc_message_id=message.rfc_message_id,
            recipients=message.recipients,
        )
        event_record(
            ticket=message.ticket,
            kind=TicketEvent.Kind.DELIVERY,
            actor=Actor.system(),
            at=now,
            message=message,
            before=DeliveryStatus.SENDING,
            after={"status": status, "error": error[:500]} if error else {"status": status},
        )
