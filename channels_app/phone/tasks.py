"""Celery tasks of the phone channel: folding calls from their stored events (services.py)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .models import PhoneLine
from .services import call_fold_run, call_settle, calls_fold_drain, calls_fold_pending, calls_settle_due


@shared_task(
    name="phone.call_fold",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def call_fold_task(line_id: int, call_key: str) -> bool:
    """Fold one call from its events (a task queued by an earlier version). A line deleted since has nothing to fold."""
    line = PhoneLine.objects.filter(pk=line_id).first()
    if line is None:
        return False
    return call_fold_run(line=line, call_key=call_key) is not None


@shared_task(
    name="phone.calls_fold_drain",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def calls_fold_drain_task() -> int:
    """Fold the calls waiting in the set of calls to fold (``services.call_fold_soon``)."""
    return calls_fold_drain()


@shared_task(
    name="phone.call_settle",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def call_settle_task(call_pk: int) -> bool:
    """Make a missed call's callback ticket once its wait for a late answer is over."""
    return call_settle(call_pk=call_pk) is not None


@shared_task(name="phone.events_fold_pending")
def events_fold_pending_task() -> int:
    """Fold the calls whose events were stored but not folded (a task lost with its worker or broker),
    and settle the missed calls that are due (a lost ``phone.call_settle``)."""
    return calls_fold_pending() + calls_settle_due()
