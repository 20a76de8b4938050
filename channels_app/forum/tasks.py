"""Celery tasks of the community forum: thin, ids in, one service each."""

from __future__ import annotations

from celery import shared_task

from .escalation import accept_reminders_send, staff_reply_record, topics_escalate_due
from .services import post_notify


@shared_task(name="forum.post_notify")
def post_notify_task(post_id: int, mentions_only: bool = False) -> int:
    """Mail a new post's followers and mentioned members (at most once each: ``Notice``'s unique key);
    ``mentions_only``: only the members an edited post mentions."""
    return post_notify(post_id=post_id, mentions_only=mentions_only)


@shared_task(name="forum.staff_reply_record")
def staff_reply_record_task(post_id: int) -> int | None:
    """Store a staff reply of an escalated topic on its ticket (once: the message's external id)."""
    message = staff_reply_record(post_id=post_id)
    return message.pk if message is not None else None


@shared_task(name="forum.topics_escalate_due")
def topics_escalate_due_task() -> int:
    """Beat, every minute: support questions past their target become tickets (once each)."""
    return topics_escalate_due()


@shared_task(name="forum.accept_reminders_send")
def accept_reminders_send_task() -> int:
    """Beat, hourly: ask authors of answered questions without an accepted answer to accept one (once each)."""
    return accept_reminders_send()
