"""'Email me the transcript': the chat's lines, mailed to the visitor as a message of the ticket."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError, Conflict
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import DeliveryStatus, Message, MessageKind
from servicedesk.tickets.services.delivery import message_delivery_enqueue

from . import services
from .models import ChatConversation

# A conversation's transcript is sent at most this many times (the address is the visitor's word).
TRANSCRIPTS_MAX = 3


def transcript_text(conversation: ChatConversation) -> str:
    lines = services.lines_after(conversation, 0, limit=10_000)
    with translation.override(conversation.language or settings.LANGUAGE_CODE):
        out = [
            gettext("Transcript of your chat (ticket %(reference)s)") % {"reference": conversation.ticket.reference},
            "",
        ]
        for line in lines:
            frame = services.line_frame(line, conversation, for_visitor=True)
            when = timezone.localtime(line.at).strftime("%Y-%m-%d %H:%M")
            if line.author == "system":
                out.append(f"[{when}] {frame['text']}")
            else:
                who = frame["name"] or (gettext("You") if line.author == "visitor" else gettext("Agent"))
                out.append(f"[{when}] {who}: {frame['text']}")
    return "\n".join(out) + "\n"


def transcript_send(*, conversation: ChatConversation, email: str = "") -> str:
    """Queue the transcript to the address the visitor gave (``email`` only when they gave none);
    returns the address. At most TRANSCRIPTS_MAX per chat."""
    email = email.strip()
    with transaction.atomic():
        locked = row_lock(ChatConversation, conversation.pk)
        address = locked.claimed_email or email
        if not address:
            raise ApplicationError(_("Enter your email address."), field="email")
        sent = Message.objects.filter(
            ticket_id=locked.ticket_id, kind=MessageKind.SYSTEM, external_id__startswith=f"chat:{locked.pk}:transcript:"
        ).count()
        if sent >= TRANSCRIPTS_MAX:
            raise Conflict(_("The transcript was sent already."))
        if not locked.claimed_email:
            locked.claimed_email = address[:254]
            locked.save(update_fields=["claimed_email"])
        message = Message.objects.create(
            ticket=locked.ticket,
            kind=MessageKind.SYSTEM,
            channel="chat",
            text=transcript_text(locked),
            external_id=f"chat:{locked.pk}:transcript:{sent + 1}",
            delivery_status=DeliveryStatus.QUEUED,
            created_at=timezone.now(),
        )
        message_id = message.pk
        transaction.on_commit(lambda: message_delivery_enqueue(message_id=message_id))
    return address
