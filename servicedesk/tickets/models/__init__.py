"""The service desk's domain models. See docs/architecture.md for the glossary."""

from servicedesk.tickets.models.customers import (
    Customer,
    CustomerEvent,
    CustomerMerge,
    Identity,
    IdentityKind,
    MergeSuggestion,
    Organization,
)
from servicedesk.tickets.models.drafts import DraftKind, HeldReply, ReplyDraft
from servicedesk.tickets.models.followups import MessageMention, TicketFollower
from servicedesk.tickets.models.idempotency import IdempotencyKey
from servicedesk.tickets.models.imports import ImportedRecord
from servicedesk.tickets.models.messages import Attachment, DeliveryStatus, DroppedAttachment, Message, MessageKind
from servicedesk.tickets.models.search import SearchDocument
from servicedesk.tickets.models.sessions import AgentPresence, OperatingCost, PresenceState, Session, SessionChannel
from servicedesk.tickets.models.sla import TargetKind, TargetState, TicketTarget
from servicedesk.tickets.models.surveys import Survey
from servicedesk.tickets.models.tickets import (
    Channel,
    Initiator,
    Queue,
    Rating,
    Tag,
    Ticket,
    TicketEvent,
    Topic,
)

__all__ = [
    "AgentPresence",
    "Attachment",
    "Channel",
    "Customer",
    "CustomerEvent",
    "CustomerMerge",
    "DeliveryStatus",
    "DraftKind",
    "DroppedAttachment",
    "HeldReply",
    "IdempotencyKey",
    "Identity",
    "IdentityKind",
    "ImportedRecord",
    "Initiator",
    "MergeSuggestion",
    "Message",
    "MessageKind",
    "MessageMention",
    "OperatingCost",
    "Organization",
    "PresenceState",
    "Queue",
    "Rating",
    "ReplyDraft",
    "SearchDocument",
    "Session",
    "SessionChannel",
    "Survey",
    "Tag",
    "TargetKind",
    "TargetState",
    "Ticket",
    "TicketEvent",
    "TicketFollower",
    "TicketTarget",
    "Topic",
]
