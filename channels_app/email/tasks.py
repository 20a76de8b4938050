"""Celery tasks of the email channel: ids in, a service call. Any may run twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from celery import shared_task
from django.core.cache import cache

from channels_app.email.imap import mailbox_poll
from channels_app.email.models import MailAccount
from servicedesk.core.enqueue import task_enqueue

log = logging.getLogger(__name__)

# Far longer than a poll's time budget (SERVICEDESK_EMAIL["IMAP_POLL_SECONDS"]);
# a poller that dies holding the lock blocks its account for at most this long.
POLL_LOCK_SECONDS = 600


class PollLockUnavailable(Exception):
    """The cache that holds the poll locks cannot be reached."""


def poll_lock_key(account_id: int) -> str:
    return f"email:mailbox-poll:{account_id}"


@contextmanager
def poll_lock(account_id: int) -> Iterator[bool]:
    """Hold the account's poll lock for the block: True, or False while another poller holds it.

    Shared by the beat's task and the IDLE watcher (``idle.py``). Raises
    PollLockUnavailable when the cache cannot be reached. The lock saves
    duplicate work only: two polls at once still store every message once.
    """
    key = poll_lock_key(account_id)
    token = uuid.uuid4().hex
    try:
        locked = cache.add(key, token, timeout=POLL_LOCK_SECONDS)
    except Exception as exc:
        raise PollLockUnavailable(str(exc)) from exc
    if not locked:
        yield False
        return
    try:
        yield True
    finally:
        _poll_lock_release(key, token)


@shared_task(name="email.mailboxes_poll")
def mailboxes_poll_task() -> int:
    """Enqueue one poll per active mail account (run every minute by beat).

    Returns how many were enqueued: with the broker unreachable it logs and
    stops, and the next minute's run polls every account again.
    """
    ids = list(MailAccount.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    enqueued = 0
    for pk in ids:
        if not task_enqueue(mailbox_poll_task, pk):
            break
        enqueued += 1
    return enqueued


@shared_task(name="email.mailbox_poll")
def mailbox_poll_task(account_id: int) -> dict[str, object]:
    """Poll one account unless another poller of it is running.

    One poll drains the mailbox within its time budget (see
    channels_app/email/imap.py); what the budget leaves waits for the next
    minute's run. With the cache that holds the lock unreachable (Redis down)
    the poll is skipped with a warning in the log, and the next minute's run
    tries again; mail waits on the server.
    """
    try:
        with poll_lock(account_id) as locked:
            if not locked:
                return {"account_id": account_id, "skipped": "another poll of this account is running"}
            account = MailAccount.objects.filter(pk=account_id, is_active=True).first()
            if account is None:
                return {"account_id": account_id, "skipped": "no active account with this id"}
            return mailbox_poll(account=account).as_dict()
    except PollLockUnavailable:
        log.warning("Mailbox poll of account %s skipped: the lock cache is unreachable", account_id, exc_info=True)
        return {"account_id": account_id, "skipped": "the lock cache is unreachable"}


def _poll_lock_release(key: str, token: str) -> None:
    """Release the lock if it is still ours; a cache gone meanwhile lets it expire on its own."""
    try:
        if cache.get(key) == token:
            cache.delete(key)
    except Exception:
        log.warning("Mailbox poll lock %s not released: the cache is unreachable", key, exc_info=True)
