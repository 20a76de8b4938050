"""Every write of the webhooks: endpoints, dispatch of outbox events, attempts, redelivery, pauses.

Who may: managers and admins (``access.py``); only an admin sets "allow
private addresses". How deliveries move: docs/webhooks.md, "Delivery".
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ADMIN, MANAGER
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from servicedesk.notifications.models import NotificationKind
from servicedesk.notifications.services import notification_send
from servicedesk.tickets.locks import row_lock, rows_lock
from servicedesk.webhooks import signing, transport
from servicedesk.webhooks.access import private_addresses_allowed_to
from servicedesk.webhooks.models import (
    FINISHED_STATES,
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

log = logging.getLogger(__name__)

# Wait after each failed attempt: 8 attempts over 41 hours 36 minutes, then the delivery has failed.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=24),
)
# An endpoint that has failed every attempt for this long is paused.
PAUSE_AFTER = timedelta(hours=24)
# An attempt holds its delivery this long: more than a request can take (connect + read timeouts).
CLAIM_LEASE = timedelta(seconds=60)
# Outbox rows older than this without a dispatch lost their task; the sweep dispatches them.
UNDISPATCHED_AGE = timedelta(seconds=30)
# A wait up to this long is a task's countdown; longer ones are left to the sweep (every minute),
# so no task sits for hours in the broker.
COUNTDOWN_MAX = timedelta(minutes=30)
SWEEP_BATCH = 500
# Retention: rows deleted per transaction, and transactions of each kind per run, so one run
# deletes at most PRUNE_BATCH * PRUNE_BATCHES deliveries (with their attempts) and as many events.
PRUNE_BATCH = 1000
PRUNE_BATCHES = 20
DESCRIPTION_MAX = 300


# --- Endpoints -----------------------------------------------------------------------


def event_types_clean(event_types: Iterable[Any]) -> list[str]:
    """The known event types chosen, sorted, at least one; ApplicationError (field ``event_types``)."""
    known = set(EventType.values)
    chosen = [str(t) for t in event_types]
    unknown = sorted({t for t in chosen if t not in known})
    if unknown:
        raise ApplicationError(
            _("Unknown event types: %(types)s.") % {"types": ", ".join(unknown)}, field="event_types"
        )
    if not chosen:
        raise ApplicationError(_("Choose at least one event type."), field="event_types")
    return sorted(set(chosen))


def endpoint_url_clean(url: str, *, allow_private: bool) -> str:
    url = url.strip()
    try:
        _scheme, host, _port, _path = transport.url_check(url)
    except transport.AddressRefused as exc:
        raise ApplicationError(str(exc), field="url") from None
    if not allow_private:
        # Names are resolved (and checked) at each delivery; an address or localhost is refused now.
        if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
            raise ApplicationError(_("localhost is not a public address."), field="url")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and transport.address_refusal(address) is not None:
            raise ApplicationError(
                _("%(address)s is not a public address; only an admin can allow private addresses.")
                % {"address": host},
                field="url",
            )
    return url


@dataclass(frozen=True)
class EndpointCreated:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def webhook_endpoint_create(
    *,
    actor: User,
    url: str,
    event_types: Iterable[Any],
    description: str = "",
    is_active: bool = True,
    allow_private_addresses: bool = False,
    at: datetime | None = None,
) -> EndpointCreated:
    """Add an endpoint with a new signing secret, returned once (it is stored encrypted).

    Errors (nothing written): ApplicationError with the field for a URL that
    is not http(s) or not public, unknown or no event types; PermissionDenied
    when someone other than an admin allows private addresses.
    """
    if allow_private_addresses and not private_addresses_allowed_to(actor):
        raise PermissionDenied(_("Only an admin can allow private addresses."))
    endpoint = WebhookEndpoint(
        url=endpoint_url_clean(url, allow_private=allow_private_addresses),
        event_types=event_types_clean(event_types),
        description=description.strip()[:DESCRIPTION_MAX],
        is_active=is_active,
        paused_reason="" if is_active else WebhookEndpoint.PausedReason.MANUAL,
        paused_at=None if is_active else (at or timezone.now()),
        allow_private_addresses=allow_private_addresses,
        created_by=actor,
        created_at=at or timezone.now(),
        updated_at=at or timezone.now(),
    )
    secret = signing.secret_new()
    endpoint.secret_set(secret)
    endpoint.save(force_insert=True)
    return EndpointCreated(endpoint=endpoint, secret=secret)


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: User, changes: dict[str, Any], at: datetime | None = None
) -> WebhookEndpoint:
    """Change an endpoint's ``url``, ``event_types``, ``description``, ``is_active`` (pause or
    resume) or ``allow_private_addresses`` (admins only); errors as ``webhook_endpoint_create``."""
    at = at or timezone.now()
    allow_private = changes.get("allow_private_addresses", endpoint.allow_private_addresses)
    if allow_private != endpoint.allow_private_addresses and not private_addresses_allowed_to(actor):
        raise PermissionDenied(_("Only an admin can allow private addresses."))
    url = endpoint_url_clean(changes.get("url", endpoint.url), allow_private=allow_private)
    event_types = event_types_clean(changes.get("event_types", endpoint.event_types))
    with transaction.atomic():
        locked = row_lock(WebhookEndpoint, endpoint.pk)
        locked.url, locked.event_types, locked.allow_private_addresses = url, event_types, allow_private
        if "description" in changes:
            locked.description = str(changes["description"]).strip()[:DESCRIPTION_MAX]
        locked.updated_at = at
        locked.save()
        if "is_active" in changes and bool(changes["is_active"]) != locked.is_active:
            if changes["is_active"]:
                return webhook_endpoint_resume(endpoint=locked, at=at)
            return webhook_endpoint_pause(endpoint=locked, at=at)
    return locked


def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint, at: datetime | None = None) -> str:
    """A new signing secret for the endpoint, returned once; the old one signs nothing from now on."""
    secret = signing.secret_new()
    endpoint.secret_set(secret)
    endpoint.updated_at = at or timezone.now()
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    return secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its deliveries and their log."""
    endpoint.delete()


def webhook_endpoint_pause(
    *, endpoint: WebhookEndpoint, at: datetime | None = None, reason: str = WebhookEndpoint.PausedReason.MANUAL
) -> WebhookEndpoint:
    """Stop delivering to the endpoint: no new deliveries, pending ones wait. Pausing a paused one changes nothing.

    Saved (not a bulk update) so every process hears of it (``emit._SUBSCRIBED``).
    """
    at = at or timezone.now()
    with transaction.atomic():
        locked = row_lock(WebhookEndpoint, endpoint.pk)
        if locked.is_active:
            locked.is_active, locked.paused_reason, locked.paused_at, locked.updated_at = False, reason, at, at
            locked.save(update_fields=["is_active", "paused_reason", "paused_at", "updated_at"])
            log.warning("Webhook endpoint %s (%s) paused: %s", locked.pk, locked.url, reason)
            if reason == WebhookEndpoint.PausedReason.FAILING:
                webhook_paused_notify(endpoint=locked, at=at)
    return locked


def webhook_paused_notify(*, endpoint: WebhookEndpoint, at: datetime) -> int:
    """Tell every active manager and admin that ``endpoint`` was paused for failing: a notice in
    the workspace (the bell) and by email, as each chose; how many were stored.

    Called in the pause's transaction, so the notices commit with it.
    Idempotency key: the endpoint and the time of the pause (one notice per user and pause).
    """
    managers = (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=[MANAGER, ADMIN]) | Q(is_superuser=True))
        .distinct()
        .order_by("pk")
    )
    link = reverse("webhooks:detail", kwargs={"pk": endpoint.pk})
    stored = 0
    for user in managers:
        with translation.override(user.language or settings.LANGUAGE_CODE):
            title = _("Webhook endpoint paused: %(url)s") % {"url": endpoint.url}
            body = _("Every delivery to it failed for 24 hours, so nothing is sent to it until it is resumed.")
        notice = notification_send(
            user=user,
            kind=NotificationKind.WEBHOOK_PAUSED,
            key=f"webhook:{endpoint.pk}:paused:{at.isoformat()}",
            title=title,
            body=body,
            url=link,
            at=at,
        )
        stored += notice is not None
    return stored


def webhook_endpoint_resume(*, endpoint: WebhookEndpoint, at: datetime | None = None) -> WebhookEndpoint:
    """Deliver to the endpoint again: its pending deliveries are due at once, its run of failures forgotten."""
    at = at or timezone.now()
    with transaction.atomic():
        locked = row_lock(WebhookEndpoint, endpoint.pk)
        locked.is_active, locked.paused_reason, locked.paused_at = True, "", None
        locked.failing_since, locked.updated_at = None, at
        locked.save(update_fields=["is_active", "paused_reason", "paused_at", "failing_since", "updated_at"])
        pending = WebhookDelivery.objects.filter(endpoint_id=locked.pk, state=DeliveryState.PENDING)
        pending.update(next_attempt_at=at)
        ids = list(pending.values_list("pk", flat=True)[:SWEEP_BATCH])
        transaction.on_commit(lambda: _attempts_enqueue(ids))
    log.info("Webhook endpoint %s (%s) resumed", locked.pk, locked.url)
    return locked


# --- Dispatch and attempts -------------------------------------------------------------------


def _attempts_enqueue(delivery_ids: Iterable[int], *, countdown: float | None = None) -> None:
    from servicedesk.webhooks.tasks import webhook_delivery_attempt_task

    for delivery_id in delivery_ids:
        # With the broker down the delivery waits, due, for the sweep.
        task_enqueue(webhook_delivery_attempt_task, delivery_id, countdown=countdown)


def webhook_event_dispatch(*, event_id: str, at: datetime | None = None) -> list[int]:
    """Make the event's deliveries: one for each active endpoint that takes its type, due now.

    Runs once per event: the first run claims ``dispatched_at``; a second
    run (a task delivered twice, the sweep behind a slow task) finds it set
    and does nothing. Returns the new deliveries' ids, whose attempts are
    enqueued after commit.
    """
    at = at or timezone.now()
    event_pk = uuid.UUID(event_id)
    with transaction.atomic():
        if not WebhookEvent.objects.filter(pk=event_pk, dispatched_at=None).update(dispatched_at=at):
            return []
        event_type = WebhookEvent.objects.values_list("type", flat=True).get(pk=event_pk)
        endpoints = [
            pk
            for pk, types in WebhookEndpoint.objects.filter(is_active=True).values_list("pk", "event_types")
            if event_type in (types or ())
        ]
        WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(endpoint_id=pk, event_id=event_pk, next_attempt_at=at, created_at=at) for pk in endpoints],
            ignore_conflicts=True,
        )
        ids = list(WebhookDelivery.objects.filter(event_id=event_pk).values_list("pk", flat=True))
        transaction.on_commit(lambda: _attempts_enqueue(ids))
    return ids


def _claim(delivery_id: int, *, at: datetime, manual: bool) -> datetime | None:
    """Take the delivery for one attempt (the lease's end), or None when it is not this caller's to send:
    delivered or failed already, not due, held by another attempt, or its endpoint paused."""
    lease = at + CLAIM_LEASE
    due = WebhookDelivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=at).filter(
        Q(claimed_until=None) | Q(claimed_until__lt=at)
    )
    if not manual:
        due = due.filter(endpoint__is_active=True)
    return lease if due.update(claimed_until=lease) else None


def request_body(event: WebhookEvent) -> bytes:
    """The bytes sent and signed: the event's document as compact JSON, UTF-8."""
    return json.dumps(event.body(), cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode()


def webhook_delivery_attempt(
    *, delivery_id: int, at: datetime | None = None, manual: bool = False
) -> WebhookAttempt | None:
    """Send one delivery once, if it is due, and log the attempt; None when nothing was sent.

    The claim (``_claim``) makes two workers never send one delivery at once
    and a delivered one never again. A success ends the delivery and the
    endpoint's run of failures; a failure schedules the next attempt after
    ``BACKOFF`` (the delivery fails after the last one) and may pause the
    endpoint (``PAUSE_AFTER``). The endpoint's answer, whatever it is, is
    logged: nothing it does raises here.
    """
    at = at or timezone.now()
    lease = _claim(delivery_id, at=at, manual=manual)
    if lease is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    endpoint, event = delivery.endpoint, delivery.event
    body = request_body(event)
    # The signature's time is the wall clock's: receivers compare it with theirs.
    stamp = int(time.time())
    response = transport.post(
        url=endpoint.url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Servicedesk-Webhooks/1",
            signing.EVENT_ID_HEADER: str(event.pk),
            signing.EVENT_TYPE_HEADER: event.type,
            signing.SIGNATURE_HEADER: signing.signature_header(secret=endpoint.secret, timestamp=stamp, body=body),
        },
        allow_private=endpoint.allow_private_addresses,
    )
    return _attempt_record(delivery, response, at=at, lease=lease, manual=manual)


def _attempt_record(
    delivery: WebhookDelivery, response: transport.Response, *, at: datetime, lease: datetime, manual: bool
) -> WebhookAttempt:
    number = delivery.attempts + 1
    with transaction.atomic():
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=at,
            duration_ms=response.duration_ms,
            status_code=response.status_code,
            response_excerpt=response.excerpt,
            error=response.error,
            succeeded=response.ok,
            manual=manual,
        )
        mine = WebhookDelivery.objects.filter(pk=delivery.pk, claimed_until=lease, state=DeliveryState.PENDING)
        common = {"attempts": number, "claimed_until": None, "last_status_code": response.status_code}
        if response.ok:
            mine.update(state=DeliveryState.SUCCEEDED, delivered_at=at, next_attempt_at=None, last_error="", **common)
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(failing_since=None)
            return attempt
        wait = BACKOFF[number - 1] if number <= len(BACKOFF) else None
        if wait is None:
            mine.update(state=DeliveryState.FAILED, next_attempt_at=None, last_error=response.error, **common)
        else:
            mine.update(next_attempt_at=at + wait, last_error=response.error, **common)
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(failing_since=Coalesce(F("failing_since"), at))
    log.info(
        "Webhook delivery %s to endpoint %s failed (attempt %s): %s",
        delivery.pk,
        delivery.endpoint_id,
        number,
        response.error,
    )
    webhook_endpoints_pause_failing(at=at)
    if wait is not None and wait <= COUNTDOWN_MAX:
        seconds = wait.total_seconds()
        transaction.on_commit(lambda: _attempts_enqueue([delivery.pk], countdown=seconds))
    return attempt


def webhook_endpoints_pause_failing(*, at: datetime | None = None) -> list[int]:
    """Pause every active endpoint that has failed every attempt for ``PAUSE_AFTER``; their ids."""
    at = at or timezone.now()
    failing = list(
        WebhookEndpoint.objects.filter(is_active=True, failing_since__lte=at - PAUSE_AFTER).values_list("pk", flat=True)
    )
    for pk in failing:
        endpoint = WebhookEndpoint.objects.get(pk=pk)
        webhook_endpoint_pause(endpoint=endpoint, at=at, reason=WebhookEndpoint.PausedReason.FAILING)
    return failing


def webhook_delivery_redeliver(*, delivery: WebhookDelivery, at: datetime | None = None) -> WebhookDelivery:
    """Send a pending or failed delivery again now (by hand), even to a paused endpoint.

    Conflict when it was delivered already: an event reaches an endpoint
    successfully once; NotFound when retention deleted it meanwhile
    (``webhook_log_prune``). The attempt runs in the worker after commit.
    """
    at = at or timezone.now()
    with transaction.atomic():
        changed = (
            WebhookDelivery.objects.filter(pk=delivery.pk)
            .exclude(state=DeliveryState.SUCCEEDED)
            .update(state=DeliveryState.PENDING, next_attempt_at=at)
        )
        if not changed:
            if not WebhookDelivery.objects.filter(pk=delivery.pk).exists():
                raise NotFound(_("This delivery is no longer in the log."))
            raise Conflict(_("This event was delivered to the endpoint already."))
        delivery_id = delivery.pk
        transaction.on_commit(lambda: _redeliver_enqueue(delivery_id))
    delivery.refresh_from_db()
    return delivery


def _redeliver_enqueue(delivery_id: int) -> None:
    from servicedesk.webhooks.tasks import webhook_delivery_redeliver_task

    task_enqueue(webhook_delivery_redeliver_task, delivery_id)


def webhooks_sweep(*, at: datetime | None = None) -> dict[str, int]:
    """Beat, every minute: what the broker lost and what is due.

    Dispatches outbox events left undispatched for ``UNDISPATCHED_AGE`` (their
    task was lost: the broker was down when the change committed), pauses
    endpoints failing for ``PAUSE_AFTER``, and enqueues the attempts that are
    due (waits longer than a task's countdown, attempts whose task was lost).
    """
    at = at or timezone.now()
    events = list(
        WebhookEvent.objects.filter(dispatched_at=None, created_at__lte=at - UNDISPATCHED_AGE)
        .order_by("created_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for event_id in events:
        webhook_event_dispatch(event_id=str(event_id), at=at)
    paused = webhook_endpoints_pause_failing(at=at)
    due = list(
        WebhookDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=at, endpoint__is_active=True)
        .filter(Q(claimed_until=None) | Q(claimed_until__lt=at))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    _attempts_enqueue(due)
    return {"dispatched": len(events), "paused": len(paused), "due": len(due)}


# --- Retention -----------------------------------------------------------------------


def webhook_log_prune(
    *, at: datetime | None = None, days: int | None = None, batch: int = PRUNE_BATCH, batches: int = PRUNE_BATCHES
) -> dict[str, int]:
    """Beat, hourly: delete what the delivery log keeps no longer; how many deliveries, attempts
    and events went (docs/webhooks.md, "Retention").

    A delivery goes, with its attempts, once it is over (delivered or failed)
    and its last attempt is more than ``days`` old (``SD_WEBHOOK_LOG_DAYS``
    when not given): until then a failed one can be redelivered by hand. A
    pending one (waiting for a retry, for its paused endpoint, or redelivered
    by hand) stays, however old. An event goes once it is more than ``days``
    old, was dispatched, and none of its deliveries is left.

    At most ``batch`` rows per transaction and ``batches`` transactions of
    each kind per run; the next run takes the rest. Deliveries are locked
    first, leaving out any another transaction holds, and deleted only if
    still over, so a redelivery asked for meanwhile keeps its row. Run twice,
    or twice at once, each row is deleted once.
    """
    at = at or timezone.now()
    cutoff = at - timedelta(days=settings.SERVICEDESK["WEBHOOK_LOG_DAYS"] if days is None else days)
    counts = {"deliveries": 0, "attempts": 0, "events": 0}
    for _run in range(batches):
        deliveries, attempts = _deliveries_prune(cutoff=cutoff, batch=batch)
        counts["deliveries"] += deliveries
        counts["attempts"] += attempts
        if deliveries < batch:
            break
    for _run in range(batches):
        events = _events_prune(cutoff=cutoff, batch=batch)
        counts["events"] += events
        if events < batch:
            break
    if any(counts.values()):
        log.info("Webhook log older than %s pruned: %s", cutoff.isoformat(), counts)
    return counts


def _deliveries_prune(*, cutoff: datetime, batch: int) -> tuple[int, int]:
    """One transaction of ``webhook_log_prune``: the oldest deliveries that are over and were last
    tried before ``cutoff`` (index ``webhook_delivery_finished``); how many deliveries and attempts."""
    tried_since = WebhookAttempt.objects.filter(delivery_id=OuterRef("pk"), at__gte=cutoff)
    oldest = (
        WebhookDelivery.objects.filter(state__in=FINISHED_STATES, created_at__lt=cutoff)
        .filter(~Exists(tried_since))
        .order_by("created_at")
        .values("pk")[:batch]
    )
    with transaction.atomic():
        # The state again, on the locked row: a redelivery made it pending meanwhile, or holds it now.
        locked = WebhookDelivery.objects.filter(pk__in=oldest, state__in=FINISHED_STATES).only("pk")
        ids = [row.pk for row in rows_lock(locked, skip_locked=True)]
        if not ids:
            return 0, 0
        _total, by_model = WebhookDelivery.objects.filter(pk__in=ids).delete()
    return by_model.get(WebhookDelivery._meta.label, 0), by_model.get(WebhookAttempt._meta.label, 0)


def _events_prune(*, cutoff: datetime, batch: int) -> int:
    """One transaction of ``webhook_log_prune``: the oldest dispatched events raised before ``cutoff``
    with no delivery left (index on ``created_at``); how many. An event not dispatched yet is the
    sweep's. No delivery can be made for a dispatched event, so none appears meanwhile."""
    oldest = (
        WebhookEvent.objects.filter(created_at__lt=cutoff, dispatched_at__isnull=False)
        .filter(~Exists(WebhookDelivery.objects.filter(event_id=OuterRef("pk"))))
        .order_by("created_at")
        .values("pk")[:batch]
    )
    _total, by_model = WebhookEvent.objects.filter(pk__in=oldest).delete()
    return by_model.get(WebhookEvent._meta.label, 0)
