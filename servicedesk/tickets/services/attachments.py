"""Attachment checks and storage: generated keys, size and type limits."""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import secrets
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.core.text import clean_filename
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.locks import rows_lock, ticket_lock
from servicedesk.tickets.models import Attachment, DroppedAttachment, HeldReply, Message, Ticket

# Leading bytes of the binary types we accept; a file claiming one of these
# types must start with one of its signatures.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "application/zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/msword": (b"\xd0\xcf\x11\xe0",),
    "application/vnd.ms-excel": (b"\xd0\xcf\x11\xe0",),
}


class AttachmentRejected(ApplicationError):
    pass


def attachment_content_type(filename: str, content: bytes) -> str:
    """The type a file really is, judged by its name and checked against its first bytes."""
    guessed = mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"
    signatures = _SIGNATURES.get(guessed)
    if signatures is not None and not content.startswith(signatures):
        return "application/octet-stream"
    if guessed.startswith("text/") and b"\x00" in content[:4096]:
        return "application/octet-stream"
    return guessed


def _attachment_problem(f: InboundAttachment, content_type: str) -> str | None:
    """Why a file may not be kept (``size`` or ``type``), or None when it may."""
    if len(f.content) > settings.SERVICEDESK["ATTACHMENT_MAX_BYTES"]:
        return DroppedAttachment.SIZE
    if content_type not in settings.SERVICEDESK["ATTACHMENT_ALLOWED_TYPES"]:
        return DroppedAttachment.TYPE
    return None


def attachments_check(files: Sequence[InboundAttachment], *, field: str = "attachments") -> list[InboundAttachment]:
    """Check count, size and type against settings; return them with clean names and real types.

    For senders who are there to fix their upload (web form, portal, API,
    agents): raises AttachmentRejected naming the first file that fails.
    Writes nothing. Mail uses ``attachments_screen`` instead.
    """
    conf = settings.SERVICEDESK
    if len(files) > conf["ATTACHMENT_MAX_COUNT"]:
        raise AttachmentRejected(
            _("At most %(n)d files can be attached.") % {"n": conf["ATTACHMENT_MAX_COUNT"]}, field=field
        )
    checked = []
    for f in files:
        name = clean_filename(f.filename)
        content_type = attachment_content_type(name, f.content)
        problem = _attachment_problem(f, content_type)
        if problem is not None:
            raise AttachmentRejected(DroppedAttachment(filename=name, reason=problem).message(), field=field)
        checked.append(
            InboundAttachment(filename=name, content_type=content_type, content=f.content, content_id=f.content_id)
        )
    return checked


def attachments_screen(
    files: Sequence[InboundAttachment],
) -> tuple[list[InboundAttachment], list[DroppedAttachment]]:
    """The same checks as ``attachments_check``, file by file, for senders who
    are not there to fix anything (mail): the files that pass (clean names,
    real types) and, for the others, their name and why they were dropped.
    Files beyond the count limit are dropped in their order. Writes nothing.
    """
    limit = settings.SERVICEDESK["ATTACHMENT_MAX_COUNT"]
    kept: list[InboundAttachment] = []
    dropped: list[DroppedAttachment] = []
    for f in files:
        name = clean_filename(f.filename)
        content_type = attachment_content_type(name, f.content)
        problem = _attachment_problem(f, content_type)
        if problem is None and len(kept) >= limit:
            problem = DroppedAttachment.COUNT
        if problem is not None:
            dropped.append(DroppedAttachment(filename=name, reason=problem))
            continue
        kept.append(
            InboundAttachment(filename=name, content_type=content_type, content=f.content, content_id=f.content_id)
        )
    return kept, dropped


def attachment_store(
    *,
    ticket: Ticket,
    message: Message | None,
    upload: InboundAttachment,
    saved: list[str],
    held_reply: HeldReply | None = None,
    draft_agent: Any = None,
) -> Attachment:
    """Write the file under a generated key and record it. ``saved`` collects the
    storage names so a caller can remove them if its transaction rolls back.
    Without a message, the file of an unsent reply (docs/drafts.md): held with
    ``held_reply``, or kept for ``draft_agent``'s next reply; only that
    agent's until it is sent."""
    key = secrets.token_urlsafe(24)
    attachment = Attachment(
        ticket=ticket,
        message=message,
        held_reply=held_reply,
        draft_agent_id=held_reply.agent_id if held_reply is not None else getattr(draft_agent, "pk", None),
        key=key,
        filename=clean_filename(upload.filename),
        content_type=upload.content_type,
        size=len(upload.content),
        sha256=hashlib.sha256(upload.content).hexdigest(),
        content_id=upload.content_id[:255],
    )
    attachment.file.save(key, ContentFile(upload.content), save=False)
    saved.append(attachment.file.name)
    attachment.save(force_insert=True)
    return attachment


def stored_files_remove(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            default_storage.delete(name)


def draft_attachments_of(*, agent: Any, ticket: Ticket) -> QuerySet[Attachment]:
    """The files ``agent`` kept on ``ticket`` from a reply they did not send (an undo, a
    returned reply put back, a collision), waiting for their next public reply."""
    return Attachment.objects.filter(
        ticket=ticket, draft_agent=agent, message__isnull=True, held_reply__isnull=True
    ).order_by("pk")


def attachments_count_check(count: int) -> None:
    """AttachmentRejected when one message would carry more than ATTACHMENT_MAX_COUNT files."""
    limit = settings.SERVICEDESK["ATTACHMENT_MAX_COUNT"]
    if count > limit:
        raise AttachmentRejected(_("At most %(n)d files can be attached.") % {"n": limit}, field="attachments")


def unsent_attachments_send(*, ticket: Ticket, message: Message, agent: Any, ids: Sequence[int]) -> None:
    """Attach files of ``agent``'s unsent reply (held or kept, docs/drafts.md) to ``message``.

    Call in the transaction that writes ``message``, under the ticket's lock.
    Raises AttachmentRejected when one of them is no longer the agent's to send
    (removed meanwhile, or of another ticket or agent); the caller's
    transaction then writes nothing.
    """
    wanted = set(ids)
    if not wanted:
        return
    moved = Attachment.objects.filter(pk__in=wanted, ticket=ticket, draft_agent=agent, message__isnull=True).update(
        message=message, held_reply=None, draft_agent=None
    )
    if moved != len(wanted):
        raise AttachmentRejected(
            _("A file kept from your unsent reply is no longer there; attach it again."), field="attachments"
        )


def unsent_attachments_hold(*, ticket: Ticket, held: HeldReply, ids: Sequence[int]) -> None:
    """Hold files ``held``'s agent kept from an earlier unsent reply with ``held`` (docs/drafts.md).

    Call in the transaction that stores ``held``, under the ticket's lock.
    AttachmentRejected when one of them is no longer theirs (nothing is held then).
    """
    wanted = set(ids)
    if not wanted:
        return
    moved = draft_attachments_of(agent=held.agent_id, ticket=ticket).filter(pk__in=wanted).update(held_reply=held)
    if moved != len(wanted):
        raise AttachmentRejected(
            _("A file kept from your unsent reply is no longer there; attach it again."), field="attachments"
        )


def unsent_attachments_remove(attachments: QuerySet[Attachment]) -> int:
    """Delete the rows of files no message carries and, once that commits, their files.

    Only rows without a message are touched, so a file that was sent is never
    removed here. Returns how many were removed.
    """
    with transaction.atomic():
        # Locked, so a send that takes one of them meanwhile waits and then finds it gone.
        rows = rows_lock(attachments.filter(message__isnull=True))
        if not rows:
            return 0
        Attachment.objects.filter(pk__in=[row.pk for row in rows]).delete()
        names = [row.file.name for row in rows if row.file]
        transaction.on_commit(lambda: stored_files_remove(names))
    return len(rows)


def message_attachment_add(*, message: Message, upload: InboundAttachment) -> Attachment:
    """Attach a file to a message already stored (demo data; history without files of its own).

    The file is checked like any upload (AttachmentRejected) before anything
    is written. Idempotent on (message, file name, SHA-256): the same file
    attached again returns the first attachment.
    """
    checked = attachments_check([upload])[0]
    digest = hashlib.sha256(checked.content).hexdigest()
    saved: list[str] = []
    try:
        with transaction.atomic():
            ticket = ticket_lock(message.ticket_id)
            existing = Attachment.objects.filter(message=message, filename=checked.filename, sha256=digest).first()
            if existing is not None:
                return existing
            return attachment_store(ticket=ticket, message=message, upload=checked, saved=saved)
    except BaseException:
        stored_files_remove(saved)
        raise
