"""Form pieces shared by every page that takes files: the help centre and the desk.

Uploads become checked ``InboundAttachment`` values at the edge, so the services
only ever see plain values.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.services.attachments import attachments_check


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one field name; cleans to a list (empty when none were sent)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        if not data:
            return []
        files = data if isinstance(data, list | tuple) else [data]
        single_clean = super().clean
        return [single_clean(item, initial) for item in files if item]


def uploads_to_attachments(uploads: list[UploadedFile]) -> list[InboundAttachment]:
    """Read uploads into checked ``InboundAttachment`` values (count, size, type).

    Reads at most one byte past the size limit of each file and no more files
    than one past the count limit, so an oversized upload never fills memory
    before it is refused. Raises ValidationError with the reason.
    """
    conf = settings.SERVICEDESK
    read_limit = conf["ATTACHMENT_MAX_BYTES"] + 1
    files = []
    for upload in uploads[: conf["ATTACHMENT_MAX_COUNT"] + 1]:
        upload.seek(0)
        files.append(
            InboundAttachment(
                filename=upload.name or "",
                content_type=upload.content_type or "application/octet-stream",
                content=upload.read(read_limit),
            )
        )
    try:
        return attachments_check(files)
    except ApplicationError as exc:
        raise forms.ValidationError(exc.message) from None
