"""Delivering outbound messages through the channel registry, at most once each.

A message is claimed by moving it from ``queued`` to ``sending`` in one UPDATE
that also stamps ``delivery_claimed_at``; only the caller that wins the claim
sends. A task that runs twice therefore sends once. Temporary failures go back
to ``queued`` for a retry; permanent ones, and any error the deliverer did not
expect, end as ``failed`` with a reason shown to agents.

A claim older than the lease (``OUTBOUND_SENDING_LEASE_SECONDS``) belongs to a
worker that died between claim and record: ``message_delivery_expire_stale``
moves such a message to ``failed`` as *interrupted*, because nobody can tell
whether the mail left, and an agent may send it again
(``message_delivery_retry``). docs/architecture.md, "Outbound delivery".
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import Conflict
from servicedesk.tickets import outbound
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.models import DeliveryStatus, Message, TicketEvent

log = logging.getLogger(__name__)

# Reasons stored in English and translated when shown (Message.delivery_error_display).
INTERRUPTED = gettext_noop(
    "Delivery was interrupted (the worker stopped while sending): the mail may or may not have reached "
    "the customer. Send it again if they did not get it."
)
UNEXPECTED_ERROR = gettext_noop(
    "Delivery stopped on an unexpected error; the mail was probably not sent. The worker's log has the details."
)

# Messages that one run of the expiry moves at most; the next run takes the rest.
EXPIRE_BATCH = 500


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"  # already claimed, sent or not deliverable


def message_deliver(*, message_id: int) -> DeliveryOutcome:
    """Send one queued message through its ticket channel's deliverer.

    At most once: only the caller whose claim (``queued`` -> ``sending``)
    changed the row sends; every other call returns ``SKIPPED``. Never leaves
    the message in ``sending`` when it returns: every error ends in ``queued``
    (temporary, to retry) or ``failed`` (with the reason).
    """
    claimed_at = timezone.now()
    claimed = Message.objects.filter(pk=message_id, delivery_status=DeliveryStatus.QUEUED).update(
        delivery_status=DeliveryStatus.SENDING,
        delivery_attempts=F("delivery_attempts") + 1,
        delivery_claimed_at=claimed_at,
    )
    if not claimed:
        return DeliveryOutcome.SKIPPED
    message = Message.objects.select_related("ticket", "ticket__customer", "ticket__queue").get(pk=message_id)
    deliverer = outbound.deliverer_for(message.ticket.channel)
    if deliverer is None:
        _finish(message, claimed_at, DeliveryStatus.FAILED, f"No delivery for channel {message.ticket.channel!r}.")
        return DeliveryOutcome.FAILED
    try:
        receipt = deliverer(message)
    except outbound.DeliveryError as exc:
        if exc.temporary and message.delivery_attempts < settings.SERVICEDESK["OUTBOUND_MAX_ATTEMPTS"]:
            Message.objects.filter(
                pk=message.pk, delivery_status=DeliveryStatus.SENDING, delivery_claimed_at=claimed_at
            ).update(delivery_status=DeliveryStatus.QUEUED, delivery_error=exc.reason[:2000])
            return DeliveryOutcome.RETRY
        _finish(message, claimed_at, DeliveryStatus.FAILED, exc.reason)
        return DeliveryOutcome.FAILED
    except Exception:
        # A deliverer's bug must not leave the message in ``sending`` for the
        # lease: the agent sees it failed now, and the log keeps the traceback.
        log.exception("Delivery of message %s stopped on an unexpected error", message_id)
        _finish(message, claimed_at, DeliveryStatus.FAILED, UNEXPECTED_ERROR)
        return DeliveryOutcome.FAILED
    message.rfc_message_id = receipt.rfc_message_id or message.rfc_message_id
    if receipt.recipients:
        message.recipients = list(receipt.recipients)
    _finish(message, claimed_at, DeliveryStatus.SENT, "")
    return DeliveryOutcome.SENT


def messages_deliver(*, message_ids: Sequence[int], budget_seconds: float) -> dict[DeliveryOutcome, int]:
    """Deliver several queued messages one after another, each as ``message_deliver`` does.

    Each message is claimed by its own UPDATE, so at most once still holds
    message by message: one claimed elsewhere meanwhile is skipped, and a run
    that stops half way leaves the rest ``queued``. The deliverer may carry
    them all over one open connection (the email channel does). The run stops
    claiming at the first temporary failure (the server is likely away, and
    each further message would spend one of its attempts on it) and once
    ``budget_seconds`` have passed (so a slow server cannot keep the caller
    beyond its time limit with a message claimed); what is left waits for
    the next run of ``tickets.outbound_pending_dispatch``. Returns how many
    messages ended in each outcome.
    """
    outcomes = dict.fromkeys(DeliveryOutcome, 0)
    deadline = time.monotonic() + budget_seconds
    for message_id in message_ids:
        if time.monotonic() > deadline:
            break
        outcome = message_deliver(message_id=message_id)
        outcomes[outcome] += 1
        if outcome is DeliveryOutcome.RETRY:
            break
    return outcomes


def _finish(message: Message, claimed_at: datetime, status: str, error: str) -> None:
    """Record the outcome of the claim made at ``claimed_at``.

    Also when the expiry has meanwhile marked it interrupted (a slow worker
    that was not dead after all: what it reports is the truth); not when an
    agent has queued it again since, which started a claim of its own.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Message.objects.filter(
            pk=message.pk,
            delivery_status__in=[DeliveryStatus.SENDING, DeliveryStatus.FAILED],
            delivery_claimed_at=claimed_at,
        ).update(
            delivery_status=status,
            delivery_error=error[:2000],
            sent_at=now if status == DeliveryStatus.SENT else None,
            rfc_message_id=message.rfc_message_id,
            recipients=message.recipients,
        )
        if not changed:
            log.warning("Delivery of message %s ended %s after its claim had been taken over", message.pk, status)
            return
        _delivery_event_record(message, at=now, status=status, error=error)


def _delivery_event_record(message: Message, *, at: datetime, status: str, error: str) -> None:
    """The ``delivery`` event of a claimed message's outcome (``sending`` -> ``status``)."""
    event_record(
        ticket=message.ticket,
        kind=TicketEvent.Kind.DELIVERY,
        actor=Actor.system(),
        at=at,
        message=message,
        before=DeliveryStatus.SENDING,
        after={"status": status, "error": error[:500]} if error else {"status": status},
    )


def message_delivery_expire_stale(*, now: datetime | None = None) -> int:
    """Move messages left in ``sending`` longer than the lease to ``failed``, as interrupted.

    A worker that dies between claim and record (killed, out of memory, the
    machine lost) cannot say whether the mail left. Sending it again could
    send it twice, so it is not retried: it ends ``failed`` with the reason
    ``INTERRUPTED`` and a ``delivery`` event, and an agent decides
    (``message_delivery_retry``). Each move is one conditional UPDATE on the
    claim seen, so two runs, or a worker that reports late, never both win.
    Messages claimed before claims were stamped count from their creation.
    Returns how many messages were moved.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SERVICEDESK["OUTBOUND_SENDING_LEASE_SECONDS"])
    stale = list(
        Message.objects.filter(delivery_status=DeliveryStatus.SENDING)
        .filter(Q(delivery_claimed_at__lt=cutoff) | Q(delivery_claimed_at__isnull=True, created_at__lt=cutoff))
        .select_related("ticket")
        .order_by("pk")[:EXPIRE_BATCH]
    )
    moved = 0
    for message in stale:
        with transaction.atomic():
            changed = Message.objects.filter(
                pk=message.pk, delivery_status=DeliveryStatus.SENDING, delivery_claimed_at=message.delivery_claimed_at
            ).update(delivery_status=DeliveryStatus.FAILED, delivery_error=INTERRUPTED)
            if not changed:
                continue
            _delivery_event_record(message, at=now, status=DeliveryStatus.FAILED, error=INTERRUPTED)
            moved += 1
    return moved


def message_delivery_retry(*, message: Message, actor: Actor) -> None:
    """Queue a message whose delivery failed for delivery again (an agent's "Send again").

    One UPDATE from ``failed`` to ``queued``: two clicks queue it once, and a
    message that is queued, sending or sent is refused with Conflict.
    The attempts start again from zero; the delivery task is enqueued after
    commit. The mail keeps its Message-ID, so a customer who did get the
    first one sees the same mail again, not a new one.
    """
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, delivery_status=DeliveryStatus.FAILED).update(
            delivery_status=DeliveryStatus.QUEUED, delivery_error="", delivery_attempts=0
        )
        if not changed:
            raise Conflict(_("Only a message whose delivery failed can be sent again."))
        event_record(
            ticket=message.ticket,
            kind=TicketEvent.Kind.DELIVERY,
            actor=actor,
            at=timezone.now(),
            message=message,
            before=DeliveryStatus.FAILED,
            after={"status": DeliveryStatus.QUEUED},
        )
        message_id = message.pk
        transaction.on_commit(lambda: message_delivery_enqueue(message_id=message_id))


def message_delivery_enqueue(*, message_id: int) -> bool:
    """Start the delivery task of a queued message (call after commit).

    Only enqueues: the mail leaves in a worker, never in the caller's request.
    With the broker down the message stays queued (False is returned) and
    ``tickets.outbound_pending_dispatch`` sends it later.
    """
    from servicedesk.tickets import tasks

    return task_enqueue(tasks.message_deliver_task, message_id)
