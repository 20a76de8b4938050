"""Celery tasks for chat. ``chat.tick`` may run twice or in two workers at once: each
step takes only rows no other run holds, and re-checks their state under the lock."""

from __future__ import annotations

from celery import shared_task

from . import routing


@shared_task(name="chat.tick")
def chat_tick_task() -> dict[str, int]:
    return routing.chat_tick()


@shared_task(name="chat.offers_dispatch")
def chat_offers_dispatch_task(queue_id: int | None = None) -> int:
    return routing.chat_offers_dispatch(queue_id=queue_id)
