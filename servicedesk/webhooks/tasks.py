"""Celery tasks of the webhooks: ids in, one service call. Any may run twice (claims make it harmless)."""

from __future__ import annotations

from celery import shared_task

from servicedesk.webhooks.services import (
    webhook_delivery_attempt,
    webhook_event_dispatch,
    webhook_log_prune,
    webhooks_sweep,
)


@shared_task(name="webhooks.event_dispatch")
def webhook_event_dispatch_task(event_id: str) -> int:
    """Make an outbox event's deliveries (once per event); how many."""
    return len(webhook_event_dispatch(event_id=event_id))


@shared_task(name="webhooks.delivery_attempt")
def webhook_delivery_attempt_task(delivery_id: int) -> bool:
    """Send one delivery if it is due; whether an attempt was made. The retry policy is the
    delivery's own schedule (services.BACKOFF), not Celery's: a failure is logged, never raised."""
    return webhook_delivery_attempt(delivery_id=delivery_id) is not None


@shared_task(name="webhooks.delivery_redeliver")
def webhook_delivery_redeliver_task(delivery_id: int) -> bool:
    """The attempt an admin asked for by hand (sent even to a paused endpoint)."""
    return webhook_delivery_attempt(delivery_id=delivery_id, manual=True) is not None


@shared_task(name="webhooks.sweep")
def webhooks_sweep_task() -> dict[str, int]:
    """Beat, every minute: outbox events whose task was lost, endpoints to pause, attempts due."""
    return webhooks_sweep()


@shared_task(name="webhooks.log_prune")
def webhook_log_prune_task() -> dict[str, int]:
    """Beat, hourly: deliveries that are over and events older than SD_WEBHOOK_LOG_DAYS, in bounded batches."""
    return webhook_log_prune()
