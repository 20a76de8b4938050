"""The macros' periodic work."""

from __future__ import annotations

from celery import shared_task

from servicedesk.macros.services import macro_applications_prune


@shared_task(name="macros.applications_prune")
def macro_applications_prune_task() -> int:
    """Beat, hourly: the keys of macro applications past SD_MACRO_APPLICATION_KEY_DAYS."""
    return macro_applications_prune()
