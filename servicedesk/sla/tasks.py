"""Celery tasks of the service levels: thin, JSON arguments, any may run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from servicedesk.sla.breach import sla_breach_check, sla_notices_send


@shared_task(name="sla.breach_check")
def sla_breach_check_task() -> dict[str, int]:
    """Beat, every minute: warnings, breach notices and escalations owed now."""
    return sla_breach_check(now=timezone.now()).as_dict()


@shared_task(name="sla.notices_send")
def sla_notices_send_task(notices: list[list[Any]]) -> int:
    """In-app notifications and emails of notices the breach check recorded."""
    return sla_notices_send(notices=notices)
