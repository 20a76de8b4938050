"""The value every channel hands to the intake service, and what it gets back.

A channel verifies and normalises its payload at the edge, builds an
``InboundMessage`` and calls ``services.intake.inbound_message_receive``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servicedesk.accounts.models import User
    from servicedesk.tickets.models import Customer, Message, Ticket


@dataclass(frozen=True)
class SenderIdentity:
    kind: str  # IdentityKind value: email, phone, chat, forum
    value: str
    name: str = ""


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    # The channel's own id for this contact; (channel, external_id) is the
    # idempotency key: the same pair delivered twice yields one message.
    external_id: str
    sender: SenderIdentity
    subject: str = ""
    text: str = ""
    # The text as shown by default (quoted history and signature trimmed);
    # empty when it is the whole text. The full text is always kept.
    display_text: str = ""
    html: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    # What happens to a file the limits do not allow: False refuses the whole
    # message (AttachmentRejected: the web form and the API, whose sender is
    # there to fix it); True keeps the message and drops the file with a note
    # on it (mail: a sender we cannot ask to resubmit).
    drop_rejected_attachments: bool = False
    # Thread hints, tried in this order: a ticket reference the channel vouches
    # for (it authenticated the sender for that ticket), thread keys (Message-IDs
    # of earlier messages on the ticket), a reply token, and last a reference
    # found in the message (a subject tag), accepted only from the ticket's
    # customer.
    ticket_reference: str | None = None
    reference_trusted: bool = False
    thread_keys: tuple[str, ...] = ()
    # The token of a per-ticket reply address (servicedesk/tickets/threading.py).
    reply_token: str | None = None
    topic: str | None = None
    queue: str | None = None
    # Priority for a ticket this message opens (an agent recording a call, say).
    priority: str | None = None
    language: str = ""
    received_at: datetime | None = None
    rfc_message_id: str | None = None
    recipients: tuple[str, ...] = ()
    # Automatic mail (auto-replies, bulk): stored, never acknowledged.
    is_automatic: bool = False
    # The contact shows that mail reaches the sender's address (mail arrived
    # from it): a bouncing mark on that identity is cleared.
    proves_delivery: bool = False
    acknowledge: bool = True
    # False: a ticket this message opens is not offered to automatic
    # assignment; the channel assigns it itself (a live chat, on accept).
    route: bool = True
    # False: the ticket's assignee is not told of this message (a line of a live
    # chat they are in: the chat shows it to them).
    notify_assignee: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    # The agent who records this message for the customer (the API): the
    # changes are theirs on the timeline, and such a ticket alone does not
    # show them the customer's record (access.customer_shown_to).
    recorded_by: User | None = None
    # The ticket the message joins, found and row-locked by the caller in the
    # transaction it calls the intake in, its customer read along: a live chat's
    # line, whose conversation lock takes its ticket's too. When the ticket is
    # as it was (not merged, not deleted, its customer not merged, open to a
    # customer's message) the message is its customer's, stored without a look-up
    # and without a savepoint of its own: an IntegrityError (the same external
    # id stored meanwhile) then ends the caller's transaction, for the caller to
    # handle. Otherwise the message takes the usual way (the sender, the hints).
    ticket_locked: Ticket | None = None


class IntakeOutcome(enum.StrEnum):
    CREATED = "created"  # a new ticket was opened
    APPENDED = "appended"  # the message joined an existing ticket
    DUPLICATE = "duplicate"  # this (channel, external id) was stored before


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    ticket: Ticket
    message: Message
    customer: Customer

    @property
    def duplicate(self) -> bool:
        return self.outcome is IntakeOutcome.DUPLICATE

    @property
    def created_ticket(self) -> bool:
        return self.outcome is IntakeOutcome.CREATED
