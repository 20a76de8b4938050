"""Celery tasks: ids in, a service call, the retry policy. Any may run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from servicedesk.tickets.models import DeliveryStatus, Message
from servicedesk.tickets.services.delivery import DeliveryOutcome, message_deliver, message_delivery_expire_stale

log = logging.getLogger(__name__)


@shared_task(
    name="tickets.message_deliver",
    bind=True,
    max_retries=settings.SERVICEDESK["OUTBOUND_MAX_ATTEMPTS"],
    # A delivery that runs this long is stopped (its claim then expires as
    # interrupted), so the expiry never overtakes a worker still sending.
    time_limit=max(60, settings.SERVICEDESK["OUTBOUND_SENDING_LEASE_SECONDS"] - 60),
)
def message_deliver_task(self, message_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = message_deliver(message_id=message_id)
    if outcome is DeliveryOutcome.RETRY:
        raise self.retry(countdown=min(3600, 30 * 2**self.request.retries))
    return str(outcome)


@shared_task(name="tickets.outbound_pending_dispatch")
def outbound_pending_dispatch() -> int:
    """Re-send the delivery task for messages left queued (a lost task, a broker restart)."""
    cutoff = timezone.now() - timedelta(minutes=10)
    ids = list(
        Message.objects.filter(delivery_status=DeliveryStatus.QUEUED, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in ids:
        message_deliver_task.delay(pk)
    return len(ids)


@shared_task(name="tickets.message_delivery_expire_stale")
def message_delivery_expire_stale_task() -> int:
    """Messages left ``sending`` by a worker that died end ``failed``, as interrupted."""
    return message_delivery_expire_stale()
