"""Celery tasks of the email channel: ids in, a service call. Any may run twice."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.core.cache import cache

from channels_app.email.imap import mailbox_poll
from channels_app.email.models import MailAccount

# Longer than any poll should take; a poller that dies holding the lock
# blocks its account for at most this long.
POLL_LOCK_SECONDS = 600


def poll_lock_key(account_id: int) -> str:
    return f"email:mailbox-poll:{account_id}"


@shared_task(name="email.mailboxes_poll")
def mailboxes_poll_task() -> int:
    """Enqueue one poll per active mail account (run every minute by beat)."""
    ids = list(MailAccount.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    for pk in ids:
        mailbox_poll_task.delay(pk)
    return len(ids)


@shared_task(name="email.mailbox_poll")
def mailbox_poll_task(account_id: int) -> dict[str, object]:
    """Poll one account unless another poller of it is running.

    The lock saves duplicate work only: two polls at once still store every
    message once (see channels_app/email/imap.py).
    """
    key = poll_lock_key(account_id)
    token = uuid.uuid4().hex
    if not cache.add(key, token, timeout=POLL_LOCK_SECONDS):
        return {"account_id": account_id, "skipped": "another poll of this account is running"}
    try:
        account = MailAccount.objects.filter(pk=account_id, is_active=True).first()
        if account is None:
            return {"account_id": account_id, "skipped": "no active account with this id"}
        return mailbox_poll(account=account).as_dict()
    finally:
        if cache.get(key) == token:
            cache.delete(key)
