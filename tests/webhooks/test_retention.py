"""Retention of the delivery log: deliveries that are over go with their attempts SD_WEBHOOK_LOG_DAYS
after their last attempt, events once none of their deliveries is left; pending ones stay; each run
deletes a bounded number of rows (docs/webhooks.md, "Retention")."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.core.errors import NotFound
from servicedesk.webhooks import services
from servicedesk.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEvent
from servicedesk.webhooks.tasks import webhook_log_prune_task
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
UNUSED_URL = "http://127.0.0.1:9/hooks"


def event_at(created: datetime, *, dispatched: bool = True) -> WebhookEvent:
    return WebhookEvent.objects.create(
        type="ticket.created", created_at=created, dispatched_at=created if dispatched else None
    )


def delivery_at(
    endpoint,  # type: ignore[no-untyped-def]
    *,
    state: str,
    created: datetime,
    tried: tuple[timedelta, ...] = (timedelta(0),),
    event: WebhookEvent | None = None,
    manual_last: bool = False,
) -> WebhookDelivery:
    """A delivery made at ``created`` and tried at ``created`` plus each of ``tried``."""
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=event or event_at(created),
        state=state,
        attempts=len(tried),
        created_at=created,
        next_attempt_at=NOW + timedelta(hours=1) if state == DeliveryState.PENDING else None,
        delivered_at=created + tried[-1] if state == DeliveryState.SUCCEEDED else None,
    )
    for number, after in enumerate(tried, start=1):
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=created + after,
            status_code=200 if state == DeliveryState.SUCCEEDED and number == len(tried) else 500,
            succeeded=state == DeliveryState.SUCCEEDED and number == len(tried),
            manual=manual_last and number == len(tried),
        )
    return delivery


def remaining() -> set[int]:
    return set(WebhookDelivery.objects.values_list("pk", flat=True))


def test_what_is_over_and_older_than_the_window_goes_and_the_rest_stays(endpoint_for):
    endpoint = endpoint_for(UNUSED_URL).endpoint
    other = endpoint_for(UNUSED_URL.replace("hooks", "other")).endpoint
    days40 = NOW - timedelta(days=40)
    delivered = delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=days40)
    # Its eight attempts over 41 hours 36 minutes, the last 38 days ago.
    failed = delivery_at(
        endpoint,
        state=DeliveryState.FAILED,
        created=days40,
        tried=tuple(timedelta(minutes=m) for m in (0, 1, 6, 36, 156, 456, 1056, 2496)),
    )
    # Failed long ago, redelivered by hand two days ago (and failed again): kept for its window.
    redelivered = delivery_at(
        endpoint,
        state=DeliveryState.FAILED,
        created=days40,
        tried=(timedelta(0), timedelta(days=38)),
        manual_last=True,
    )
    # Made 31 days ago, last tried 29 days ago: inside the window.
    last_tried_inside = delivery_at(
        endpoint, state=DeliveryState.FAILED, created=NOW - timedelta(days=31), tried=(timedelta(0), timedelta(days=2))
    )
    recent = delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=NOW - timedelta(days=10))
    # Waiting (a paused endpoint, a retry, a redelivery asked for): never deleted, however old.
    shared = event_at(days40)
    pending = delivery_at(other, state=DeliveryState.PENDING, created=days40, event=shared)
    delivered_of_shared = delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=days40, event=shared)
    never_tried_pending = delivery_at(other, state=DeliveryState.PENDING, created=days40, tried=())
    undispatched = event_at(days40, dispatched=False)
    unsubscribed = event_at(days40)  # dispatched when no endpoint took it: no delivery
    young_event = event_at(NOW - timedelta(days=29))
    kept_events = {
        undispatched.pk,
        young_event.pk,
        shared.pk,
        redelivered.event_id,
        last_tried_inside.event_id,
        recent.event_id,
        never_tried_pending.event_id,
    }

    counts = services.webhook_log_prune(at=NOW, days=30)

    assert counts == {"deliveries": 3, "attempts": 1 + 8 + 1, "events": 3}
    assert remaining() == {redelivered.pk, last_tried_inside.pk, recent.pk, pending.pk, never_tried_pending.pk}
    assert not WebhookAttempt.objects.filter(delivery_id__in=[delivered.pk, failed.pk, delivered_of_shared.pk])
    assert WebhookAttempt.objects.filter(delivery=redelivered).count() == 2
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == kept_events
    assert not WebhookEvent.objects.filter(pk__in=[delivered.event_id, failed.event_id, unsubscribed.pk]).exists()
    # Run again: nothing more.
    assert services.webhook_log_prune(at=NOW, days=30) == {"deliveries": 0, "attempts": 0, "events": 0}


def test_the_window_is_sd_webhook_log_days_30_unless_set(endpoint_for, settings):
    assert settings.SERVICEDESK["WEBHOOK_LOG_DAYS"] == 30
    endpoint = endpoint_for(UNUSED_URL).endpoint
    days29 = delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=NOW - timedelta(days=29))
    days31 = delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=NOW - timedelta(days=31))
    days8 = delivery_at(endpoint, state=DeliveryState.FAILED, created=NOW - timedelta(days=8))

    assert services.webhook_log_prune(at=NOW)["deliveries"] == 1
    assert remaining() == {days29.pk, days8.pk}

    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBHOOK_LOG_DAYS": 7}
    assert services.webhook_log_prune(at=NOW)["deliveries"] == 2
    assert remaining() == set()
    assert not WebhookEvent.objects.filter(pk=days31.event_id).exists()


def test_each_run_deletes_at_most_its_batches_oldest_first(endpoint_for):
    endpoint = endpoint_for(UNUSED_URL).endpoint
    made = [
        delivery_at(endpoint, state=DeliveryState.SUCCEEDED, created=NOW - timedelta(days=40 + n)) for n in range(5)
    ]
    oldest_first = [d.pk for d in reversed(made)]

    assert services.webhook_log_prune(at=NOW, days=30, batch=2, batches=1) == {
        "deliveries": 2,
        "attempts": 2,
        "events": 2,
    }
    assert remaining() == set(oldest_first[2:])
    assert WebhookEvent.objects.count() == 3
    # A full batch is followed by the next one in the same run, until a short one (2 + 1 here).
    assert services.webhook_log_prune(at=NOW, days=30, batch=2, batches=5) == {
        "deliveries": 3,
        "attempts": 3,
        "events": 3,
    }
    assert remaining() == set() and not WebhookEvent.objects.exists()


def test_the_beat_runs_the_task_hourly_with_the_setting(endpoint_for, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["webhooks-log-prune"]
    assert (entry["task"], entry["schedule"]) == ("webhooks.log_prune", timedelta(hours=1))
    assert webhook_log_prune_task.name == "webhooks.log_prune"
    endpoint = endpoint_for(UNUSED_URL).endpoint
    now = timezone.now()
    old = delivery_at(endpoint, state=DeliveryState.FAILED, created=now - timedelta(days=31))
    young = delivery_at(endpoint, state=DeliveryState.FAILED, created=now - timedelta(days=29))

    assert webhook_log_prune_task.delay().get() == {"deliveries": 1, "attempts": 1, "events": 1}
    assert remaining() == {young.pk}
    assert not WebhookEvent.objects.filter(pk=old.event_id).exists()


def test_a_real_delivery_leaves_the_log_after_the_window(
    receiver, endpoint_for, customer, queue, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, ["ticket.created"])
    with django_capture_on_commit_callbacks(execute=True):
        ticket_make(customer=customer, queue=queue, subject="Parcel")
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.delivered_at is not None

    assert services.webhook_log_prune(at=delivery.delivered_at + timedelta(days=29, hours=23))["deliveries"] == 0
    assert services.webhook_log_prune(at=delivery.delivered_at + timedelta(days=30, seconds=1)) == {
        "deliveries": 1,
        "attempts": 1,
        "events": 1,
    }
    assert not WebhookDelivery.objects.exists() and not WebhookEvent.objects.exists()


def test_redelivering_a_delivery_retention_deleted_is_not_found(endpoint_for, manager, client):
    endpoint = endpoint_for(UNUSED_URL).endpoint
    failed = delivery_at(endpoint, state=DeliveryState.FAILED, created=NOW - timedelta(days=40))
    services.webhook_log_prune(at=NOW, days=30)

    with pytest.raises(NotFound, match="no longer in the log"):
        services.webhook_delivery_redeliver(delivery=failed)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=manager)[0].key}")
    assert api.post(f"/api/v1/webhooks/deliveries/{failed.pk}/redeliver/").status_code == 404
    client.force_login(manager)
    assert client.post(f"/desk/webhooks/deliveries/{failed.pk}/redeliver/").status_code == 404


def test_the_endpoint_page_tells_how_long_the_log_is_kept(endpoint_for, manager, client, settings):
    endpoint = endpoint_for(UNUSED_URL).endpoint
    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBHOOK_LOG_DAYS": 14}
    client.force_login(manager)
    page = client.get(f"/desk/webhooks/{endpoint.pk}/").content.decode()
    assert "A delivered or failed delivery is kept for 14 days after its last attempt" in page


def test_a_window_under_one_day_stops_the_start_with_the_reason():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test", "SD_WEBHOOK_LOG_DAYS": "0"}
    refused = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured: SD_WEBHOOK_LOG_DAYS takes a whole number of days, 1 or more." in refused.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_a_delivery_another_transaction_holds_is_left_for_the_next_run(endpoint_for):
    endpoint = endpoint_for(UNUSED_URL).endpoint
    held = delivery_at(endpoint, state=DeliveryState.FAILED, created=NOW - timedelta(days=40))
    free = delivery_at(endpoint, state=DeliveryState.FAILED, created=NOW - timedelta(days=41))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        # A redelivery under way: its UPDATE holds the row until it commits.
        try:
            with transaction.atomic():
                WebhookDelivery.objects.filter(pk=held.pk).update(next_attempt_at=NOW)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        counts = services.webhook_log_prune(at=NOW, days=30)
    finally:
        release.set()
        thread.join(timeout=30)

    assert (counts["deliveries"], counts["events"]) == (1, 1)
    assert remaining() == {held.pk}
    assert not WebhookEvent.objects.filter(pk=free.event_id).exists()
    assert services.webhook_log_prune(at=NOW, days=30)["deliveries"] == 1
    assert remaining() == set()
