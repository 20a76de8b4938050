"""Celery tasks: ids in, a service call, the retry policy. Any may run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from servicedesk.tickets.models import DeliveryStatus, Message
from servicedesk.tickets.services.delivery import (
    DeliveryOutcome,
    message_deliver,
    message_delivery_expire_stale,
    messages_deliver,
)

log = logging.getLogger(__name__)

# A delivery that runs this long is stopped (its claim then expires as
# interrupted), so the expiry never overtakes a worker still sending.
DELIVERY_TIME_LIMIT = max(60, settings.SERVICEDESK["OUTBOUND_SENDING_LEASE_SECONDS"] - 60)
# Messages the re-dispatch hands to one task, sent one after another over the
# worker's open SMTP connection.
DISPATCH_BATCH = 25


@shared_task(
    name="tickets.message_deliver",
    bind=True,
    max_retries=settings.SERVICEDESK["OUTBOUND_MAX_ATTEMPTS"],
    time_limit=DELIVERY_TIME_LIMIT,
)
def message_deliver_task(self, message_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = message_deliver(message_id=message_id)
    if outcome is DeliveryOutcome.RETRY:
        raise self.retry(countdown=min(3600, 30 * 2**self.request.retries))
    return str(outcome)


@shared_task(name="tickets.messages_deliver", time_limit=DELIVERY_TIME_LIMIT)
def messages_deliver_task(message_ids: list[int]) -> dict[str, int]:
    """Several queued messages, each claimed on its own; what is left stays queued for the next dispatch.

    No retry of its own: a message back in ``queued`` is older than the
    dispatch's cutoff, so the next run (a minute on) takes it again. No claim
    is made after half the time limit, so the last message claimed has the
    other half to finish before the limit stops the task.
    """
    outcomes = messages_deliver(message_ids=message_ids, budget_seconds=DELIVERY_TIME_LIMIT / 2)
    return {str(outcome): count for outcome, count in outcomes.items() if count}


@shared_task(name="tickets.outbound_pending_dispatch")
def outbound_pending_dispatch() -> int:
    """Re-send messages left queued (a lost task, a broker restart), in batches of ``DISPATCH_BATCH``."""
    cutoff = timezone.now() - timedelta(minutes=10)
    ids = list(
        Message.objects.filter(delivery_status=DeliveryStatus.QUEUED, created_at__lt=cutoff)
        .order_by("created_at", "pk")  # oldest first, along the partial index message_delivery_pending
        .values_list("pk", flat=True)[:500]
    )
    for start in range(0, len(ids), DISPATCH_BATCH):
        messages_deliver_task.delay(ids[start : start + DISPATCH_BATCH])
    return len(ids)


@shared_task(name="tickets.message_delivery_expire_stale")
def message_delivery_expire_stale_task() -> int:
    """Messages left ``sending`` by a worker that died end ``failed``, as interrupted."""
    return message_delivery_expire_stale()


@shared_task(name="tickets.surveys_send")
def surveys_send_task() -> int:
    """Survey the tickets solved SURVEY_DELAY_MINUTES ago (and queue the survey mail still owed)."""
    from servicedesk.tickets.services.surveys import surveys_send

    return surveys_send()


@shared_task(name="tickets.survey_mail", autoretry_for=(OSError,), retry_backoff=5, max_retries=3)
def survey_mail_task(survey_id: int) -> bool:
    from servicedesk.tickets.services.surveys import survey_mail

    return survey_mail(survey_id=survey_id)


@shared_task(name="tickets.snoozes_due_reopen")
def snoozes_due_reopen_task() -> int:
    """Beat, every minute: reopen the pending tickets whose pending-until time has come, each once."""
    from servicedesk.tickets.services.followups import ticket_snoozes_due_reopen

    return ticket_snoozes_due_reopen()


@shared_task(name="tickets.held_reply_release")
def held_reply_release_task(held_id: int) -> bool:
    """Scheduled for a held reply's ``send_after``: write and deliver it unless it was undone (docs/drafts.md)."""
    from servicedesk.tickets.services.drafts import held_reply_release

    return held_reply_release(held_id=held_id) is not None


@shared_task(name="tickets.held_replies_release_due")
def held_replies_release_due_task() -> int:
    """Beat: release the held replies whose scheduled task was lost (a broker restart, a dead worker)."""
    from servicedesk.tickets.services.drafts import held_replies_release_due

    return held_replies_release_due()
