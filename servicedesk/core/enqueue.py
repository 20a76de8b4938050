"""Enqueue a Celery task without letting an unreachable broker fail the caller.

Every task a request starts is enqueued after its transaction committed, so
the change is already stored: a broker outage must not turn it into a 500.
The work is not lost where a periodic task looks for it again (queued
messages: ``tickets.outbound_pending_dispatch``; waiting tickets:
``routing.waiting_tickets_route``); the caller's docstring says which.
See docs/architecture.md, "Limits and outages".
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def task_enqueue(task: Any, *args: Any, countdown: float | None = None) -> bool:
    """``task.delay(*args)`` (in ``countdown`` seconds when given); False, with a warning in the
    log, when the broker cannot take it."""
    try:
        if countdown is None:
            task.delay(*args)
        else:
            task.apply_async(args, countdown=countdown)
    except Exception:
        log.warning("Could not enqueue %s%r: the broker is unreachable", task.name, args, exc_info=True)
        return False
    return True
