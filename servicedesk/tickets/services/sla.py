"""Keeping a ticket's SLA targets true to its timeline (docs/metrics.md#sla).

``ticket_sla_refresh`` is the one function that writes ``TicketTarget`` rows.
The ticket services call it, inside their transaction and on the locked
ticket, after every change that can move a target: creation, status, priority,
queue, the first public reply. The breach check calls it when a due instant
passes. Each call re-derives every target from the ticket's status history,
so calling it twice changes nothing, and records what changed as TicketEvents
(``sla_applied``, ``sla_paused``, ``sla_resumed``, ``sla_fulfilled``,
``sla_breached``, ``sla_cancelled``) so reports and audits can replay it.

Terms (policy, calendar, priority, minutes) follow the ticket while a target
is unfulfilled and stay fixed once it is fulfilled: "the priority in force
when a target is fulfilled; for an unfulfilled target, the priority at as_of".
Outbound, spam and deleted tickets carry no targets. See docs/sla.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from servicedesk.sla import clock as sla_clock
from servicedesk.sla.calendars import CalendarSpec
from servicedesk.sla.models import BusinessCalendar, SlaPolicy, TargetHours
from servicedesk.sla.policies import calendar_spec_cached, policies_cached, policies_ranked, policy_for, targets_for
from servicedesk.tickets import hooks
from servicedesk.tickets.events import Actor, event_build, event_record
from servicedesk.tickets.locks import tickets_lock_rows
from servicedesk.tickets.models import (
    Initiator,
    TargetKind,
    TargetState,
    Ticket,
    TicketEvent,
    TicketTarget,
)
from servicedesk.tickets.statuses import SOLVED_STATUSES, UNSOLVED_STATUSES, Status

SYSTEM = Actor.system(source="sla")
_TERM_FIELDS = ("policy_id", "calendar_id", "priority", "minutes", "hours", "warning_percent")


@dataclass(frozen=True)
class _Terms:
    policy: SlaPolicy
    calendar: BusinessCalendar
    priority: str
    minutes: int
    hours: str
    warning_percent: int


class SpecCache:
    """Calendars and policies read once for a run over many tickets (the breach check, a backfill).

    Without one, each refresh reads the policies and the calendar it needs.
    """

    def __init__(self) -> None:
        self._specs: dict[int, CalendarSpec] = {}
        self._policies: list[SlaPolicy] | None = None
        self._targets: dict[int, list[TicketTarget]] = {}
        self._histories: dict[int, list[tuple[datetime, str]]] = {}

    def policies(self) -> list[SlaPolicy]:
        if self._policies is None:
            self._policies = policies_cached()
        return self._policies

    def preload(self, ticket_ids: list[int]) -> None:
        """Read the targets and status histories of many locked tickets in two queries.

        Each preloaded value serves one refresh of its ticket; later refreshes read afresh.
        """
        self._targets = {pk: [] for pk in ticket_ids}
        for target in TicketTarget.objects.filter(ticket_id__in=ticket_ids).select_related("policy", "calendar"):
            self._targets[target.ticket_id].append(target)
        self._histories = {pk: [] for pk in ticket_ids}
        rows = (
            TicketEvent.objects.filter(ticket_id__in=ticket_ids, kind=TicketEvent.Kind.STATUS)
            .order_by("ticket_id", "at", "id")
            .values_list("ticket_id", "at", "after")
        )
        for ticket_id, at, after in rows:
            if isinstance(after, str):
                self._histories[ticket_id].append((at, after))

    def targets_of(self, ticket: Ticket) -> list[TicketTarget]:
        preloaded = self._targets.pop(ticket.pk, None)
        if preloaded is not None:
            return preloaded
        return list(TicketTarget.objects.filter(ticket=ticket).select_related("policy", "calendar"))

    def history_of(self, ticket: Ticket) -> list[tuple[datetime, str]]:
        """(instant, status) from creation on, oldest first, from the ticket's status events."""
        changes = self._histories.pop(ticket.pk, None)
        if changes is None:
            changes = [
                (at, after)
                for at, after in TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.STATUS)
                .order_by("at", "id")
                .values_list("at", "after")
                if isinstance(after, str)
            ]
        return [(ticket.created_at, Status.NEW), *changes]

    def get(self, calendar: BusinessCalendar) -> CalendarSpec:
        spec = self._specs.get(calendar.pk)
        if spec is None:
            spec = self._specs[calendar.pk] = calendar_spec_cached(calendar)
        return spec


def _tracked(ticket: Ticket) -> bool:
    return (
        ticket.initiator == Initiator.INBOUND
        and not ticket.is_spam
        and not ticket.is_deleted
        and ticket.merged_into_id is None
    )


def _policy(ticket: Ticket, specs: SpecCache) -> SlaPolicy | None:
    organization = ticket.customer.organization if ticket.customer_id else None
    return policy_for(
        priority=ticket.priority,
        channel=ticket.channel,
        tier=organization.tier if organization is not None else None,
        queue=ticket.queue.slug,
        initiator=ticket.initiator,
        policies=specs.policies(),
    )


def _policy_snapshot(ticket: Ticket, specs: SpecCache) -> SlaPolicy | None:
    """The policy the ticket's snapshot names, as read with the others (with its targets)."""
    if ticket.sla_policy_id is None:
        return None
    for policy in specs.policies():
        if policy.pk == ticket.sla_policy_id:
            return policy
    return ticket.sla_policy


def _terms(policy: SlaPolicy | None, priority: str, kind: str) -> _Terms | None:
    if policy is None:
        return None
    target = targets_for(policy, priority)
    minutes = None
    if target is not None:
        minutes = target.first_reply_minutes if kind == TargetKind.FIRST_REPLY else target.resolution_minutes
    if target is None or minutes is None:
        return None
    return _Terms(policy, policy.calendar, priority, minutes, target.hours, policy.warning_percent)


def _outcome(
    kind: str, terms: _Terms, ticket: Ticket, history: list[tuple[datetime, str]], now: datetime, specs: SpecCache
) -> sla_clock.Outcome:
    clock = sla_clock.Clock(spec=specs.get(terms.calendar) if terms.hours == TargetHours.BUSINESS else None)
    target_us = terms.minutes * 60_000_000
    if kind == TargetKind.FIRST_REPLY:
        return sla_clock.first_reply_outcome(
            clock,
            target_us=target_us,
            warning_percent=terms.warning_percent,
            created_at=ticket.created_at,
            first_reply_at=ticket.first_reply_at if ticket.first_reply_at and ticket.first_reply_at <= now else None,
            solved=ticket.status in SOLVED_STATUSES,
            now=now,
        )
    return sla_clock.resolution_outcome(
        clock, target_us=target_us, warning_percent=terms.warning_percent, history=history, now=now
    )


def target_next_check(target: TicketTarget) -> datetime | None:
    """When the breach check must next look at ``target``: a warning or a breach falls due, or a notice is owed."""
    if target.fulfilled_at is not None:
        return None
    if target.state == TargetState.ACTIVE and target.due_at is not None:
        if target.warning_notified_at is None and target.warning_at is not None and target.warning_at < target.due_at:
            return target.warning_at
        return target.breaches_at or target.due_at
    if target.state == TargetState.BREACHED and target.breach_notified_at is None:
        return target.breached_at
    return None


def _snapshot(target: TicketTarget) -> dict[str, Any]:
    return {
        "target": target.kind,
        "state": target.state,
        "policy": target.policy.slug,
        "calendar": target.calendar.slug,
        "priority": target.priority,
        "minutes": target.minutes,
        "hours": target.hours,
        "due_at": target.due_at.isoformat() if target.due_at else None,
        "elapsed_seconds": target.elapsed_seconds,
    }


class SlaWrites:
    """Where a refresh's changes go: saved at once (the default), or, ``deferred``, gathered for ``flush``.

    Deferred, new targets, their events and the tickets' SLA snapshots are
    written by ``flush`` in three bulk statements (a backfill over many
    tickets that have no targets yet); changes to targets that already exist
    are still saved at once. Call ``flush`` in the same transaction.
    """

    def __init__(
        self, *, deferred: bool = False, events: list[TicketEvent] | None = None, ticket_unsaved: bool = False
    ) -> None:
        self.deferred = deferred
        self._targets: list[TicketTarget] = []
        # ``events``: the caller's own list, which it stores with its other events.
        self._own_events = events is None
        self._events: list[TicketEvent] = [] if events is None else events
        self._tickets: list[Ticket] = []
        # The ticket is not stored yet: its insert carries the snapshot.
        self.ticket_unsaved = ticket_unsaved

    def target(self, target: TicketTarget, *, created: bool = False, fields: list[str] | None = None) -> None:
        if self.deferred and created:
            self._targets.append(target)
        elif self.deferred and target.pk is None:
            pass  # gathered already: the insert will carry the change
        elif fields is None:
            target.save(force_insert=created)
        else:
            target.save(update_fields=fields)

    def event(self, **kwargs: Any) -> None:
        if self.deferred:
            self._events.append(event_build(**kwargs))
        else:
            event_record(**kwargs)

    def ticket(self, ticket: Ticket) -> None:
        """The ticket's SLA snapshot (policy, calendar, next due), already set on the object."""
        if self.ticket_unsaved:
            return
        if self.deferred:
            self._tickets.append(ticket)
        else:
            Ticket.objects.filter(pk=ticket.pk).update(
                sla_policy=ticket.sla_policy, sla_calendar_id=ticket.sla_calendar_id, sla_due_at=ticket.sla_due_at
            )

    def flush(self) -> None:
        TicketTarget.objects.bulk_create(self._targets)
        if self._own_events:
            TicketEvent.objects.bulk_create(self._events)
            for event in self._events:
                hooks.event_followers_run(event=event)
            self._events = []
        Ticket.objects.bulk_update(self._tickets, ["sla_policy", "sla_calendar", "sla_due_at"])
        self._targets, self._tickets = [], []


def ticket_sla_refresh(
    *,
    ticket: Ticket,
    at: datetime,
    reselect: bool = False,
    specs: SpecCache | None = None,
    writes: SlaWrites | None = None,
    new: bool = False,
) -> list[TicketTarget]:
    """Bring the ticket's targets to their state at ``at`` and record each change as an event.

    Call inside the transaction that changed the ticket, on the locked row.
    ``reselect`` chooses the policy again (on creation, and when priority or
    queue change, which policies may match on); otherwise the snapshot on the
    ticket stays. Idempotent: a second call at the same instant writes
    nothing. Returns the targets as they now stand. ``writes``: where the
    changes go (saved at once by default). ``new``: the ticket is being
    opened in this transaction, so it has no targets and no status history
    yet, and nothing is read for them.
    """
    specs = specs or SpecCache()
    writes = writes or SlaWrites()
    existing = {} if new else {target.kind: target for target in specs.targets_of(ticket)}
    if not _tracked(ticket):
        policy = None
    elif reselect or (ticket.sla_policy_id is None and not existing):
        policy = _policy(ticket, specs)
    else:
        policy = _policy_snapshot(ticket, specs)
    if policy is None and not existing:
        _ticket_snapshot(ticket, None, [], writes)
        return []
    history: list[tuple[datetime, str]] = [(ticket.created_at, Status.NEW)] if new else specs.history_of(ticket)
    results: list[TicketTarget] = []
    for kind in (TargetKind.FIRST_REPLY, TargetKind.RESOLUTION):
        target = existing.get(kind)
        terms = _terms(policy, ticket.priority, kind) if _tracked(ticket) else None
        if target is not None and target.fulfilled_at is not None:
            kept = _Terms(
                target.policy, target.calendar, target.priority, target.minutes, target.hours, target.warning_percent
            )
            # A fulfilled target keeps its terms while the fulfilment stands (no reopen since).
            if _outcome(kind, kept, ticket, history, at, specs).fulfilled_at == target.fulfilled_at:
                results.append(target)
                continue
        if terms is None:
            if target is not None and target.state != TargetState.CANCELLED:
                _cancel(target, ticket, at, writes)
            if target is not None:
                results.append(target)
            continue
        outcome = _outcome(kind, terms, ticket, history, at, specs)
        results.append(_write(ticket, kind, target, terms, outcome, at, writes))
    _ticket_snapshot(ticket, policy, results, writes)
    return results


def _cancel(target: TicketTarget, ticket: Ticket, at: datetime, writes: SlaWrites) -> None:
    target.state = TargetState.CANCELLED
    target.due_at = target.warning_at = target.breaches_at = None
    target.evaluated_at = at
    target.next_check_at = None
    writes.target(target, fields=["state", "due_at", "warning_at", "breaches_at", "evaluated_at", "next_check_at"])
    writes.event(ticket=ticket, kind=TicketEvent.Kind.SLA_CANCELLED, actor=SYSTEM, at=at, after=_snapshot(target))


def _write(
    ticket: Ticket,
    kind: str,
    target: TicketTarget | None,
    terms: _Terms,
    outcome: sla_clock.Outcome,
    at: datetime,
    writes: SlaWrites,
) -> TicketTarget:
    created = target is None
    if target is None:
        target = TicketTarget(ticket=ticket, kind=kind, started_at=ticket.created_at)
        before: dict[str, Any] | None = None
        old_state, old_running, old_fulfilled, old_breached = None, False, None, None
        old_terms: tuple[Any, ...] = ()
    else:
        before = _snapshot(target)
        old_state, old_running, old_fulfilled, old_breached = (
            target.state,
            target.is_running,
            target.fulfilled_at,
            target.breached_at,
        )
        old_terms = tuple(getattr(target, name) for name in _TERM_FIELDS)
    old_due = target.due_at
    target.policy, target.calendar = terms.policy, terms.calendar
    target.priority, target.minutes, target.hours = terms.priority, terms.minutes, terms.hours
    target.warning_percent = terms.warning_percent
    target.state = outcome.state
    target.due_at, target.warning_at = outcome.due_at, outcome.warning_at
    target.breaches_at = outcome.breaches_at
    target.fulfilled_at, target.breached_at = outcome.fulfilled_at, outcome.breached_at
    new_terms = tuple(getattr(target, name) for name in _TERM_FIELDS)
    terms_changed = bool(old_terms) and new_terms != old_terms
    if terms_changed and target.due_at != old_due:
        # New terms are a new promise: its thresholds are notified afresh.
        target.warning_notified_at = None
        if target.breached_at is None:
            target.breach_notified_at = None
    target.next_check_at = target_next_check(target)
    if not created and _comparable(before) == _comparable(_snapshot(target)) and old_fulfilled == target.fulfilled_at:
        # Only the elapsed time moved: nothing to record, the row stays as it is.
        return target
    target.elapsed_seconds = outcome.elapsed_seconds
    target.evaluated_at = at
    writes.target(target, created=created)
    events: list[tuple[str, datetime]] = []
    if created or terms_changed:
        events.append((TicketEvent.Kind.SLA_APPLIED, at))
    elif old_state == TargetState.CANCELLED:
        events.append((TicketEvent.Kind.SLA_RESUMED, at))
    elif old_fulfilled is not None and target.fulfilled_at is None:
        # A reopen: the fulfilled target counts again.
        events.append((TicketEvent.Kind.SLA_RESUMED, at))
    elif target.state == TargetState.CANCELLED:
        events.append((TicketEvent.Kind.SLA_CANCELLED, at))
    elif old_fulfilled is None and target.fulfilled_at is None:
        if old_running and not target.is_running:
            events.append((TicketEvent.Kind.SLA_PAUSED, at))
        elif not old_running and target.is_running:
            events.append((TicketEvent.Kind.SLA_RESUMED, at))
    if target.breached_at is not None and old_breached is None:
        events.append((TicketEvent.Kind.SLA_BREACHED, target.breached_at))
    if target.fulfilled_at is not None and old_fulfilled is None:
        events.append((TicketEvent.Kind.SLA_FULFILLED, target.fulfilled_at))
    after = _snapshot(target)
    for event_kind, event_at in events:
        writes.event(ticket=ticket, kind=event_kind, actor=SYSTEM, at=event_at, before=before, after=after)
    return target


def _comparable(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {key: value for key, value in snapshot.items() if key != "elapsed_seconds"}


def _ticket_snapshot(ticket: Ticket, policy: SlaPolicy | None, targets: list[TicketTarget], writes: SlaWrites) -> None:
    running = [t.due_at for t in targets if t.is_running and t.due_at is not None]
    due = min(running) if running else None
    calendar_id = policy.calendar_id if policy is not None else None
    if (ticket.sla_policy_id, ticket.sla_calendar_id, ticket.sla_due_at) == (
        policy.pk if policy else None,
        calendar_id,
        due,
    ):
        return
    ticket.sla_policy = policy
    ticket.sla_calendar_id = calendar_id
    ticket.sla_due_at = due
    writes.ticket(ticket)


def tickets_sla_backfill(*, at: datetime, batch_size: int = 500) -> int:
    """Apply SLA targets, evaluated at ``at``, to unsolved tickets that have none yet.

    For tickets that arrive without the ticket services: imported history
    (``import_history`` runs this when it ends). The other inbound tickets
    without a policy (solved ones) get the policy snapshot the reports judge
    them by (``tickets_sla_policy_fill``). Warnings and breaches that
    were already past at ``at`` count as notified, so an import does not
    flood agents with notices about old tickets. Idempotent: a ticket with
    targets, or without a matching policy, is left as it is; the result is
    the number of tickets that got targets.
    """
    specs = SpecCache()
    if not specs.policies():
        return 0
    applied = _unsolved_targets_apply(at=at, batch_size=batch_size, specs=specs)
    tickets_sla_policy_fill()
    return applied


def _unsolved_targets_apply(*, at: datetime, batch_size: int, specs: SpecCache) -> int:
    candidates = Ticket.objects.filter(
        initiator=Initiator.INBOUND,
        status__in=UNSOLVED_STATUSES,
        merged_into__isnull=True,
        is_spam=False,
        is_deleted=False,
        sla_policy__isnull=True,
        sla_targets__isnull=True,
    ).order_by("pk")
    applied = 0
    last_pk = 0
    while True:
        ids = list(candidates.filter(pk__gt=last_pk).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return applied
        last_pk = ids[-1]
        with transaction.atomic():
            tickets = tickets_lock_rows(
                Ticket.objects.select_related("customer__organization", "queue").filter(
                    pk__in=ids, sla_targets__isnull=True
                )
            )
            # Reads in two queries and writes in three for the whole batch.
            specs.preload([ticket.pk for ticket in tickets])
            writes = SlaWrites(deferred=True)
            for ticket in tickets:
                written = ticket_sla_refresh(ticket=ticket, at=at, reselect=True, specs=specs, writes=writes)
                if written:
                    applied += 1
                for target in written:
                    _past_notices_settle(target, at, writes)
            writes.flush()


_MATCH_FIELDS = {
    "priority": "priority",
    "channel": "channel",
    "tier": "customer__organization__tier",
    "queue": "queue__slug",
    "initiator": "initiator",
}


def tickets_sla_policy_fill() -> int:
    """Snapshot the matching policy and its calendar on inbound tickets that have none (imported history).

    Reports judge a ticket's targets from its timeline and this snapshot
    (docs/metrics.md#sla), so solved imported tickets need the policy too,
    though no target row. Set-based: one UPDATE per policy, lowest rank
    first, so each ticket gets the first policy that matches. A condition on
    a fact the ticket lacks (no organization, so no tier) does not match.
    Idempotent; returns the number of tickets that got a policy.
    """
    filled = 0
    for policy in policies_ranked():
        candidates = Ticket.objects.filter(
            sla_policy__isnull=True, initiator=Initiator.INBOUND, is_spam=False, is_deleted=False
        )
        for key, wanted in (policy.match or {}).items():
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            candidates = candidates.filter(**{f"{_MATCH_FIELDS[key]}__in": values})
        filled += Ticket.objects.filter(pk__in=candidates.values("pk")).update(
            sla_policy=policy, sla_calendar=policy.calendar_id
        )
    return filled


def _past_notices_settle(target: TicketTarget, at: datetime, writes: SlaWrites) -> None:
    fields = []
    if target.warning_at is not None and target.warning_at <= at and target.warning_notified_at is None:
        target.warning_notified_at = at
        fields.append("warning_notified_at")
    if target.state == TargetState.BREACHED and target.breach_notified_at is None:
        target.breach_notified_at = at
        fields.append("breach_notified_at")
    if fields:
        target.next_check_at = target_next_check(target)
        writes.target(target, fields=[*fields, "next_check_at"])
