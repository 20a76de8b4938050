"""The breach check: warnings, breach notices and escalations, each once per ticket target.

Celery beat runs ``sla_breach_check`` every minute (task ``sla.breach_check``).
It reads only the targets whose ``next_check_at`` has come (the partial index
``ticket_target_next_check``), brings each of their tickets up to date with
``ticket_sla_refresh`` and then, per target:

- a **warning** is owed when the target is active, its warning instant (the
  policy's ``warning_percent`` of the target) has come, and no warning was
  recorded (``warning_notified_at``);
- a **breach notice** is owed when the target is breached, not fulfilled, and
  no notice was recorded (``breach_notified_at``).

Recording the notice (the column set, ``next_check_at`` moved on by
``target_next_check``) and applying the policy's escalation rules of that
threshold happen in the ticket's transaction, on the locked ticket. The
messages go out after commit (task ``sla.notices_send``): in-app
notifications and emails to the assignee (or, unassigned, the queue's
agents), for a breach also to the managers, and to the managers named by
"notify a manager" rules. Each recipient gets one per target and threshold
(unique key ``sla:<target>:<threshold>``); each rule is applied once per
target (unique ``Escalation`` row). So a check that runs twice, two checks
at once, or a task delivered twice notify and escalate once. See docs/sla.md.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import translation

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import MANAGER
from servicedesk.core.datetimes import format_instant, viewer_time_zone
from servicedesk.notifications.models import NotificationKind
from servicedesk.notifications.services import notification_send
from servicedesk.sla.models import (
    Escalation,
    EscalationAction,
    EscalationRule,
    EscalationTargetKind,
    EscalationThreshold,
)
from servicedesk.tickets.events import Actor
from servicedesk.tickets.locks import tickets_lock_rows
from servicedesk.tickets.models import TargetState, Ticket, TicketTarget
from servicedesk.tickets.services.sla import SpecCache, target_next_check, ticket_sla_refresh
from servicedesk.tickets.services.tickets import ticket_priority_change, ticket_queue_change
from servicedesk.tickets.statuses import Priority

log = logging.getLogger(__name__)

BATCH_SIZE = 500
SYSTEM = Actor.system(source="sla")
_PRIORITY_RANK = {value: rank for rank, value in enumerate(Priority.values)}
# A ticket can owe a warning, then (after an escalation shortened its target) a breach:
# passes over one ticket are bounded so that a rule set can never make the check loop.
_MAX_PASSES = 4


@dataclass
class BreachCheckCounts:
    """What one run did: tickets examined, notices recorded, rules applied, tickets left to the next run."""

    tickets: int = 0
    warnings: int = 0
    breaches: int = 0
    escalations: int = 0
    skipped: int = 0  # locked by another run or a ticket change right now; the next run takes them
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _TicketResult:
    notices: list[list[Any]] = field(default_factory=list)  # [target id, threshold, [extra user ids]]
    warnings: int = 0
    breaches: int = 0
    escalations: int = 0


def sla_breach_check(*, now: datetime, batch_size: int = BATCH_SIZE) -> BreachCheckCounts:
    """Send the warnings and breach notices owed at ``now`` and apply the escalation rules, once each.

    Reads the targets due by ``now`` in ``next_check_at`` order, ``batch_size``
    at a time; each batch is one transaction that claims its tickets with
    ``SELECT ... FOR UPDATE SKIP LOCKED`` in ascending id order, so two runs
    at once never handle the same ticket and never wait on each other (a
    ticket locked elsewhere is left for the next run). A failure on one
    ticket rolls back that ticket only and is logged. Idempotent: a second
    run at the same instant finds nothing due. Returns the counts.
    """
    counts = BreachCheckCounts()
    specs = SpecCache()
    rules = _RuleCache()
    after: tuple[datetime, int] | None = None
    seen: set[int] = set()
    while True:
        rows = _due(now=now, after=after, limit=batch_size)
        if not rows:
            break
        after = (rows[-1][0], rows[-1][1])
        ticket_ids = sorted({ticket_id for _at, _pk, ticket_id in rows} - seen)
        seen.update(ticket_ids)
        if ticket_ids:
            _batch(ticket_ids, now=now, specs=specs, rules=rules, counts=counts)
        if len(rows) < batch_size:
            break
    return counts


def _due(*, now: datetime, after: tuple[datetime, int] | None, limit: int) -> list[tuple[datetime, int, int]]:
    """(next_check_at, id, ticket id) of the next due targets after the key ``after``; index-only reads."""
    due = TicketTarget.objects.filter(next_check_at__lte=now)
    if after is not None:
        due = due.filter(Q(next_check_at__gt=after[0]) | Q(next_check_at=after[0], pk__gt=after[1]))
    rows = due.order_by("next_check_at", "pk").values_list("next_check_at", "pk", "ticket_id")[:limit]
    return [(at, pk, ticket_id) for at, pk, ticket_id in rows if at is not None]


def _batch(
    ticket_ids: list[int], *, now: datetime, specs: SpecCache, rules: _RuleCache, counts: BreachCheckCounts
) -> None:
    notices: list[list[Any]] = []
    with transaction.atomic():
        # Tickets first, in ascending id order, as every ticket service locks them.
        locked = tickets_lock_rows(
            Ticket.objects.select_related("sla_policy__calendar")
            .prefetch_related("sla_policy__targets")
            .filter(pk__in=ticket_ids),
            skip_locked=True,
        )
        counts.skipped += len(ticket_ids) - len(locked)
        # Another run may have checked some of them between the read of the due
        # rows and the locks; read after the locks, its work is seen and not redone.
        still_due = set(
            TicketTarget.objects.filter(
                ticket_id__in=[ticket.pk for ticket in locked], next_check_at__lte=now
            ).values_list("ticket_id", flat=True)
        )
        tickets = [ticket for ticket in locked if ticket.pk in still_due]
        specs.preload([ticket.pk for ticket in tickets])
        for ticket in tickets:
            try:
                with transaction.atomic():
                    result = _ticket_check(ticket, now=now, specs=specs, rules=rules)
            except Exception:
                log.exception("SLA breach check failed for ticket %s", ticket.pk)
                counts.failed += 1
                continue
            counts.tickets += 1
            counts.warnings += result.warnings
            counts.breaches += result.breaches
            counts.escalations += result.escalations
            notices.extend(result.notices)
        if notices:
            from servicedesk.sla.tasks import sla_notices_send_task

            transaction.on_commit(lambda: sla_notices_send_task.delay(notices))


def _owed(target: TicketTarget, now: datetime) -> list[str]:
    if target.fulfilled_at is not None:
        return []
    if (
        target.state == TargetState.ACTIVE
        and target.warning_notified_at is None
        and target.warning_at is not None
        and target.due_at is not None
        and target.warning_at <= now
        and target.warning_at < target.due_at
    ):
        return [EscalationThreshold.WARNING]
    if target.state == TargetState.BREACHED and target.breach_notified_at is None:
        return [EscalationThreshold.BREACH]
    return []


def _ticket_check(ticket: Ticket, *, now: datetime, specs: SpecCache, rules: _RuleCache) -> _TicketResult:
    """Notices and escalations owed by one locked ticket at ``now``."""
    result = _TicketResult()
    noticed: dict[tuple[int, str], list[Any]] = {}
    targets = ticket_sla_refresh(ticket=ticket, at=now, specs=specs)
    for _pass in range(_MAX_PASSES):
        owed = [(target, threshold) for target in targets for threshold in _owed(target, now)]
        if not owed:
            break
        changed = False
        for target, threshold in owed:
            setattr(target, f"{threshold}_notified_at", now)
            target.next_check_at = target_next_check(target)
            target.save(update_fields=[f"{threshold}_notified_at", "next_check_at"])
            notice = noticed.get((target.pk, threshold))
            if notice is None:
                # Owed again after an escalation changed the terms, it is still the same notice.
                notice = noticed[(target.pk, threshold)] = [target.pk, str(threshold), []]
                result.notices.append(notice)
                if threshold == EscalationThreshold.WARNING:
                    result.warnings += 1
                else:
                    result.breaches += 1
            for rule in rules.get(target, threshold):
                if not _escalation_claim(rule, target, now):
                    continue
                result.escalations += 1
                if rule.action == EscalationAction.NOTIFY_MANAGER and rule.user_id not in notice[2]:
                    notice[2].append(rule.user_id)
                elif rule.action == EscalationAction.RAISE_PRIORITY and (
                    _PRIORITY_RANK[rule.priority] > _PRIORITY_RANK[ticket.priority]
                ):
                    ticket = ticket_priority_change(ticket=ticket, priority=rule.priority, actor=SYSTEM, at=now)
                    changed = True
                elif rule.action == EscalationAction.MOVE_QUEUE and rule.queue_id != ticket.queue_id:
                    assert rule.queue is not None
                    ticket = ticket_queue_change(ticket=ticket, queue=rule.queue, actor=SYSTEM, at=now)
                    changed = True
        if not changed:
            break
        # The escalation changed the terms (a new priority or queue): look again at the new targets.
        targets = ticket_sla_refresh(ticket=ticket, at=now, specs=specs)
    return result


class _RuleCache:
    """Escalation rules by policy, read once per policy and run."""

    def __init__(self) -> None:
        self._by_policy: dict[int, list[EscalationRule]] = {}

    def get(self, target: TicketTarget, threshold: str) -> list[EscalationRule]:
        rules = self._by_policy.get(target.policy_id)
        if rules is None:
            rules = self._by_policy[target.policy_id] = list(
                EscalationRule.objects.filter(policy_id=target.policy_id)
                .select_related("queue")
                .order_by("order", "pk")
            )
        return [
            rule
            for rule in rules
            if rule.threshold == threshold and rule.target_kind in (EscalationTargetKind.ANY, target.kind)
        ]


def _escalation_claim(rule: EscalationRule, target: TicketTarget, now: datetime) -> bool:
    """Record that ``rule`` applies to ``target``; False when it already did (the unique pair decides)."""
    try:
        with transaction.atomic():
            Escalation.objects.create(rule=rule, target=target, applied_at=now)
    except IntegrityError:
        return False
    return True


def sla_notices_send(*, notices: list[list[Any]]) -> int:
    """Send the in-app notifications and emails of recorded notices; returns how many were new.

    ``notices`` holds [target id, threshold, [extra user ids]] as the breach
    check recorded them. Recipients: the assignee, or the queue's agents when
    nobody is assigned; for a breach also every manager; and the managers
    named by "notify a manager" rules. Idempotent on (user,
    ``sla:<target>:<threshold>``): sending the same notices again sends
    nothing. A warning whose target was fulfilled meanwhile is dropped.
    """
    sent = 0
    ids = [int(notice[0]) for notice in notices]
    targets = {
        target.pk: target
        for target in TicketTarget.objects.filter(pk__in=ids).select_related(
            "ticket", "ticket__assignee", "ticket__queue", "calendar"
        )
    }
    managers: list[User] | None = None
    for target_id, threshold, extra in notices:
        target = targets.get(int(target_id))
        if target is None:
            continue
        if threshold == EscalationThreshold.WARNING and target.fulfilled_at is not None:
            continue
        recipients = _assigned(target.ticket)
        if threshold == EscalationThreshold.BREACH:
            if managers is None:
                managers = list(User.objects.filter(is_active=True, groups__name=MANAGER).order_by("pk"))
            recipients += managers
        if extra:
            recipients += list(User.objects.filter(is_active=True, pk__in=extra).order_by("pk"))
        unique = {user.pk: user for user in recipients}
        for user in unique.values():
            if _notice_send(user=user, target=target, threshold=threshold) is not None:
                sent += 1
    return sent


def _assigned(ticket: Ticket) -> list[User]:
    if ticket.assignee is not None:
        return [ticket.assignee] if ticket.assignee.is_active else []
    return list(ticket.queue.members.filter(is_active=True).order_by("pk"))


def _notice_send(*, user: User, target: TicketTarget, threshold: str) -> object:
    ticket = target.ticket
    zone = viewer_time_zone(user)
    with translation.override(user.language or settings.LANGUAGE_CODE):
        values = {
            "reference": ticket.reference,
            "subject": ticket.subject,
            "target": target.get_kind_display(),
            "target_lower": str(target.get_kind_display()).lower(),
            "percent": target.warning_percent,
            "due": _local(target.due_at, zone),
            "breached": _local(target.breached_at, zone),
        }
        if threshold == EscalationThreshold.WARNING:
            kind = NotificationKind.SLA_WARNING
            title = translation.gettext("[%(reference)s] %(target)s target due soon") % values
            body = (
                translation.gettext(
                    "%(percent)s%% of the %(target_lower)s target of ticket %(reference)s (%(subject)s) has elapsed. "
                    "It falls due at %(due)s."
                )
                % values
            )
        else:
            kind = NotificationKind.SLA_BREACH
            title = translation.gettext("[%(reference)s] %(target)s target breached") % values
            body = (
                translation.gettext(
                    "The %(target_lower)s target of ticket %(reference)s (%(subject)s) was breached at %(breached)s."
                )
                % values
            )
    return notification_send(
        user=user,
        kind=kind,
        key=f"sla:{target.pk}:{threshold}",
        title=title,
        body=body,
        ticket=ticket,
        url=reverse("desk:ticket", kwargs={"reference": ticket.reference}),
    )


def _local(value: datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    return "-" if value is None else format_instant(value, zone)
