"""Ticket statuses, priorities and the allowed status transitions, as data.

See ../../docs/architecture.md. ``solved`` -> ``closed`` is neither a new solve
nor a reopen (docs/metrics.md#statuses); any move out of solved/closed to an
unsolved status is a reopen.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    NEW = "new", _("New")
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    ON_HOLD = "on_hold", _("On hold")
    SOLVED = "solved", _("Solved")
    CLOSED = "closed", _("Closed")


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


SOLVED_STATUSES = frozenset({Status.SOLVED, Status.CLOSED})
UNSOLVED_STATUSES = frozenset({Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD})

# from status -> statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}),
    Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}),
    Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.SOLVED, Status.CLOSED}),
    Status.SOLVED: frozenset({Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.OPEN}),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def is_solve(before: str, after: str) -> bool:
    return before in UNSOLVED_STATUSES and after in SOLVED_STATUSES


def is_reopen(before: str, after: str) -> bool:
    return before in SOLVED_STATUSES and after in UNSOLVED_STATUSES


# Status a ticket takes when the customer writes again.
STATUS_ON_CUSTOMER_MESSAGE: dict[str, str] = {
    Status.NEW: Status.NEW,
    Status.OPEN: Status.OPEN,
    Status.PENDING: Status.OPEN,
    Status.ON_HOLD: Status.ON_HOLD,
    Status.SOLVED: Status.OPEN,
    Status.CLOSED: Status.OPEN,
}
