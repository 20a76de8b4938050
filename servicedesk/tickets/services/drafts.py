"""Agents' reply drafts and replies held for undo (docs/drafts.md).

A draft is what one agent typed on one ticket, per kind (reply or note),
saved while they type; nobody else ever reads it. A public reply sent from
the ticket page is held for ``UNDO_SEND_SECONDS`` as a HeldReply: undone in
that window it goes back into the draft and nothing is written to the
ticket; afterwards ``held_reply_release`` writes it as the ticket's reply
(``ticket_reply_create``) and delivery starts. The reply's instant, the first
reply's included, is that release (docs/metrics.md#first-reply). Its files
are held with it (Attachment rows without a message) and go with it. A held
reply the release cannot send is returned to its agent beside their draft,
never over it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, Conflict, NotFound
from servicedesk.core.text import clean_text
from servicedesk.tickets.access import can_see_ticket, ticket_merge_target_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.locks import rows_lock, ticket_lock
from servicedesk.tickets.models import Attachment, DraftKind, HeldReply, Message, MessageKind, ReplyDraft, Ticket
from servicedesk.tickets.services.attachments import (
    attachment_store,
    attachments_check,
    attachments_count_check,
    draft_attachments_of,
    stored_files_remove,
    unsent_attachments_hold,
    unsent_attachments_remove,
)
from servicedesk.tickets.services.replies import customer_wrote_meanwhile_check, ticket_reply_create

log = logging.getLogger(__name__)

# As long as a reply may be (the ticket page's reply field).
DRAFT_MAX_LENGTH = 100_000
# The sweep leaves a held reply this long past its time to the task scheduled for it.
SWEEP_GRACE_SECONDS = 15
SWEEP_BATCH = 200


def undo_send_seconds() -> int:
    """How long a reply sent from the ticket page is held (0: not held)."""
    return max(0, int(settings.SERVICEDESK.get("UNDO_SEND_SECONDS", 0)))


def _kind_check(kind: str) -> str:
    if kind not in DraftKind.values:
        raise ApplicationError(_("Choose a public reply or an internal note."), field="kind")
    return kind


def _text_check(text: str) -> str:
    if len(text) > DRAFT_MAX_LENGTH:
        raise ApplicationError(
            _("Ensure this value has at most %(limit)d characters (it has %(length)d).")
            % {"limit": DRAFT_MAX_LENGTH, "length": len(text)},
            field="text",
        )
    return clean_text(text)


def reply_draft_save(
    *, agent: User, ticket: Ticket, kind: str, text: str, quote_history: bool = False, at: datetime | None = None
) -> ReplyDraft | None:
    """Store what ``agent`` typed on ``ticket`` as their ``kind`` draft, replacing the previous one.

    One row per (agent, ticket, kind), written by one upsert on that unique
    key, so two saves at once leave one draft. Text of only blanks removes
    the draft (None is returned). Raises ApplicationError (``kind``, ``text``
    over DRAFT_MAX_LENGTH) with nothing written. The caller checks that the
    agent may see the ticket.
    """
    _kind_check(kind)
    text = _text_check(text)
    if not text.strip():
        # Typing the box empty (or moving the text to the other kind) keeps the files kept for the reply.
        ReplyDraft.objects.filter(agent=agent, ticket=ticket, kind=kind).delete()
        return None
    at = at or timezone.now()
    ReplyDraft.objects.bulk_create(
        [ReplyDraft(agent=agent, ticket=ticket, kind=kind, text=text, quote_history=quote_history, updated_at=at)],
        update_conflicts=True,
        unique_fields=["agent", "ticket", "kind"],
        update_fields=["text", "quote_history", "updated_at"],
    )
    return ReplyDraft.objects.get(agent=agent, ticket=ticket, kind=kind)


def reply_draft_discard(*, agent: User, ticket: Ticket, kind: str) -> bool:
    """Remove ``agent``'s ``kind`` draft on ``ticket``, and with the reply draft the files kept
    for it (rows at once, files after commit); True when there was something to remove."""
    _kind_check(kind)
    with transaction.atomic():
        deleted, _rows = ReplyDraft.objects.filter(agent=agent, ticket=ticket, kind=kind).delete()
        if kind == DraftKind.REPLY:
            deleted += unsent_attachments_remove(draft_attachments_of(agent=agent, ticket=ticket))
    return bool(deleted)


def draft_attachments_keep(*, agent: User, ticket: Ticket, attachments: Sequence[InboundAttachment]) -> int:
    """Keep uploaded files for ``agent``'s next public reply on ``ticket`` (a reply the
    collision hold refused keeps its files this way); returns how many.

    Checked as any upload, and the count with the files kept already
    (AttachmentRejected, nothing written, no file left). The caller checks
    that the agent may see the ticket.
    """
    files = attachments_check(attachments)
    if not files:
        return 0
    saved: list[str] = []
    try:
        with transaction.atomic():
            locked = ticket_lock(ticket.pk)
            attachments_count_check(len(files) + draft_attachments_of(agent=agent, ticket=locked).count())
            for upload in files:
                attachment_store(ticket=locked, message=None, upload=upload, saved=saved, draft_agent=agent)
    except BaseException:
        stored_files_remove(saved)
        raise
    return len(files)


def reply_drafts_of(*, agent: User, ticket: Ticket) -> dict[str, ReplyDraft]:
    """``agent``'s own drafts on ``ticket`` by kind (never another agent's)."""
    return {draft.kind: draft for draft in ReplyDraft.objects.filter(agent=agent, ticket=ticket)}


def held_replies_of(*, agent: User, ticket: Ticket) -> list[HeldReply]:
    """``agent``'s own replies on ``ticket`` still held, oldest first, with their files."""
    return list(
        HeldReply.objects.filter(agent=agent, ticket=ticket, returned_at__isnull=True)
        .prefetch_related("attachments")
        .order_by("send_after", "pk")
    )


def returned_replies_of(*, agent: User, ticket: Ticket) -> list[HeldReply]:
    """``agent``'s own replies on ``ticket`` that the release could not send, oldest first, with their files."""
    return list(
        HeldReply.objects.filter(agent=agent, ticket=ticket, returned_at__isnull=False)
        .prefetch_related("attachments")
        .order_by("returned_at", "pk")
    )


@dataclass(frozen=True)
class HeldReplyState:
    """What became of a reply its agent sent from a ticket page (``held_reply_state``).

    ``state``: ``held`` (still in its window, ``seconds`` left), ``sending`` (its window is
    over and the release has not run yet), ``sent``, ``returned`` (the release could not
    send it: ``reason``, on the ticket ``reference``) or ``undone`` (taken back into the
    reply box, from another tab)."""

    state: str
    seconds: int = 0
    reason: str = ""
    reference: str = ""


def held_reply_state(
    *, agent: User, held_id: int, ticket: Ticket, since: datetime, now: datetime | None = None
) -> HeldReplyState:
    """What became of ``agent``'s reply ``held_id``, sent from ``ticket`` at ``since`` (two queries at most).

    A held reply is a row until its release or its undo removes it. Once the row is
    gone, it was sent when ``agent`` has a public reply on ``ticket`` written at or
    after ``since`` (the release writes it then, never earlier), else it was undone. Only
    ``agent``'s own rows are read: another agent's id is, to them, a reply that is gone."""
    now = now or timezone.now()
    held = HeldReply.objects.filter(pk=held_id, agent=agent).select_related("ticket").first()
    if held is not None:
        if held.returned_at is not None:
            return HeldReplyState(
                "returned", reason=held.get_returned_reason_display(), reference=held.ticket.reference or ""
            )
        left = (held.send_after - now).total_seconds()
        if left > 0:
            return HeldReplyState("held", seconds=int(left + 0.999))
        return HeldReplyState("sending")
    sent = Message.objects.filter(
        ticket=ticket, author_user=agent, kind=MessageKind.PUBLIC_AGENT, created_at__gte=since
    ).exists()
    return HeldReplyState("sent" if sent else "undone")


def reply_hold(
    *,
    ticket: Ticket,
    author: User,
    text: str,
    quote_history: bool = False,
    status: str | None = None,
    seen_message_id: int | None = None,
    at: datetime | None = None,
    seconds: int | None = None,
    attachments: Sequence[InboundAttachment] = (),
    kept_attachments: Sequence[int] = (),
) -> HeldReply:
    """Hold a public reply for ``seconds`` (UNDO_SEND_SECONDS by default) before it is written and sent.

    Checks what ``ticket_reply_create`` would refuse at once (empty text,
    rejected or too many files, a merged ticket, a customer message newer
    than ``seen_message_id``: CustomerWroteMeanwhile) under the ticket's row
    lock, then stores the held reply with its files (``attachments`` new
    uploads, ``kept_attachments`` ids of files the agent kept from an earlier
    unsent reply) and removes the agent's reply draft, in one transaction;
    on a refusal nothing is written and no file is left. After commit the
    release task is scheduled for ``send_after``; if it is lost,
    ``held_replies_release_due`` releases it.
    """
    at = at or timezone.now()
    seconds = undo_send_seconds() if seconds is None else seconds
    text = _text_check(text)
    if not text.strip():
        raise ApplicationError(_("The message is empty."), field="text")
    files = attachments_check(attachments)
    attachments_count_check(len(files) + len(set(kept_attachments)))
    saved: list[str] = []
    try:
        with transaction.atomic():
            locked = ticket_lock(ticket.pk)
            if locked.merged_into_id:
                raise ApplicationError(_("This ticket was merged into another one; write there."))
            customer_wrote_meanwhile_check(ticket=locked, seen_message_id=seen_message_id)
            held = HeldReply.objects.create(
                agent=author,
                ticket=locked,
                text=text,
                quote_history=quote_history,
                status_after=status or "",
                created_at=at,
                send_after=at + timedelta(seconds=seconds),
            )
            unsent_attachments_hold(ticket=locked, held=held, ids=kept_attachments)
            for upload in files:
                attachment_store(ticket=locked, message=None, upload=upload, saved=saved, held_reply=held)
            ReplyDraft.objects.filter(agent=author, ticket=locked, kind=DraftKind.REPLY).delete()
            held_id = held.pk
            transaction.on_commit(lambda: _release_enqueue(held_id, seconds))
    except BaseException:
        stored_files_remove(saved)
        raise
    return held


def _release_enqueue(held_id: int, countdown: float) -> None:
    """After commit; with the broker down the sweep (``tickets.held_replies_release_due``) releases it."""
    from servicedesk.tickets import tasks

    task_enqueue(tasks.held_reply_release_task, held_id, countdown=countdown)


def held_reply_undo(*, held_id: int, ticket: Ticket, agent: User, now: datetime | None = None) -> ReplyDraft:
    """Take a held reply back into ``agent``'s reply draft before its window ends, or a
    returned one (``held_reply_release`` could not send it) at any time.

    Only the agent who sent it, on its ticket, may (NotFound otherwise). Under the held row's
    lock: if the window has passed, or the release took it first, Conflict
    ("already sent") and nothing changes; else the held reply is removed and
    its text is put in front of whatever the reply draft holds now, so nothing
    typed since is lost. Its files stay, kept for the agent's next public
    reply (``draft_attachments_of``). The release takes the same row lock, so
    exactly one of the two wins.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = rows_lock(HeldReply.objects.filter(pk=held_id, ticket=ticket, agent=agent))
        if not rows:
            if HeldReply.objects.filter(pk=held_id).exclude(ticket=ticket, agent=agent).exists():
                raise NotFound(_("Not found."))
            raise Conflict(_("Too late to undo: the reply was sent."))
        held = rows[0]
        if held.returned_at is None and held.send_after <= now:
            raise Conflict(_("Too late to undo: the reply was sent."))
        Attachment.objects.filter(held_reply=held).update(held_reply=None, ticket=held.ticket_id)
        held.delete()
        current = ReplyDraft.objects.filter(agent=agent, ticket_id=held.ticket_id, kind=DraftKind.REPLY).first()
        text = held.text if current is None else f"{held.text}\n\n{current.text}"
        draft = reply_draft_save(
            agent=agent,
            ticket=held.ticket,
            kind=DraftKind.REPLY,
            text=text[:DRAFT_MAX_LENGTH],
            quote_history=held.quote_history,
            at=now,
        )
    assert draft is not None  # the held text was not empty
    return draft


def held_reply_discard(*, held_id: int, ticket: Ticket, agent: User) -> None:
    """Remove a returned reply (one the release could not send) of ``agent`` on ``ticket``,
    with its files (rows at once, files after commit).

    Only its agent may, and only once it was returned (a reply still held is
    undone instead): NotFound otherwise, with nothing changed.
    """
    with transaction.atomic():
        rows = rows_lock(HeldReply.objects.filter(pk=held_id, ticket=ticket, agent=agent, returned_at__isnull=False))
        if not rows:
            raise NotFound(_("Not found."))
        unsent_attachments_remove(Attachment.objects.filter(held_reply=rows[0]))
        rows[0].delete()


def held_reply_release(*, held_id: int, now: datetime | None = None) -> Message | None:
    """Write a held reply whose window has passed as the ticket's reply, with its files, delivered after commit.

    At most once: under the ticket's lock and then the held row's, the row is
    read and removed in the transaction that writes the message; a second call
    (the task run twice, the sweep) finds nothing and returns None, as does a
    call before ``send_after`` (nothing changes). The reply's instant is
    ``now``. The status asked for with it is applied if the ticket may still
    move there, else the reply goes alone.

    A reply that cannot be sent (its ticket was merged or deleted meanwhile,
    its agent may no longer see the ticket, or the ticket refuses it) is not
    written: it is returned (``returned_at``, ``returned_reason``) with its
    files, on the ticket it was merged into when the agent may see that one,
    and the agent puts it back into the reply box or discards it. Their
    reply draft, typed since, is never touched. None is returned.
    """
    now = now or timezone.now()
    ticket_id = (
        HeldReply.objects.filter(pk=held_id, returned_at__isnull=True).values_list("ticket_id", flat=True).first()
    )
    if ticket_id is None:
        return None
    with transaction.atomic():
        ticket = ticket_lock(ticket_id)
        rows = rows_lock(
            HeldReply.objects.filter(pk=held_id, ticket_id=ticket_id, returned_at__isnull=True).select_related("agent")
        )
        if not rows or rows[0].send_after > now:
            return None
        held = rows[0]
        if ticket.merged_into_id:
            _held_reply_return(held, ticket, HeldReply.Returned.MERGED, now)
            return None
        if ticket.is_deleted:
            _held_reply_return(held, ticket, HeldReply.Returned.DELETED, now)
            return None
        if not can_see_ticket(held.agent, ticket):
            _held_reply_return(held, ticket, HeldReply.Returned.ACCESS, now)
            return None
        files = list(Attachment.objects.filter(held_reply=held).order_by("pk").values_list("pk", flat=True))
        actor = Actor.agent(held.agent, source="ui")

        def write(status: str | None) -> Message:
            with transaction.atomic():
                return ticket_reply_create(
                    ticket=ticket,
                    author=held.agent,
                    text=held.text,
                    actor=actor,
                    at=now,
                    status=status,
                    quote_history=held.quote_history,
                    kept_attachments=files,
                )

        message = None
        if held.status_after:
            try:
                message = write(held.status_after)
            except ApplicationError:
                log.info("Held reply %s: status %s no longer applies; sent without it", held_id, held.status_after)
        if message is None:
            try:
                message = write(None)
            except ApplicationError as exc:
                log.warning("Held reply %s was not sent (%s); it is returned to its agent", held_id, exc.message)
                _held_reply_return(held, ticket, HeldReply.Returned.REFUSED, now)
                return None
        held.delete()
        return message


def _held_reply_return(held: HeldReply, ticket: Ticket, reason: str, now: datetime) -> None:
    """Keep a held reply that cannot be sent for its agent, beside (never over) their draft.

    It goes to the ticket ``ticket`` was merged into when the agent may see
    that one, so it shows where they now work; its files go along.
    """
    destination = ticket
    if ticket.merged_into_id:
        target = ticket_merge_target_for(held.agent, ticket)
        if target is not None and not target.is_deleted:
            destination = target
    held.ticket = destination
    held.returned_at = now
    held.returned_reason = reason
    held.save(update_fields=["ticket", "returned_at", "returned_reason"])
    Attachment.objects.filter(held_reply=held).update(ticket=destination)


def held_replies_release_due(*, now: datetime | None = None) -> int:
    """Release the held replies whose task was lost: due more than SWEEP_GRACE_SECONDS ago.

    Each through ``held_reply_release``, so one released meanwhile by its
    task is skipped. Returns how many were written as replies.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    ids = list(
        HeldReply.objects.filter(send_after__lte=cutoff, returned_at__isnull=True)
        .order_by("send_after", "pk")  # along held_reply_send_after
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    released = 0
    for held_id in ids:
        if held_reply_release(held_id=held_id, now=now) is not None:
            released += 1
    return released
