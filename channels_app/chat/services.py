"""Live chat: starting a chat, its lines, accept, transfer, end and wrap-up (docs/chat-protocol.md).

Every line is stored when it arrives: a visitor's message enters through the
intake (``inbound_message_receive``) as a ``Message`` of the chat's ticket, an
agent's as a reply that is not mailed, and both get the conversation's next
sequence number in the same transaction. The conversation's row lock orders
its lines and decides races (two agents accepting at once: one wins). Pushes
to browsers (``realtime_publish``, after commit) only say that something
changed; consumers read what from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from servicedesk.core.prepared import PreparedQuery, row_insert, row_update
from servicedesk.core.realtime import realtime_publish
from servicedesk.core.text import clean_text
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.locks import PreparedRowLock, row_lock, rows_lock
from servicedesk.tickets.models import (
    IdentityKind,
    Queue,
    Rating,
    Session,
    SessionChannel,
    Ticket,
    Topic,
)
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.surveys import survey_rating_link, survey_record_asked_in_chat
from servicedesk.tickets.services.tickets import ticket_assign, ticket_queue_change, ticket_status_change
from servicedesk.tickets.statuses import Status
from servicedesk.webhooks.emit import chat_event_emit, rating_received_emit
from servicedesk.webhooks.models import EventType

from .models import OPEN_STATUSES, ChatConversation, ChatLine, ChatStatus, ChatWidget, LineAuthor

log = logging.getLogger(__name__)

TEXT_MAX = 4000
# A visitor's messages (and files) in one chat per minute, whatever socket or process they come through.
VISITOR_MESSAGES_PER_MINUTE = 60
NAME_MAX = 200
TOKEN_DAYS = 30
CHANNEL = "chat"


class ChatConflict(Conflict):
    """A refusal that names its reason in the answer (``code``), as docs/chat-protocol.md lists them."""

    code = "conflict"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.extra.setdefault("code", self.code)


class ChatClosed(ChatConflict):
    code = "closed"


class ChatTaken(ChatConflict):
    code = "taken"


class AtCapacity(ChatConflict):
    code = "at_capacity"


class VisitorFlood(ChatConflict):
    """More messages from one visitor than VISITOR_MESSAGES_PER_MINUTE, over all their sockets and calls."""

    status_code = 429
    code = "rate_limited"


# ---------------------------------------------------------------- tokens


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def conversation_for_token(token: str, *, at: datetime | None = None) -> ChatConversation:
    """The conversation a visitor token opens; NotFound for an unknown or expired one."""
    if not token or len(token) > 200:
        raise NotFound(_("Unknown or expired chat."))
    conversation = (
        ChatConversation.objects.select_related("widget", "agent")
        .filter(token_hash=token_hash(token), token_expires_at__gt=at or timezone.now())
        .first()
    )
    if conversation is None:
        raise NotFound(_("Unknown or expired chat."))
    return conversation


def identity_signature_valid(widget: ChatWidget, identity: str, signature: str) -> bool:
    """Whether ``signature`` is HMAC-SHA256(identity) under the widget's secret, in hex."""
    expected = hmac.new(widget.secret.encode(), identity.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


# ---------------------------------------------------------------- groups and pushes


def visitor_group(conversation_id: int) -> str:
    return f"chat.visitor.{conversation_id}"


def _push_visitor(conversation: ChatConversation, *, line_only: bool = False) -> None:
    """The visitor's sockets read the conversation again. ``line_only``: only a new line
    (up to the conversation's last sequence number), the state unchanged: a socket that
    sent it already reads nothing."""
    data = {"seq": conversation.last_seq} if line_only else {}
    realtime_publish(group=visitor_group(conversation.pk), kind="chat.changed", data=data)


def _push_agents(conversation: ChatConversation, *user_ids: int | None, event: str = "changed") -> None:
    from servicedesk.live.pushes import user_group

    for user_id in {u for u in user_ids if u}:
        realtime_publish(group=user_group(user_id), kind="chat." + event, data={"conversation": conversation.pk})


def _push_queue(queue_id: int, conversation_id: int) -> None:
    """The waiting list of ``queue_id`` changed: every agent of the queue reads it again."""
    from servicedesk.live.pushes import user_group

    member_ids = set(Queue.members.through.objects.filter(queue_id=queue_id).values_list("user_id", flat=True))
    for user_id in member_ids:
        realtime_publish(group=user_group(user_id), kind="chat.queue", data={"conversation": conversation_id})
    # Waiting visitors' places in the queue moved.
    waiting = ChatConversation.objects.filter(queue_id=queue_id, status=ChatStatus.WAITING).values_list("pk", flat=True)
    for waiting_id in waiting[:500]:
        if waiting_id != conversation_id:
            realtime_publish(group=visitor_group(waiting_id), kind="chat.changed", data={})


def typing_push(conversation: ChatConversation, *, author: str) -> None:
    """A typing notice: to the agent (the visitor types) or to the visitor (the agent types)."""
    if author == LineAuthor.VISITOR:
        _push_agents(conversation, conversation.agent_id, event="typing")
    else:
        realtime_publish(group=visitor_group(conversation.pk), kind="chat.typing", data={})


# ---------------------------------------------------------------- notices


def _notice(code: str, args: dict[str, Any]) -> str:
    name = str(args.get("name") or "")
    texts = {
        "joined": gettext("%(name)s joined the chat.") % {"name": name},
        "transferred": gettext("%(name)s took over the chat.") % {"name": name},
        "requeued": gettext("You are being transferred. Please wait for the next agent."),
        "ended_agent": gettext("The agent ended the chat."),
        "ended_visitor": gettext("You ended the chat."),
        "ended_idle": gettext("The chat ended after a period of inactivity."),
        "abandoned": gettext("The chat ended before an agent joined."),
        "offline": gettext("Nobody can chat right now. We have your message and will answer by email."),
        "offline_left": gettext("We have your message and will answer by email."),
    }
    return texts.get(code, code)


def notice_text(line: ChatLine, language: str) -> str:
    with translation.override(language or settings.LANGUAGE_CODE):
        return _notice(line.notice, line.notice_args)


# ---------------------------------------------------------------- reading


def lines_after(conversation: ChatConversation, after: int, *, limit: int = 500) -> list[ChatLine]:
    """The conversation's lines after sequence number ``after``, in order (one query)."""
    return list(
        ChatLine.objects.filter(conversation=conversation, seq__gt=after)
        .select_related("message", "agent")
        .prefetch_related("message__attachments")
        .order_by("seq")[:limit]
    )


def agent_display_name(user: User | None) -> str:
    return "" if user is None else str(user)


def line_frame(
    line: ChatLine, conversation: ChatConversation, *, for_visitor: bool, files: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``message`` frame of a line. ``files``: its files when the caller knows them (a text
    message has none), else they are read from the line's message."""
    if line.author == LineAuthor.SYSTEM:
        text = notice_text(line, conversation.language if for_visitor else translation.get_language() or "")
        name = ""
    else:
        text = line.message.text if line.message is not None else ""
        if line.author == LineAuthor.AGENT:
            name = agent_display_name(line.agent)
        else:
            name = conversation.claimed_name or (gettext("Visitor") if not for_visitor else "")
    if files is None:
        files = (
            [
                {"name": a.filename, "type": a.content_type, "size": a.size}
                for a in sorted(line.message.attachments.all(), key=lambda a: a.pk)
            ]
            if line.message is not None
            else []
        )
    return {
        "type": "message",
        "seq": line.seq,
        "client_id": str(line.client_id) if line.client_id else None,
        "author": line.author,
        "name": name,
        "text": text,
        "at": line.at.isoformat(),
        "files": files,
    }


def waiting_position(conversation: ChatConversation) -> int:
    """1 for the next chat of its queue to be offered, counting higher tiers and longer waits first."""
    if conversation.status != ChatStatus.WAITING:
        return 0
    from servicedesk.routing.selectors import tier_rank

    from .routing import tier_rank as own_rank

    mine = own_rank(conversation)
    ahead = (
        ChatConversation.objects.filter(queue_id=conversation.queue_id, status=ChatStatus.WAITING)
        .annotate(rank=tier_rank())
        .filter(
            Q(rank__lt=mine)
            | Q(rank=mine, requested_at__lt=conversation.requested_at)
            | Q(rank=mine, requested_at=conversation.requested_at, pk__lt=conversation.pk)
        )
    )
    return int(ahead.count()) + 1


def status_frame(conversation: ChatConversation) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "status",
        "status": conversation.status,
        "position": waiting_position(conversation),
        "agent": agent_display_name(conversation.agent) if conversation.agent_id else "",
    }
    if conversation.status == ChatStatus.WAITING:
        waited = (timezone.now() - conversation.requested_at).total_seconds()
        frame["offline_offered"] = waited >= conversation.widget.max_wait_seconds
    return frame


# ---------------------------------------------------------------- starting


@dataclass(frozen=True)
class ChatStart:
    widget: ChatWidget
    name: str
    email: str
    topic: str
    text: str
    client_id: uuid.UUID
    language: str = ""
    origin: str = ""
    previous_token: str = ""
    identity: str = ""
    identity_hmac: str = ""


@dataclass(frozen=True)
class Started:
    conversation: ChatConversation
    token: str


def widget_open(widget: ChatWidget, at: datetime) -> bool:
    if widget.hours_id is None:
        return True
    from servicedesk.routing.selectors import calendars_open

    return calendars_open([widget.hours_id], at).get(widget.hours_id, False)


def offline_reason(widget: ChatWidget, at: datetime) -> str:
    """Why a new chat of ``widget`` cannot wait for an agent now, or "" when it can."""
    if not widget_open(widget, at):
        return "closed"
    from .routing import chat_agents_for_queue

    if not chat_agents_for_queue(queue_id=widget.queue_id, at=at):
        return "nobody_online"
    waiting = ChatConversation.objects.filter(queue_id=widget.queue_id, status=ChatStatus.WAITING).count()
    if waiting >= widget.max_queue_length:
        return "queue_full"
    return ""


def _visitor_identity(start: ChatStart, at: datetime) -> tuple[SenderIdentity, str, str]:
    """(the sender for the intake, the visitor id, the verified identity or "")."""
    name = start.name[:NAME_MAX]
    if start.identity:
        if not start.identity_hmac or not identity_signature_valid(start.widget, start.identity, start.identity_hmac):
            raise PermissionDenied(_("The identity's signature does not match."), field="identity_hmac")
        identity = start.identity.strip()
        if "@" in identity:
            return SenderIdentity(kind=IdentityKind.EMAIL, value=identity, name=name), identity.lower(), identity
        value = "ext:" + identity[:180]
        return SenderIdentity(kind=IdentityKind.CHAT, value=value, name=name), value, identity
    visitor_id = ""
    if start.previous_token:
        try:
            visitor_id = conversation_for_token(start.previous_token, at=at).visitor_id
        except NotFound:
            visitor_id = ""
    visitor_id = visitor_id or "v:" + secrets.token_hex(16)
    if "@" in visitor_id and not visitor_id.startswith("v:"):
        return SenderIdentity(kind=IdentityKind.EMAIL, value=visitor_id, name=name), visitor_id, visitor_id
    return SenderIdentity(kind=IdentityKind.CHAT, value=visitor_id, name=name), visitor_id, ""


def chat_start(start: ChatStart, *, at: datetime | None = None) -> Started:
    """Open a chat: a ticket of channel chat with the first message, waiting for an agent or offline.

    Waiting: the conversation gets a ``Session`` (requested now) and is offered
    to agents after commit. Offline (outside the widget's hours, nobody online
    who takes chats, or the queue full): the ticket is an offline message, the
    visitor gets the acknowledgement by email at the address they gave (so
    one is required), and no session is recorded. Idempotency key: the
    widget and the first message's ``client_id``; the same start sent again
    is refused (Conflict) and stores nothing more. Raises ApplicationError with
    a field for bad input, before anything is written.
    """
    at = at or timezone.now()
    widget = start.widget
    name = clean_text(start.name).strip()[:NAME_MAX]
    email = start.email.strip()
    text = clean_text(start.text).strip()
    if not text:
        raise ApplicationError(_("Write a message."), field="text")
    if len(text) > TEXT_MAX:
        raise ApplicationError(_("A message has at most %(n)d characters.") % {"n": TEXT_MAX}, field="text")
    if widget.name_required and not name:
        raise ApplicationError(_("Enter your name."), field="name")
    reason = offline_reason(widget, at)
    if (widget.email_required or reason) and not email:
        raise ApplicationError(_("Enter your email address so we can answer you."), field="email")
    topic = None
    if start.topic:
        topic = Topic.objects.filter(slug=start.topic, is_public=True).first()
        if topic is None:
            raise ApplicationError(_("Choose a topic from the list."), field="topic")
    sender, visitor_id, verified = _visitor_identity(start, at)
    token = secrets.token_urlsafe(32)
    status = ChatStatus.OFFLINE if reason else ChatStatus.WAITING
    inbound = InboundMessage(
        channel=CHANNEL,
        external_id=f"chat:{widget.pk}:{start.client_id}",
        sender=sender,
        subject=(text.splitlines()[0] if text else "")[:120] or gettext("Chat"),
        text=text,
        topic=topic.slug if topic else None,
        queue=widget.queue.slug,
        language=start.language,
        received_at=at,
        acknowledge=bool(reason),
        route=bool(reason),
        metadata={"chat": "offline" if reason else "live"},
    )
    with transaction.atomic():
        result = inbound_message_receive(inbound=inbound)
        if result.duplicate:
            raise Conflict(_("This chat was started already."), extra={"code": "already_started"})
        session = None
        if status == ChatStatus.WAITING:
            session = Session.objects.create(
                channel=SessionChannel.CHAT, customer=result.customer, ticket=result.ticket, requested_at=at
            )
        conversation = ChatConversation.objects.create(
            widget=widget,
            ticket=result.ticket,
            customer=result.customer,
            session=session,
            queue=widget.queue,
            status=status,
            token_hash=token_hash(token),
            token_expires_at=at + timedelta(days=TOKEN_DAYS),
            visitor_id=visitor_id,
            claimed_name=name,
            claimed_email=email[:254],
            verified_identity=verified[:254],
            language=(start.language or "")[:10],
            origin=start.origin[:300],
            last_seq=1,
            requested_at=at,
            visitor_seen_at=at,
            last_activity_at=at,
            ended_at=at if reason else None,
        )
        lines = [
            ChatLine(
                conversation=conversation,
                seq=1,
                client_id=start.client_id,
                author=LineAuthor.VISITOR,
                message=result.message,
                at=at,
            )
        ]
        if reason:
            conversation.last_seq = 2
            conversation.save(update_fields=["last_seq"])
            lines.append(ChatLine(conversation=conversation, seq=2, author=LineAuthor.SYSTEM, notice="offline", at=at))
        ChatLine.objects.bulk_create(lines)
        if status == ChatStatus.WAITING:
            chat_event_emit(**_chat_event(conversation, EventType.CHAT_STARTED))
            conversation_id, queue_id = conversation.pk, conversation.queue_id
            transaction.on_commit(lambda: _after_waiting(conversation_id, queue_id))
    log.info("Chat %s started (%s)", conversation.pk, reason or "waiting")
    return Started(conversation=conversation, token=token)


def _after_waiting(conversation_id: int, queue_id: int) -> None:
    from .routing import chat_offers_dispatch

    try:
        _push_queue(queue_id, conversation_id)
        chat_offers_dispatch(queue_id=queue_id)
    except Exception:
        # The beat's tick offers it again; the chat is stored and waiting.
        log.warning("Could not offer chat %s now", conversation_id, exc_info=True)


# ---------------------------------------------------------------- lines


# A visitor's line locks its conversation and its ticket, the ticket's customer read along:
# compiled once per connection.
_LINE_LOCK: PreparedRowLock[ChatConversation] = PreparedRowLock(
    lambda pk: ChatConversation.objects.filter(pk=pk).select_related("ticket__customer__organization"),
    of=("self", "ticket"),
    pk=int,
)


def _next_seq(conversation: ChatConversation, at: datetime, *, counted: bool = False) -> int:
    """The next sequence number, saved; ``counted``: with the visitor's count (``_visitor_line_refusal``)."""
    conversation.last_seq += 1
    conversation.last_activity_at = at
    fields = ["last_seq", "last_activity_at"]
    if counted:
        fields += ["lines_window_at", "lines_in_window"]
    row_update(conversation, fields)
    return conversation.last_seq


LINES_WINDOW = timedelta(minutes=1)


def _visitor_line_refusal(conversation: ChatConversation, at: datetime) -> ApplicationError | None:
    """Why the locked conversation takes no new visitor line (ended, or past
    VISITOR_MESSAGES_PER_MINUTE in the minute that began with the first line counted),
    else None, the line counted (saved with its sequence number). Kept on the
    conversation's row, the count holds across every socket and process without a
    round trip of its own, and whether or not the cache is reachable."""
    if conversation.status not in OPEN_STATUSES:
        return ChatClosed(_("This chat has ended."))
    start = conversation.lines_window_at
    if start is None or not start <= at < start + LINES_WINDOW:
        start = conversation.lines_window_at = at
        conversation.lines_in_window = 0
    if conversation.lines_in_window >= VISITOR_MESSAGES_PER_MINUTE:
        log.warning("Chat %s: the visitor's messages are over the limit", conversation.pk)
        retry_after = max(1, math.ceil((start + LINES_WINDOW - at).total_seconds()))
        return VisitorFlood(_("Too many messages at once; wait a moment."), extra={"retry_after": retry_after})
    conversation.lines_in_window += 1
    return None


def _system_line(conversation: ChatConversation, code: str, at: datetime, **args: Any) -> ChatLine:
    return ChatLine.objects.create(
        conversation=conversation,
        seq=_next_seq(conversation, at),
        author=LineAuthor.SYSTEM,
        notice=code,
        notice_args=args,
        at=at,
    )


def _check_text(text: str) -> str:
    text = clean_text(text).strip()
    if not text:
        raise ApplicationError(_("Write a message."), field="text")
    if len(text) > TEXT_MAX:
        raise ApplicationError(_("A message has at most %(n)d characters.") % {"n": TEXT_MAX}, field="text")
    return text


def chat_visitor_message(
    *,
    conversation_id: int,
    client_id: uuid.UUID,
    text: str,
    attachments: tuple[InboundAttachment, ...] = (),
    at: datetime | None = None,
) -> tuple[ChatLine, bool]:
    """Store a visitor's message; returns (its line, whether it is new).

    Idempotency key: (conversation, client_id): sent again, the stored line is
    returned and nothing is written. ChatClosed once the chat ended. The
    message goes through the intake (attachments through its checks).
    """
    at = at or timezone.now()
    text = clean_text(text).strip()
    if not attachments:
        text = _check_text(text)
    elif len(text) > TEXT_MAX:
        raise ApplicationError(_("A message has at most %(n)d characters.") % {"n": TEXT_MAX}, field="text")
    try:
        return _visitor_line_store(conversation_id, client_id, text, attachments, at)
    except IntegrityError:
        # The client_id is taken by a line the intake does not know as this message's (the chat's first).
        existing = ChatLine.objects.filter(conversation_id=conversation_id, client_id=client_id).first()
        if existing is None:
            raise
        return existing, False


def _visitor_line_store(
    conversation_id: int,
    client_id: uuid.UUID,
    text: str,
    attachments: tuple[InboundAttachment, ...],
    at: datetime,
) -> tuple[ChatLine, bool]:
    with transaction.atomic():
        conversation = _LINE_LOCK(pk=conversation_id)
        if conversation is None:
            raise ChatConversation.DoesNotExist(f"No chat {conversation_id}.")
        refusal = _visitor_line_refusal(conversation, at)
        if refusal is not None:
            # A line sent again (its client_id stored) is answered as stored, whatever the refusal.
            existing = ChatLine.objects.filter(conversation=conversation, client_id=client_id).first()
            if existing is not None:
                return existing, False
            raise refusal
        ticket = conversation.ticket
        # Sent again (the same client_id): the intake finds the message by its external id and stores nothing.
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel=CHANNEL,
                external_id=f"chat:{conversation.pk}:{client_id}",
                sender=line_sender(conversation),
                text=text,
                attachments=attachments,
                ticket_reference=ticket.reference,
                reference_trusted=True,
                acknowledge=False,
                route=False,
                # The agent is in the chat: no notice and no email for every line.
                notify_assignee=False,
                received_at=at,
                # Locked above; the visitor's own ticket takes the line without a look-up.
                ticket_locked=ticket if ticket.customer_id == conversation.customer_id else None,
            )
        )
        if result.duplicate:
            return ChatLine.objects.get(conversation=conversation, client_id=client_id), False
        line = ChatLine(
            conversation=conversation,
            seq=_next_seq(conversation, at, counted=True),
            client_id=client_id,
            author=LineAuthor.VISITOR,
            message=result.message,
            at=at,
        )
        row_insert(line)
        _push_visitor(conversation, line_only=True)
        _push_agents(conversation, conversation.agent_id)
    return line, True


def line_sender(conversation: ChatConversation) -> SenderIdentity:
    """Who writes the visitor's lines: the identity the chat started under (their chat
    identity, or the address a signed-in visitor's site vouched for)."""
    if conversation.verified_identity and conversation.visitor_id == conversation.verified_identity.lower():
        return SenderIdentity(kind=IdentityKind.EMAIL, value=conversation.visitor_id)
    return SenderIdentity(kind=IdentityKind.CHAT, value=conversation.visitor_id)


def chat_agent_message(
    *, conversation_id: int, agent: User, text: str, client_id: uuid.UUID | None = None, at: datetime | None = None
) -> tuple[ChatLine, bool]:
    """Store an agent's message in a chat they hold; (line, new). Idempotent on ``client_id``."""
    at = at or timezone.now()
    text = _check_text(text)
    client_id = client_id or uuid.uuid4()
    with transaction.atomic():
        conversation = row_lock(ChatConversation, conversation_id)
        existing = ChatLine.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return existing, False
        if conversation.status != ChatStatus.ACTIVE:
            raise ChatClosed(_("This chat is not active."))
        if conversation.agent_id != agent.pk:
            raise PermissionDenied(_("Another agent holds this chat."))
        message = ticket_reply_create(
            ticket=conversation.ticket,
            author=agent,
            text=text,
            deliver=False,
            external_id=f"chat:{conversation.pk}:{client_id}",
            actor=Actor.agent(agent, source="chat"),
            at=at,
        )
        line = ChatLine(
            conversation=conversation,
            seq=_next_seq(conversation, at),
            client_id=client_id,
            author=LineAuthor.AGENT,
            agent=agent,
            message=message,
            at=at,
        )
        row_insert(line)
        _push_visitor(conversation, line_only=True)
        _push_agents(conversation, agent.pk)
    return line, True


# ---------------------------------------------------------------- accept, transfer, end


def _held_count(agent_id: int) -> int:
    return int(ChatConversation.objects.filter(agent_id=agent_id, status=ChatStatus.ACTIVE).count())


def chat_capacity_of(agent: User) -> int:
    from servicedesk.routing.models import AgentProfile

    profile = AgentProfile.objects.filter(user=agent).only("chat_capacity").first()
    if profile is None:
        return int(settings.SERVICEDESK.get("ROUTING_DEFAULT_CHAT_CAPACITY", 2))
    return int(profile.chat_capacity)


def chat_accept(*, conversation_id: int, agent: User, at: datetime | None = None) -> ChatConversation:
    """The agent takes a waiting chat. Exactly one of simultaneous accepts wins: the
    conversation's row lock orders them, and the later ones find it taken (ChatTaken).
    AtCapacity when the agent already holds their chat capacity."""
    at = at or timezone.now()
    with transaction.atomic():
        from servicedesk.routing.models import AgentProfile

        # The chat first, then the agent's profile: the order every chat service locks in.
        conversation = row_lock(ChatConversation, conversation_id)
        profiles = rows_lock(AgentProfile.objects.filter(user=agent))
        profile = profiles[0] if profiles else None
        if conversation.status != ChatStatus.WAITING:
            raise ChatTaken(_("Another agent has taken this chat, or it has ended."))
        capacity = profile.chat_capacity if profile is not None else chat_capacity_of(agent)
        if _held_count(agent.pk) >= capacity:
            raise AtCapacity(_("You already hold as many chats as you can take."))
        previous_offer = conversation.offered_to_id
        first_answer = (
            conversation.session_id is not None
            and not Session.objects.filter(pk=conversation.session_id, answered_at__isnull=False).exists()
        )
        conversation.status = ChatStatus.ACTIVE
        conversation.agent = agent
        conversation.offered_to = None
        conversation.offer_expires_at = None
        conversation.save(update_fields=["status", "agent", "offered_to", "offer_expires_at"])
        if conversation.session_id is not None:
            fields: dict[str, Any] = {"agent": agent}
            if first_answer:
                fields["answered_at"] = at
            Session.objects.filter(pk=conversation.session_id).update(**fields)
        ticket_assign(ticket=conversation.ticket, assignee=agent, actor=Actor.agent(agent, source="chat"), at=at)
        _system_line(conversation, "joined", at, name=agent_display_name(agent))
        _push_visitor(conversation)
        _push_agents(conversation, agent.pk, previous_offer)
        _push_queue(conversation.queue_id, conversation.pk)
    return conversation


def chat_transfer(
    *,
    conversation_id: int,
    agent: User,
    to_agent: User | None = None,
    to_queue: Queue | None = None,
    at: datetime | None = None,
) -> ChatConversation:
    """Hand an active chat to another agent (who takes it at once) or back to a queue (it waits
    there and is offered again). The transcript stays: it is the same conversation and ticket."""
    at = at or timezone.now()
    if (to_agent is None) == (to_queue is None):
        raise ApplicationError(_("Transfer to an agent or to a queue."), field="agent")
    with transaction.atomic():
        conversation = row_lock(ChatConversation, conversation_id)
        if conversation.status != ChatStatus.ACTIVE:
            raise ChatClosed(_("This chat is not active."))
        if conversation.agent_id != agent.pk:
            raise PermissionDenied(_("Another agent holds this chat."))
        actor = Actor.agent(agent, source="chat")
        if to_agent is not None:
            if to_agent.pk == agent.pk:
                raise ApplicationError(_("Choose another agent."), field="agent")
            if _held_count(to_agent.pk) >= chat_capacity_of(to_agent):
                raise AtCapacity(_("That agent already holds as many chats as they can take."), field="agent")
            ticket_assign(ticket=conversation.ticket, assignee=to_agent, actor=actor, at=at)
            conversation.agent = to_agent
            conversation.save(update_fields=["agent"])
            if conversation.session_id is not None:
                Session.objects.filter(pk=conversation.session_id).update(agent=to_agent)
            _system_line(conversation, "transferred", at, name=agent_display_name(to_agent))
            _push_agents(conversation, agent.pk, to_agent.pk, event="offer")
        elif to_queue is not None:
            if to_queue.pk != conversation.queue_id:
                ticket_queue_change(ticket=conversation.ticket, queue=to_queue, actor=actor, at=at)
            ticket_assign(ticket=conversation.ticket, assignee=None, actor=actor, at=at)
            conversation.status = ChatStatus.WAITING
            conversation.agent = None
            conversation.queue = to_queue
            conversation.declined_by = [agent.pk]
            conversation.save(update_fields=["status", "agent", "queue", "declined_by"])
            _system_line(conversation, "requeued", at)
            _push_agents(conversation, agent.pk)
            queue_id, conversation_pk = to_queue.pk, conversation.pk
            transaction.on_commit(lambda: _after_waiting(conversation_pk, queue_id))
        _push_visitor(conversation)
    return conversation


def chat_end(
    *, conversation_id: int, by: str, agent: User | None = None, at: datetime | None = None
) -> ChatConversation:
    """End a chat: by the visitor, the agent or the idle timeout (``by``: visitor, agent, idle).

    A waiting chat the visitor ends was abandoned (its session says when). An
    answered one ends; the agent's wrap-up follows. Ending an ended chat
    changes nothing.
    """
    at = at or timezone.now()
    with transaction.atomic():
        conversation = row_lock(ChatConversation, conversation_id)
        if conversation.status not in OPEN_STATUSES:
            return conversation
        if by == "agent" and (agent is None or conversation.agent_id != agent.pk):
            raise PermissionDenied(_("Another agent holds this chat."))
        if conversation.status == ChatStatus.WAITING and not _was_answered(conversation):
            _abandon(conversation, at)
        else:
            conversation.status = ChatStatus.ENDED
            conversation.ended_at = at
            conversation.offered_to = None
            conversation.save(update_fields=["status", "ended_at", "offered_to"])
            if conversation.session_id is not None:
                Session.objects.filter(pk=conversation.session_id).update(ended_at=at)
            code = {"visitor": "ended_visitor", "agent": "ended_agent"}.get(by, "ended_idle")
            _system_line(conversation, code, at)
            chat_event_emit(**_chat_event(conversation, EventType.CHAT_ENDED))
            # The widget asks for a rating now: a survey of the chat's ticket (docs/help-centre.md).
            survey_record_asked_in_chat(ticket=conversation.ticket, agent_id=conversation.agent_id, ended_at=at)
        _push_visitor(conversation)
        _push_agents(conversation, conversation.agent_id, conversation.offered_to_id)
        _push_queue(conversation.queue_id, conversation.pk)
        queue_id = conversation.queue_id
        transaction.on_commit(lambda: _dispatch_quietly(queue_id))
    return conversation


def _dispatch_quietly(queue_id: int | None = None) -> None:
    from .routing import chat_offers_dispatch

    try:
        chat_offers_dispatch(queue_id=queue_id)
    except Exception:
        log.warning("Chat offers not dispatched now; the tick retries", exc_info=True)


def _was_answered(conversation: ChatConversation) -> bool:
    return (
        conversation.session_id is not None
        and Session.objects.filter(pk=conversation.session_id, answered_at__isnull=False).exists()
    )


def _abandon(conversation: ChatConversation, at: datetime) -> None:
    conversation.status = ChatStatus.ABANDONED
    conversation.ended_at = at
    offered = conversation.offered_to_id
    conversation.offered_to = None
    conversation.offer_expires_at = None
    conversation.save(update_fields=["status", "ended_at", "offered_to", "offer_expires_at"])
    if conversation.session_id is not None:
        Session.objects.filter(pk=conversation.session_id).update(abandoned_at=at, ended_at=at)
    _system_line(conversation, "abandoned", at)
    chat_event_emit(**_chat_event(conversation, EventType.CHAT_ENDED))
    _push_agents(conversation, offered)


def _chat_event(conversation: ChatConversation, event_type: str) -> dict[str, Any]:
    """The webhook event of a live chat's start or end (docs/webhooks.md), in its transaction."""
    return {
        "event_type": event_type,
        "chat_id": conversation.pk,
        "ticket_id": conversation.ticket_id,
        "status": conversation.status,
        "requested_at": conversation.requested_at,
        "ended_at": conversation.ended_at,
        "agent_id": conversation.agent_id,
    }


def chat_leave_message(*, conversation_id: int, email: str, text: str, at: datetime | None = None) -> ChatConversation:
    """A waiting visitor who will not wait longer leaves a message instead: the session is
    abandoned now, the ticket stays for an answer by email (docs/metrics.md#live)."""
    at = at or timezone.now()
    email = email.strip()
    if not email:
        raise ApplicationError(_("Enter your email address so we can answer you."), field="email")
    text = clean_text(text).strip()
    if len(text) > TEXT_MAX:
        raise ApplicationError(_("A message has at most %(n)d characters.") % {"n": TEXT_MAX}, field="text")
    with transaction.atomic():
        conversation = row_lock(ChatConversation, conversation_id)
        if conversation.status != ChatStatus.WAITING or _was_answered(conversation):
            raise ChatClosed(_("This chat is not waiting any more."))
        if text:
            ticket = Ticket.objects.only("reference").get(pk=conversation.ticket_id)
            inbound_message_receive(
                inbound=InboundMessage(
                    channel=CHANNEL,
                    external_id=f"chat:{conversation.pk}:offline",
                    sender=line_sender(conversation),
                    text=text,
                    ticket_reference=ticket.reference,
                    reference_trusted=True,
                    acknowledge=False,
                    route=False,
                    received_at=at,
                )
            )
        conversation.claimed_email = email[:254]
        conversation.save(update_fields=["claimed_email"])
        _abandon(conversation, at)
        conversation.status = ChatStatus.OFFLINE
        conversation.save(update_fields=["status"])
        _system_line(conversation, "offline_left", at)
        _push_visitor(conversation)
        _push_queue(conversation.queue_id, conversation.pk)
    return conversation


def chat_wrap_up(
    *, conversation_id: int, agent: User, status: str = "", note: str = "", at: datetime | None = None
) -> ChatConversation:
    """Close the after-contact work of an ended chat: the session's after-work seconds run
    from the end until now; optionally the ticket's status and an internal note."""
    at = at or timezone.now()
    with transaction.atomic():
        conversation = row_lock(ChatConversation, conversation_id)
        if conversation.agent_id != agent.pk:
            raise PermissionDenied(_("Another agent holds this chat."))
        if conversation.status != ChatStatus.ENDED or conversation.ended_at is None:
            raise Conflict(_("End the chat before its wrap-up."))
        if conversation.wrapped_up_at is not None:
            return conversation
        actor = Actor.agent(agent, source="chat")
        if note.strip():
            ticket_note_create(ticket=conversation.ticket, author=agent, text=note, actor=actor, at=at)
        if status:
            if status not in Status.values:
                raise ApplicationError(_("Unknown status."), field="status")
            ticket = Ticket.objects.get(pk=conversation.ticket_id)
            if ticket.status != status:
                ticket_status_change(ticket=ticket, status=status, actor=actor, at=at)
        conversation.wrapped_up_at = at
        conversation.save(update_fields=["wrapped_up_at"])
        if conversation.session_id is not None:
            seconds = max(0, int((at - conversation.ended_at).total_seconds()))
            Session.objects.filter(pk=conversation.session_id).update(after_work_seconds=seconds)
        _push_agents(conversation, agent.pk)
    return conversation


def chat_rate(*, conversation_id: int, score: int, comment: str = "", at: datetime | None = None) -> Rating:
    """The visitor's 1-5 rating of an ended chat, stored as the ticket's satisfaction rating
    (docs/metrics.md#csat). Rating again replaces it (one per chat)."""
    at = at or timezone.now()
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise ApplicationError(_("A rating is a whole number from 1 to 5."), field="score")
    comment = clean_text(comment).strip()[:TEXT_MAX]
    conversation = ChatConversation.objects.get(pk=conversation_id)
    if conversation.status != ChatStatus.ENDED:
        raise Conflict(_("A chat is rated after it ends."))
    with transaction.atomic():
        rating, _created = Rating.objects.update_or_create(
            external_key=f"chat:{conversation.pk}",
            defaults={"ticket_id": conversation.ticket_id, "score": score, "comment": comment, "at": at},
        )
        if conversation.ended_at is not None:
            survey_rating_link(ticket_id=conversation.ticket_id, asked_at=conversation.ended_at, rating=rating)
        rating_received_emit(ticket_id=conversation.ticket_id, rating=rating)
    return rating


# ---------------------------------------------------------------- the visitor's connection


def visitor_seen(conversation_id: int, *, at: datetime | None = None) -> None:
    """The visitor is connected now (a socket opened or sent a frame)."""
    at = at or timezone.now()
    ChatConversation.objects.filter(pk=conversation_id).update(visitor_seen_at=at, visitor_left_at=None)


def visitor_ping(conversation_id: int, *, seen: bool, at: datetime | None = None) -> tuple[int, str]:
    """A visitor's ping: ``visitor_seen`` when ``seen``; returns the conversation's last
    sequence number and status, so the socket reads again only when it is behind."""
    if seen:
        visitor_seen(conversation_id, at=at)
    row = _PING_READ.first(pk=conversation_id)
    return (row.last_seq, row.status) if row is not None else (0, ChatStatus.ENDED)


# A ping's read, twice a minute for every open widget: its SQL made once per connection.
_PING_READ: PreparedQuery[ChatConversation] = PreparedQuery(
    lambda pk: ChatConversation.objects.only("pk", "last_seq", "status").filter(pk=pk)[:1], pk=int
)


def visitor_left(conversation_id: int, *, at: datetime | None = None) -> None:
    """A visitor's socket closed; with no other socket's frame within the grace, a waiting chat is abandoned."""
    at = at or timezone.now()
    ChatConversation.objects.filter(pk=conversation_id, status__in=OPEN_STATUSES).update(visitor_left_at=at)


def claim_confirm(*, conversation_id: int, agent: User, at: datetime | None = None) -> ChatConversation:
    """The agent confirms that the address the visitor gave is theirs: the visitor's record
    becomes part of the customer who owns that address (their history joins)."""
    from servicedesk.tickets.access import customers_visible_to
    from servicedesk.tickets.services.customers import customer_find_by_identity, customer_merge

    conversation = ChatConversation.objects.select_related("customer").get(pk=conversation_id)
    if not conversation.claimed_email:
        raise ApplicationError(_("The visitor gave no address."))
    owner = customer_find_by_identity(kind=IdentityKind.EMAIL, value=conversation.claimed_email)
    if owner is not None and not customers_visible_to(agent).filter(pk=owner.pk).exists():
        # The address belongs to a customer of another queue: only someone who may see them joins the records.
        raise PermissionDenied(_("A customer you cannot see owns this address."))
    if owner is None:
        from servicedesk.tickets.services.customers import customer_identity_add

        customer_identity_add(customer=conversation.customer, kind=IdentityKind.EMAIL, value=conversation.claimed_email)
    elif owner.pk != conversation.customer.pk:
        owner = customer_merge(
            source=conversation.customer, target=owner, actor=Actor.agent(agent, source="chat"), at=at
        )
        # The chat is the owner's now: its customer panel shows their tier and history.
        conversation.customer = owner
    ChatConversation.objects.filter(pk=conversation.pk).update(claim_confirmed_by=agent, customer=conversation.customer)
    conversation.claim_confirmed_by = agent
    return conversation
