"""Replies to a chat ticket written outside a live chat (from the ticket page) go by email.

The address is the customer's own, or else the one the visitor gave in the
widget: it is no identity of theirs until an agent confirms it, but it is
where they asked to be answered (the offline form requires it).
"""

from __future__ import annotations

from channels_app.email.outbound import customer_address, deliver_by_email
from servicedesk.tickets.models import Message
from servicedesk.tickets.outbound import DeliveryReceipt

from .models import ChatConversation


def deliver_chat_reply(message: Message) -> DeliveryReceipt:
    address = customer_address(message)
    if address is None:
        given = (
            ChatConversation.objects.filter(ticket_id=message.ticket_id)
            .exclude(claimed_email="")
            .order_by("-requested_at")
            .values_list("claimed_email", flat=True)
            .first()
        )
        address = given or None
    return deliver_by_email(message, address=address)
