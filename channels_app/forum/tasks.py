"""Celery tasks of the community forum: thin, ids in, one service each."""

from __future__ import annotations

from celery import shared_task

from .services import post_notify


@shared_task(name="forum.post_notify")
def post_notify_task(post_id: int) -> int:
    """Mail a new post's followers and mentioned members (at most once each: ``Notice``'s unique key)."""
    return post_notify(post_id=post_id)
