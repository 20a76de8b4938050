"""Follow-ups on a ticket: pending until an instant (snooze), and agents following it.

How and why: docs/followups.md. A snooze is the status ``pending`` with a
``Ticket.pending_until``; every status move goes through the status service
(``_apply_status``), so the SLA pauses and resumes exactly as for any other
pending spell, and leaving pending by any path (an agent, a customer's
message, the sweep) clears the instant (``status_fields_set``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.access import can_see_ticket
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import ticket_lock, tickets_lock_rows
from servicedesk.tickets.models import Ticket, TicketEvent, TicketFollower
from servicedesk.tickets.services.tickets import InvalidStatusTransition, _apply_status, ticket_touch
from servicedesk.tickets.statuses import Status

# Why a pending-until instant changed, in the ``after`` of its ``pending_until`` event.
REASON_AGENT = "agent"
REASON_REACHED = "until_reached"
# Tickets the sweep reopens per run at most (index ``ticket_pending_until``); the next run takes the rest.
SNOOZE_SWEEP_BATCH = 500


class InvalidPendingUntil(ApplicationError):
    """A pending-until instant that is not in the future, or on a ticket that is not pending."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="pending_until")


def pending_until_check(*, until: datetime, at: datetime) -> None:
    """Raise InvalidPendingUntil unless ``until`` is an aware instant after ``at``."""
    if timezone.is_naive(until):
        raise InvalidPendingUntil(_("Give the time with its time zone."))
    if until <= at:
        raise InvalidPendingUntil(_("The pending-until time must be in the future."))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _until_write(ticket: Ticket, until: datetime | None, *, reason: str, actor: Actor, at: datetime) -> bool:
    """Put ``until`` on a locked ticket with its ``pending_until`` event; False when it already had it."""
    before = ticket.pending_until
    if before == until:
        return False
    ticket.pending_until = until
    ticket_touch(ticket, at, ["pending_until"])
    event_record(
        ticket=ticket,
        kind=TicketEvent.Kind.PENDING_UNTIL,
        actor=actor,
        at=at,
        before=_iso(before),
        after={"until": _iso(until), "reason": reason},
    )
    return True


def ticket_pending_until_set(
    *, ticket: Ticket, until: datetime | None, actor: Actor, at: datetime | None = None
) -> Ticket:
    """Set (or with None clear) the instant a pending ticket reopens by itself.

    The ticket must be pending to be given an instant (InvalidPendingUntil
    otherwise, and for an instant not after ``at``); clearing leaves the
    status as it is. A change is a ``pending_until`` event (before: the old
    instant, after: ``{"until": ..., "reason": "agent"}``); the same value
    again writes nothing.
    """
    at = at or timezone.now()
    if until is not None:
        pending_until_check(until=until, at=at)
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if until is not None and locked.status != Status.PENDING:
            raise InvalidPendingUntil(_("Only a pending ticket waits until a time: set the status to pending too."))
        _until_write(locked, until, reason=REASON_AGENT, actor=actor, at=at)
    return locked


def ticket_snooze(*, ticket: Ticket, until: datetime, actor: Actor, at: datetime | None = None) -> Ticket:
    """Move a ticket to pending until ``until``, in one transaction: the status change
    (the status service's rules and SLA pause) and then the instant, each with its event.

    Raises InvalidPendingUntil (an instant not in the future) or
    InvalidStatusTransition (a merged ticket, a move the statuses refuse)
    with nothing written. Snoozing a pending ticket again only moves its instant.
    """
    at = at or timezone.now()
    pending_until_check(until=until, at=at)
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if locked.merged_into_id:
            raise InvalidStatusTransition(_("This ticket was merged into another one."), field="status")
        _apply_status(locked, Status.PENDING, actor, at)
        _until_write(locked, until, reason=REASON_AGENT, actor=actor, at=at)
    return locked


def ticket_snooze_expire(*, ticket_id: int, now: datetime | None = None) -> bool:
    """Reopen one ticket whose pending-until instant has come; True when this call did it.

    Claim: the ticket is locked only if its instant is still set and due,
    skipping a row another worker holds (``SKIP LOCKED``), so of two sweeps
    one reopens and the other finds nothing; a second run finds the instant
    cleared. The reopen is the status service's move to ``open`` by the
    system (source ``system``), after a ``pending_until`` event whose
    ``after`` gives the reason (``until_reached``). A ticket that is no
    longer simply pending (merged, spam, deleted) only loses the instant.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = tickets_lock_rows(Ticket.objects.filter(pk=ticket_id, pending_until__lte=now), skip_locked=True)
        if not due:
            return False
        ticket = due[0]
        actor = Actor.system()
        _until_write(ticket, None, reason=REASON_REACHED, actor=actor, at=now)
        if (
            ticket.status == Status.PENDING
            and not ticket.merged_into_id
            and not ticket.is_spam
            and not ticket.is_deleted
        ):
            _apply_status(ticket, Status.OPEN, actor, now)
    return True


def ticket_snoozes_due_reopen(*, now: datetime | None = None, limit: int = SNOOZE_SWEEP_BATCH) -> int:
    """Reopen the tickets whose pending-until instant has come (the beat's sweep, every minute).

    Reads the due ids along the partial index ``ticket_pending_until``, then
    reopens each in its own transaction (``ticket_snooze_expire``): one
    ticket that fails costs the others nothing, and two sweeps at once
    reopen each ticket once. Returns how many this run reopened.
    """
    now = now or timezone.now()
    ids = list(
        Ticket.objects.filter(pending_until__lte=now)
        .order_by("pending_until", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in ids if ticket_snooze_expire(ticket_id=pk, now=now))


# --- Following ---------------------------------------------------------------


class InvalidFollower(ApplicationError):
    pass


def ticket_follow(*, ticket: Ticket, user: User, at: datetime | None = None) -> bool:
    """``user`` follows ``ticket``: they hear of its customer messages and of status changes by others.

    Only active agents who may see the ticket follow it (InvalidFollower,
    nothing written). Idempotent on the unique (ticket, user) pair: True
    when this call started following, False when they already did.
    """
    if not user.is_active or not is_agent(user):
        raise InvalidFollower(_("Only agents follow tickets."))
    if not can_see_ticket(user, ticket):
        raise InvalidFollower(_("Ticket not found."))
    try:
        with transaction.atomic():
            TicketFollower.objects.create(ticket=ticket, user=user, created_at=at or timezone.now())
    except IntegrityError:
        return False
    return True


def ticket_unfollow(*, ticket: Ticket, user: User) -> bool:
    """``user`` stops following ``ticket``; True when they followed it. Unfollowing twice changes nothing."""
    deleted, _rows = TicketFollower.objects.filter(ticket=ticket, user=user).delete()
    return bool(deleted)
