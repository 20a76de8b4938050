"""Attachment checks and storage: generated keys, size and type limits."""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import secrets
from collections.abc import Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.core.text import clean_filename
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import Attachment, DroppedAttachment, Message, Ticket

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
    *, ticket: Ticket, message: Message | None, upload: InboundAttachment, saved: list[str]
) -> Attachment:
    """Write the file under a generated key and record it. ``saved`` collects the
    storage names so a caller can remove them if its transaction rolls back."""
    key = secrets.token_urlsafe(24)
    attachment = Attachment(
        ticket=ticket,
        message=message,
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
