"""Idempotency-Key on the API: the same key and the same request give the first result; the same key
with another request is refused (422); two requests with one key at once have one effect.

The key is stored with a digest of the request it was first used with
(method, path and canonical body) and the message that request wrote, in
the same transaction as the write. Nothing is inferred from timestamps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.models import IdempotencyKey, Message

IDEMPOTENCY_HEADER = "Idempotency-Key"


class IdempotencyKeyReused(ApplicationError):
    """The key was first used with another request: repeating it cannot mean this one."""

    status_code = 422


def _canonical(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "size": value.size, "sha256": digest.hexdigest()}
    if hasattr(value, "lists"):  # a QueryDict: every value of every field
        return {key: [_canonical(v) for v in values] for key, values in value.lists()}
    if isinstance(value, dict):
        return {str(key): _canonical(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_digest(*, method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, the path and the body as canonical JSON (keys sorted), so the same
    request sent again, its keys in another order, has the same digest."""
    canonical = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


@dataclass
class IdempotentRequest:
    """``replay``: the message the first request with this key wrote (answer with it, write nothing).
    Otherwise the caller writes and sets ``message``, which is stored with the key."""

    replay: Message | None = None
    message: Message | None = None
    _record: IdempotencyKey | None = field(default=None, repr=False)


def _claim(*, user: Any, key: str, digest: str) -> tuple[IdempotencyKey, bool]:
    """The key's row, inserted by this call (True) or by an earlier request (False).

    A concurrent request holding the same key makes the insert wait until it
    commits (then the row is read) or rolls back (then this insert wins).
    """
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, request_digest=digest), True
    except IntegrityError:
        return IdempotencyKey.objects.select_related("message__ticket").get(user=user, key=key), False


@contextmanager
def idempotent_request(*, user: Any, key: str | None, digest: str) -> Iterator[IdempotentRequest]:
    """Run one API write under ``key`` (None: no key, nothing recorded).

    Opens a transaction around the caller's write, so the key, its digest and
    the message are committed together or not at all (a refused request
    leaves the key unused). Raises IdempotencyKeyReused (422) when the key was
    first used with another method, path or body. Idempotency key: (user, key).
    """
    if key is None:
        yield IdempotentRequest()
        return
    with transaction.atomic():
        record, created = _claim(user=user, key=key, digest=digest)
        if not created and record.request_digest != digest:
            raise IdempotencyKeyReused(
                _(
                    "This Idempotency-Key was already used with a different request (method, address or body). "
                    "Send the same request to repeat it, or use a new key for a new request."
                ),
                field=IDEMPOTENCY_HEADER,
            )
        handle = IdempotentRequest(replay=None if created else record.message, _record=record)
        yield handle
        if handle.message is not None and record.message_id != handle.message.pk:
            record.message = handle.message
            record.save(update_fields=["message"])
