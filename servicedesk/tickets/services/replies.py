"""Agent replies and internal notes: the sibling of intake for what agents write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, Conflict
from servicedesk.core.html import sanitize_html
from servicedesk.core.text import clean_text
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import (
    Customer,
    DeliveryStatus,
    HeldReply,
    Message,
    MessageKind,
    Queue,
    ReplyDraft,
    Ticket,
    TicketEvent,
    Topic,
)
from servicedesk.tickets.services.attachments import (
    AttachmentRejected,
    attachment_store,
    attachments_check,
    attachments_count_check,
    draft_attachments_of,
    stored_files_remove,
    unsent_attachments_remove,
    unsent_attachments_send,
)
from servicedesk.tickets.services.mentions import mentions_record
from servicedesk.tickets.services.tickets import (
    TicketVersionMismatch,
    _apply_status,
    _sla_refresh,
    ticket_conflicts_check,
    ticket_create,
    ticket_touch,
    ticket_update,
)


class CustomerWroteMeanwhile(Conflict):
    """The customer wrote again after the agent's page or draft was loaded: the reply is not sent.

    ``messages`` are the customer's newer messages, oldest first; the API
    answers them in the 409 (docs/drafts.md, "Collision hold").
    """

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages = list(messages)
        super().__init__(
            _("The customer wrote again while you were typing. Read the new message before you send."),
            extra={
                "messages": [
                    {"id": message.pk, "text": message.text, "created_at": message.created_at.isoformat()}
                    for message in self.messages
                ]
            },
        )


def customer_wrote_meanwhile_check(*, ticket: Ticket, seen_message_id: int | None) -> None:
    """Raise CustomerWroteMeanwhile when the customer wrote on ``ticket`` after ``seen_message_id``.

    ``seen_message_id`` is the newest customer message the agent's form was
    rendered with (0 when there was none); None skips the check (a client that
    does not send it, or "Send anyway"). Call under the ticket's row lock, so a
    customer message committed meanwhile is seen.
    """
    if seen_message_id is None:
        return
    newer = list(
        Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_ENDUSER, pk__gt=seen_message_id).order_by("pk")
    )
    if newer:
        raise CustomerWroteMeanwhile(newer)


def _agent_message(
    *,
    ticket: Ticket,
    author: User | None,
    kind: str,
    text: str,
    html: str,
    attachments: Sequence[InboundAttachment],
    status: str | None,
    actor: Actor,
    at: datetime | None,
    deliver: bool,
    external_id: str | None,
    quote_history: bool = False,
    version: int | None = None,
    seen_message_id: int | None = None,
    kept_attachments: Sequence[int] = (),
) -> Message:
    at = at or timezone.now()
    text = clean_text(text)
    html = sanitize_html(html)
    if not text.strip() and not html.strip():
        raise ApplicationError(_("The message is empty."), field="text")
    files = attachments_check(attachments)
    attachments_count_check(len(files) + len(set(kept_attachments)))
    saved: list[str] = []
    try:
        with transaction.atomic():
            locked = ticket_lock(ticket.pk)
            if version is not None and locked.version != version:
                raise TicketVersionMismatch(version=locked.version)
            if locked.merged_into_id:
                raise ApplicationError(_("This ticket was merged into another one; write there."))
            if kind == MessageKind.PUBLIC_AGENT:
                customer_wrote_meanwhile_check(ticket=locked, seen_message_id=seen_message_id)
            message = Message(
                ticket=locked,
                kind=kind,
                channel=locked.channel,
                author_user=author,
                text=text,
                html=html,
                external_id=external_id,
                quote_history=quote_history,
                delivery_status=DeliveryStatus.QUEUED if deliver else DeliveryStatus.NONE,
                created_at=at,
            )
            message.save(force_insert=True)
            unsent_attachments_send(ticket=locked, message=message, agent=author, ids=kept_attachments)
            for upload in files:
                attachment_store(ticket=locked, message=message, upload=upload, saved=saved)
            event_record(
                ticket=locked,
                kind=TicketEvent.Kind.MESSAGE,
                actor=actor,
                at=at,
                message=message,
                after={"kind": kind, "channel": message.channel},
            )
            if kind == MessageKind.INTERNAL and actor.source != "import":
                # Agents named with @ who may see the ticket (services/mentions.py); replies name
                # nobody, and imported history tells nobody.
                mentions_record(message=message, ticket=locked, author=author, at=at)
            fields: list[str] = []
            if kind == MessageKind.PUBLIC_AGENT and locked.first_reply_at is None:
                locked.first_reply_at = at
                fields.append("first_reply_at")
            ticket_touch(locked, at, fields)
            if status:
                _apply_status(locked, status, actor, at)
            if fields:
                _sla_refresh(locked, actor, at)
            if deliver:
                message_id = message.pk
                transaction.on_commit(lambda: _enqueue_delivery(message_id))
    except BaseException:
        stored_files_remove(saved)
        raise
    return message


def _enqueue_delivery(message_id: int) -> None:
    """After commit; with the broker down the message stays queued and
    ``tickets.outbound_pending_dispatch`` sends it later."""
    from servicedesk.tickets import tasks

    task_enqueue(tasks.message_deliver_task, message_id)


def ticket_reply_create(
    *,
    ticket: Ticket,
    author: User | None,
    text: str,
    html: str = "",
    attachments: Sequence[InboundAttachment] = (),
    status: str | None = None,
    actor: Actor | None = None,
    at: datetime | None = None,
    deliver: bool = True,
    external_id: str | None = None,
    quote_history: bool = False,
    version: int | None = None,
    seen_message_id: int | None = None,
    kept_attachments: Sequence[int] = (),
) -> Message:
    """A public agent reply, delivered to the customer on the ticket's channel after commit.

    Optionally moves the ticket to ``status`` in the same transaction, and
    carries the earlier conversation quoted below it (``quote_history``).
    With ``version`` (the API's If-Match) the ticket must still be at that
    version under the row lock, else TicketVersionMismatch. Raises
    ApplicationError (version mismatch, empty text, rejected attachment, bad
    transition) with nothing written, neither the message nor the status.
    ``deliver=False`` records history without sending (import). The returned
    message's ``ticket`` carries the version this write produced.
    With ``seen_message_id`` (the newest customer message the agent had seen)
    a newer customer message refuses the reply with CustomerWroteMeanwhile.
    ``kept_attachments`` are ids of files of the author's unsent reply (held
    for undo, or kept after one; docs/drafts.md) that go with this one.
    """
    return _agent_message(
        ticket=ticket,
        author=author,
        kind=MessageKind.PUBLIC_AGENT,
        text=text,
        html=html,
        attachments=attachments,
        status=status,
        actor=actor or (Actor.agent(author) if author else Actor.system()),
        at=at,
        deliver=deliver,
        external_id=external_id,
        quote_history=quote_history,
        version=version,
        seen_message_id=seen_message_id,
        kept_attachments=kept_attachments,
    )


def ticket_note_create(
    *,
    ticket: Ticket,
    author: User | None,
    text: str,
    html: str = "",
    attachments: Sequence[InboundAttachment] = (),
    status: str | None = None,
    actor: Actor | None = None,
    at: datetime | None = None,
    kind: str = MessageKind.INTERNAL,
    external_id: str | None = None,
    version: int | None = None,
) -> Message:
    """An internal note (or, for imports and automation, a system message); never delivered.

    ``version`` and the refusals as for ``ticket_reply_create``.
    """
    if kind not in (MessageKind.INTERNAL, MessageKind.SYSTEM):
        raise ApplicationError("A note is internal or system.")
    return _agent_message(
        ticket=ticket,
        author=author,
        kind=kind,
        text=text,
        html=html,
        attachments=attachments,
        status=status,
        actor=actor or (Actor.agent(author) if author else Actor.system()),
        at=at,
        deliver=False,
        external_id=external_id,
        version=version,
    )


def ticket_open_outbound(
    *,
    customer: Customer,
    subject: str,
    text: str,
    author: User,
    channel: str,
    queue: Queue | None = None,
    topic: Topic | None = None,
    priority: str = "normal",
    actor: Actor | None = None,
    at: datetime | None = None,
    external_id: str | None = None,
) -> Message:
    """An agent starts a conversation: an ``outbound`` ticket and its first public
    reply, in one transaction, delivered after commit.

    The ticket and the reply share one instant. ``external_id`` (unique per
    channel) makes a repeated request raise IntegrityError with nothing written.
    """
    at = at or timezone.now()
    actor = actor or Actor.agent(author)
    with transaction.atomic():
        ticket = ticket_create(
            customer=customer,
            subject=subject,
            channel=channel,
            actor=actor,
            initiator="outbound",
            queue=queue,
            topic=topic,
            priority=priority,
            at=at,
        )
        return ticket_reply_create(ticket=ticket, author=author, text=text, actor=actor, at=at, external_id=external_id)


@dataclass(frozen=True)
class AgentDraft:
    """What an agent typed on a ticket: a public reply (``reply``) or an internal note (``note``)."""

    kind: str
    text: str
    attachments: Sequence[InboundAttachment] = ()
    quote_history: bool = False
    # Keys of the files kept from the agent's unsent reply that go with a public reply (docs/drafts.md).
    kept_files: Sequence[str] = ()


def _kept_files_take(*, ticket: Ticket, author: User, keys: Sequence[str]) -> list[int]:
    """The ids of the author's kept files named by ``keys``; the ones not named are removed.

    Under the ticket's lock (taken first, the fixed order). AttachmentRejected
    for a key that is not one of them (removed meanwhile, or someone else's).
    """
    ticket_lock(ticket.pk)
    kept = draft_attachments_of(agent=author, ticket=ticket)
    wanted = set(keys)
    ids = list(kept.filter(key__in=wanted).values_list("pk", flat=True))
    if len(ids) != len(wanted):
        raise AttachmentRejected(
            _("A file kept from your unsent reply is no longer there; attach it again."), field="attachments"
        )
    unsent_attachments_remove(kept.exclude(pk__in=ids))
    return ids


def ticket_respond(
    *,
    ticket: Ticket,
    author: User,
    actor: Actor,
    draft: AgentDraft | None,
    changes: Mapping[str, Any],
    originals: Mapping[str, Any] | None = None,
    version: int | None = None,
    at: datetime | None = None,
    hold_seconds: int = 0,
    seen_message_id: int | None = None,
) -> Message | HeldReply | None:
    """The ticket page's one submit: the reply or note and the changed properties, in one
    transaction, all or nothing.

    ``changes`` holds only the fields the agent changed (as ``ticket_update``
    takes them); ``originals`` the values the page was loaded with, at
    ``version`` (see ``ticket_conflicts_check``). Under the
    row lock, a changed field that someone else changed since is refused with
    TicketConflict before anything is written; fields not in ``changes`` are
    not written, so a concurrent change to them stays. With a draft, a status
    change is applied after the message, as a reply's "then set status".
    Raises ApplicationError (conflict, empty text, rejected attachment,
    refused transition or assignee) with nothing written.

    With ``hold_seconds`` a public reply, its files included, is held for
    undo (``drafts.reply_hold``: a HeldReply is returned, its status change
    applied when it is released); ``seen_message_id`` refuses a reply written
    while the customer wrote again (CustomerWroteMeanwhile). A public reply
    takes the kept files it names (``draft.kept_files``) and removes the
    others kept for it. docs/drafts.md.
    """
    at = at or timezone.now()
    properties = dict(changes)
    status = properties.pop("status", None) if draft is not None else None
    with transaction.atomic():
        if originals:
            ticket_conflicts_check(ticket=ticket_lock(ticket.pk), changes=changes, originals=originals, version=version)
        if properties:
            ticket = ticket_update(ticket=ticket, actor=actor, at=at, **properties)
        if draft is None:
            return None
        kept: list[int] = []
        if draft.kind == "reply":
            kept = _kept_files_take(ticket=ticket, author=author, keys=draft.kept_files)
        if draft.kind == "reply" and hold_seconds > 0:
            from servicedesk.tickets.services.drafts import reply_hold

            return reply_hold(
                ticket=ticket,
                author=author,
                text=draft.text,
                quote_history=draft.quote_history,
                status=status,
                seen_message_id=seen_message_id,
                at=at,
                seconds=hold_seconds,
                attachments=draft.attachments,
                kept_attachments=kept,
            )
        # What the agent sent is no longer a draft (a held reply removes its own).
        ReplyDraft.objects.filter(agent=author, ticket=ticket, kind=draft.kind).delete()
        if draft.kind == "reply":
            return ticket_reply_create(
                ticket=ticket,
                author=author,
                text=draft.text,
                attachments=draft.attachments,
                status=status,
                actor=actor,
                at=at,
                quote_history=draft.quote_history,
                seen_message_id=seen_message_id,
                kept_attachments=kept,
            )
        return ticket_note_create(
            ticket=ticket,
            author=author,
            text=draft.text,
            attachments=draft.attachments,
            status=status,
            actor=actor,
            at=at,
        )
