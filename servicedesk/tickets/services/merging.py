"""Merging a duplicate ticket into another, and splitting a message off into a new ticket.

A merge moves the source's conversation to the target (docs/merging.md): its
messages (customer messages, replies, internal notes, system messages) with
their attachments and @mentions, its sessions (the chats and calls the
channels keep, through the movers they register), its tags and its
followers. The source is closed and points to the target (``merged_into``),
so every reference to it (mail threading, signed links, the API, the desk
page) leads to the target through ``access.merge_follow``. Both tickets are
locked in id order, and each gets its event with what moved in ``after``.

A split moves one customer message (and its attachments) of a ticket to a new
ticket of the same customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.core.text import clean_line
from servicedesk.tickets import statuses
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import ticket_lock, tickets_lock
from servicedesk.tickets.models import (
    Attachment,
    Channel,
    Message,
    MessageKind,
    MessageMention,
    Queue,
    Session,
    Tag,
    Ticket,
    TicketEvent,
    TicketFollower,
)
from servicedesk.tickets.services.tickets import InvalidMerge, _sla_refresh, ticket_create, ticket_touch
from servicedesk.tickets.statuses import Status


class InvalidSplit(ApplicationError):
    pass


class MergeMover(Protocol):
    """Moves a channel's rows of one ticket to another (``dry_run``: only names them); their ids."""

    def __call__(self, *, source_id: int, target_id: int, dry_run: bool) -> list[int]: ...


# Filled by the channels when Django starts (their AppConfig.ready), so the domain
# moves a chat conversation or a call with its ticket without importing a channel.
_movers: dict[str, MergeMover] = {}


def merge_mover_register(name: str, mover: MergeMover) -> None:
    """Have ``mover`` move the rows it keeps under ``name`` ("chats", "calls") when a ticket is merged."""
    _movers[name] = mover


@dataclass
class MergeMoves:
    """What a merge moves from the source to the target (ids, tag names, agent ids)."""

    messages: list[int] = field(default_factory=list)
    notes: list[int] = field(default_factory=list)
    attachments: list[int] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)
    channel_rows: dict[str, list[int]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    followers: list[int] = field(default_factory=list)
    mentions: list[int] = field(default_factory=list)
    # An acknowledgement stays with its ticket when the target has one of its own.
    kept: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "notes": self.notes,
            "attachments": self.attachments,
            "sessions": self.sessions,
            **self.channel_rows,
            "tags": self.tags,
            "followers": self.followers,
            "mentions": self.mentions,
        }


@dataclass
class MergePreview:
    """What merging ``source`` into ``target`` would move, for the page that asks to confirm it."""

    source: Ticket
    target: Ticket
    moves: MergeMoves
    thread: list[Message]
    attachments: list[Attachment]


def merge_refusal_check(*, source: Ticket, target: Ticket) -> None:
    """Raise InvalidMerge (field ``target``) when ``source`` may not be merged into ``target``."""
    if source.pk == target.pk:
        raise InvalidMerge(_("A ticket cannot be merged into itself."), field="target")
    if source.merged_into_id:
        raise InvalidMerge(_("This ticket was already merged into another one."), field="target")
    if target.merged_into_id:
        raise InvalidMerge(_("The target ticket was itself merged into another one."), field="target")
    if target.is_deleted:
        raise InvalidMerge(_("The target ticket was deleted."), field="target")
    if source.customer_id != target.customer_id:
        raise InvalidMerge(_("Only tickets of the same customer can be merged."), field="target")


def _moves_find(source: Ticket, target: Ticket, *, dry_run: bool) -> MergeMoves:
    moves = MergeMoves()
    target_has_ack = Message.objects.filter(ticket=target, purpose=Message.Purpose.ACKNOWLEDGEMENT).exists()
    for pk, kind, purpose in (
        Message.objects.filter(ticket=source).order_by("created_at", "id").values_list("pk", "kind", "purpose")
    ):
        if purpose == Message.Purpose.ACKNOWLEDGEMENT and target_has_ack:
            moves.kept.append(pk)
        elif kind == MessageKind.INTERNAL:
            moves.notes.append(pk)
        else:
            moves.messages.append(pk)
    moves.attachments = list(
        Attachment.objects.filter(ticket=source)
        .exclude(message_id__in=moves.kept)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    moves.sessions = list(Session.objects.filter(ticket=source).order_by("pk").values_list("pk", flat=True))
    for name, mover in sorted(_movers.items()):
        moves.channel_rows[name] = mover(source_id=source.pk, target_id=target.pk, dry_run=dry_run)
    target_tags = set(target.tags.values_list("name", flat=True))
    moves.tags = sorted(set(source.tags.values_list("name", flat=True)) - target_tags)
    target_followers = set(TicketFollower.objects.filter(ticket=target).values_list("user_id", flat=True))
    moves.followers = sorted(
        set(TicketFollower.objects.filter(ticket=source).values_list("user_id", flat=True)) - target_followers
    )
    moves.mentions = list(MessageMention.objects.filter(ticket=source).order_by("pk").values_list("pk", flat=True))
    return moves


def ticket_merge_preview(*, source: Ticket, target: Ticket) -> MergePreview:
    """What ``ticket_merge`` would move now; raises InvalidMerge as it would. Writes nothing."""
    merge_refusal_check(source=source, target=target)
    moves = _moves_find(source, target, dry_run=True)
    moved = moves.messages + moves.notes
    thread = list(Message.objects.filter(pk__in=moved).select_related("author_user", "author_customer"))
    thread.sort(key=lambda m: (m.created_at, m.pk))
    # Files of an agent's unsent reply move too, but are theirs alone to see (docs/drafts.md).
    attachments = list(Attachment.objects.filter(pk__in=moves.attachments, draft_agent__isnull=True).order_by("pk"))
    return MergePreview(source=source, target=target, moves=moves, thread=thread, attachments=attachments)


def _moved_off(ticket: Ticket) -> Coalesce:
    """``moved_from`` of a row moving off ``ticket``: the ticket it was first moved off, kept when it moves again.

    The reports count a moved message or session on that ticket, so a
    report as of any instant reads the same rows (docs/metrics.md#merges).
    """
    return Coalesce(models.F("moved_from"), models.Value(ticket.pk), output_field=models.IntegerField())


def _moves_apply(source: Ticket, target: Ticket, moves: MergeMoves, at: datetime) -> None:
    moved = moves.messages + moves.notes
    Message.objects.filter(pk__in=moved).update(ticket=target, moved_from=_moved_off(source))
    Attachment.objects.filter(pk__in=moves.attachments).update(ticket=target)
    MessageMention.objects.filter(pk__in=moves.mentions).update(ticket=target)
    Session.objects.filter(pk__in=moves.sessions).update(ticket=target, moved_from=_moved_off(source))
    if moves.tags:
        target.tags.add(*Tag.objects.filter(name__in=moves.tags))
    # The unique (ticket, user) decides between this and an agent following the target meanwhile.
    TicketFollower.objects.bulk_create(
        [TicketFollower(ticket=target, user_id=user_id, created_at=at) for user_id in moves.followers],
        ignore_conflicts=True,
    )


def merge_notice_text(ticket: Ticket, *, source_reference: str) -> str:
    """The public reply that tells the customer of a merge, in the ticket's language (en, zh-hans)."""
    language = ticket.language or ticket.customer.language or settings.LANGUAGE_CODE
    with translation.override(language):
        return _(
            "Your request %(source)s was about the same matter as this one, so we have combined them: "
            "we will continue here, under %(target)s. You do not need to do anything."
        ) % {"source": source_reference, "target": ticket.reference}


def ticket_merge(
    *,
    source: Ticket,
    target: Ticket,
    actor: Actor,
    at: datetime | None = None,
    notify_customer: bool = False,
) -> Ticket:
    """Merge ``source`` into ``target``: its conversation moves to the target, and it is closed
    and points to the target (docs/merging.md).

    One transaction under both tickets' row locks (id order, so two merges at
    once in opposite directions cannot deadlock: the second finds its target
    merged and is refused). Messages, notes, attachments, mentions, sessions
    (and the channels' rows through the registered movers), tags and
    followers move; the source gets a ``merged`` event and the target a
    ``merged_in`` one, each with the other's reference and what moved in
    ``after``. ``notify_customer``: a public reply on the target tells the
    customer, delivered through the reply service. Imported history moves
    nothing (the import places its messages itself).

    Idempotent for the same pair (a repeat returns the target, writing
    nothing). Raises InvalidMerge (field ``target``) with nothing written:
    into itself, already merged, a target merged or deleted, different customers.
    """
    at = at or timezone.now()
    if source.pk == target.pk:
        raise InvalidMerge(_("A ticket cannot be merged into itself."), field="target")
    with transaction.atomic():
        locked = tickets_lock(source.pk, target.pk)
        source, target = locked[source.pk], locked[target.pk]
        if source.merged_into_id == target.pk:
            return target
        merge_refusal_check(source=source, target=target)
        moves = MergeMoves() if actor.source == "import" else _moves_find(source, target, dry_run=False)
        _moves_apply(source, target, moves, at)
        if source.status != Status.CLOSED:
            before = source.status
            source.status = Status.CLOSED
            fields = ["status"]
            if before not in statuses.SOLVED_STATUSES:
                source.solved_at = at
                fields.append("solved_at")
            source.save(update_fields=fields)
            event_record(
                ticket=source, kind=TicketEvent.Kind.STATUS, actor=actor, at=at, before=before, after=Status.CLOSED
            )
        source.merged_into = target
        ticket_touch(source, at, ["merged_into"])
        moved = moves.as_json()
        event_record(
            ticket=source,
            kind=TicketEvent.Kind.MERGED,
            actor=actor,
            at=at,
            after={"reference": target.reference, **moved},
        )
        _sla_refresh(source, actor, at)
        target_fields: list[str] = []
        earlier_reply = source.first_reply_at and (
            target.first_reply_at is None or source.first_reply_at < target.first_reply_at
        )
        if earlier_reply and moves.messages:
            target.first_reply_at = source.first_reply_at
            target_fields.append("first_reply_at")
        ticket_touch(target, at, target_fields)
        event_record(
            ticket=target,
            kind=TicketEvent.Kind.MERGED_IN,
            actor=actor,
            at=at,
            after={"reference": source.reference, **moved},
        )
        if notify_customer:
            from servicedesk.tickets.services.replies import ticket_reply_create

            ticket_reply_create(
                ticket=target,
                author=actor.user,
                text=merge_notice_text(target, source_reference=source.reference or ""),
                actor=actor,
                at=at,
            )
            target.refresh_from_db()
    return target


def merge_reference(value: Any) -> str:
    """The other ticket's reference in a merge or split event's value (a reference, or a dict naming it)."""
    if isinstance(value, dict):
        value = value.get("reference")
    return value if isinstance(value, str) else ""


# --- Split ----------------------------------------------------------------------


def split_subject_default(message: Message) -> str:
    """A new ticket's subject taken from a message: its first non-empty line, shortened."""
    for line in (message.shown_text or message.text or "").splitlines():
        line = clean_line(line, max_length=120)
        if line:
            return line
    return ""


def split_refusal_check(*, ticket: Ticket, message: Message) -> None:
    """Raise InvalidSplit (field ``message``) when ``message`` may not be split off ``ticket``."""
    if ticket.merged_into_id:
        raise InvalidSplit(_("This ticket was merged into another one."), field="message")
    if message.ticket_id != ticket.pk:
        raise InvalidSplit(_("This message is not on this ticket."), field="message")
    if message.kind != MessageKind.PUBLIC_ENDUSER:
        raise InvalidSplit(_("Only a customer's message can be split into a new ticket."), field="message")
    # A ticket keeps at least one message of its customer: what it is about.
    others = Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_ENDUSER).exclude(pk=message.pk)
    if not others.exists():
        raise InvalidSplit(_("The only message of a ticket cannot be split off."), field="message")


def ticket_split(
    *,
    ticket: Ticket,
    message: Message,
    actor: Actor,
    subject: str = "",
    queue: Queue | None = None,
    at: datetime | None = None,
) -> Ticket:
    """Move a customer's ``message`` (and its attachments and mentions) off ``ticket`` into a new
    ticket of the same customer; the new ticket (docs/merging.md).

    The subject is ``subject``, else the message's first line, else the
    ticket's; the queue ``queue``, else the ticket's. The ticket gets a
    ``split`` event (``after``: the new reference, the message, its
    attachments), the new one a ``split_from`` event (``before``: the old
    reference and the message), both naming the message. Idempotent on the
    message: splitting it again off the same ticket answers the ticket it
    went to. Raises InvalidSplit (field ``message``) with nothing written: a
    merged ticket, an agent's reply or note, the ticket's only customer message.
    """
    at = at or timezone.now()
    with transaction.atomic():
        source = ticket_lock(ticket.pk)
        # Every move of this ticket's messages holds its lock, so the message stays where it is read.
        current = Message.objects.filter(pk=message.pk).first()
        if current is None:
            raise InvalidSplit(_("This message is not on this ticket."), field="message")
        if current.ticket_id != source.pk:
            earlier = TicketEvent.objects.filter(ticket=source, kind=TicketEvent.Kind.SPLIT, message=current).first()
            if earlier is not None:
                return Ticket.objects.get(pk=current.ticket_id)
        split_refusal_check(ticket=source, message=current)
        subject = clean_line(subject, max_length=300) or split_subject_default(current) or source.subject
        new = ticket_create(
            customer=source.customer,
            subject=subject,
            channel=current.channel if current.channel in Channel.values else source.channel,
            actor=actor,
            queue=queue or source.queue,
            topic=source.topic,
            priority=source.priority,
            language=source.language,
            at=at,
        )
        attachments = list(Attachment.objects.filter(message=current).order_by("pk").values_list("pk", flat=True))
        Message.objects.filter(pk=current.pk).update(ticket=new, moved_from=_moved_off(source))
        Attachment.objects.filter(pk__in=attachments).update(ticket=new)
        MessageMention.objects.filter(message=current).update(ticket=new)
        ticket_touch(source, at, [])
        event_record(
            ticket=source,
            kind=TicketEvent.Kind.SPLIT,
            actor=actor,
            at=at,
            after={"reference": new.reference, "message": current.pk, "attachments": attachments},
            message=current,
        )
        new = ticket_lock(new.pk)
        ticket_touch(new, at, [])
        event_record(
            ticket=new,
            kind=TicketEvent.Kind.SPLIT_FROM,
            actor=actor,
            at=at,
            before={"reference": source.reference, "message": current.pk, "attachments": attachments},
            message=current,
        )
    return new


__all__ = [
    "InvalidMerge",
    "InvalidSplit",
    "MergeMover",
    "MergeMoves",
    "MergePreview",
    "merge_mover_register",
    "merge_notice_text",
    "merge_reference",
    "merge_refusal_check",
    "split_refusal_check",
    "split_subject_default",
    "ticket_merge",
    "ticket_merge_preview",
    "ticket_split",
]
