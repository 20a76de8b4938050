"""Bulk actions on the inbox: one change applied to many tickets (docs/inbox.md, "Bulk actions").

``bulk_request_check`` verifies and normalises what the page or the API sent
(the action, its parameters, the selection) or raises InvalidInput naming
each bad field. ``bulk_submit`` then applies a small selection in the request
(at most ``SERVICEDESK["BULK_SYNC_MAX"]`` tickets) and hands a larger one to
a worker as a ``BulkJob``.

Either way each ticket is changed by its own service call, with its own
TicketEvent, in its own transaction: a refusal (a status move the statuses
do not allow, an assignee outside the ticket's queue, a merge across
customers) is recorded for that ticket and the others go on. Each ticket is
checked against the agent's access (``tickets_visible_to``) when it is
processed, under its row lock: one the agent may no longer see is skipped
and counted, never changed.

A job is run by whoever claims it (one UPDATE from queued to running, or
over a claim whose heartbeat is older than ``JOB_LEASE``: a lost worker's).
Each ticket's change, its ``BulkJobItem`` (unique per job and ticket) and the
job's counters are written in one transaction, and the counters only while
the run still holds the claim, so a job re-delivered or taken over never
processes a ticket twice, and a cancelled job stops before its next ticket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ADMIN, is_agent, user_role
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import COUNT_CAP
from servicedesk.desk import pushes
from servicedesk.desk.models import BULK_JOB_ACTIVE, BulkAction, BulkJob, BulkJobItem, BulkJobStatus, BulkOutcome
from servicedesk.desk.saved_views import InvalidInput, inbox_params_clean, inbox_tickets
from servicedesk.tickets.access import queues_visible_to, ticket_get_for, tickets_visible_to
from servicedesk.tickets.events import Actor
from servicedesk.tickets.locks import tickets_lock
from servicedesk.tickets.models import Queue, Ticket
from servicedesk.tickets.services.tickets import (
    tag_names_clean,
    ticket_assign,
    ticket_merge,
    ticket_priority_change,
    ticket_queue_change,
    ticket_spam_set,
    ticket_status_change,
    ticket_tags_set,
)
from servicedesk.tickets.statuses import Priority, Status

log = logging.getLogger(__name__)

# A running job whose heartbeat (each ticket processed) is older than this was
# left by a lost worker: the sweep enqueues it again and a run takes it over.
JOB_LEASE = timedelta(minutes=5)
# A queued job this old lost its task (the broker was down when it was asked for).
JOB_PENDING_AGE = timedelta(minutes=1)
JOB_DISPATCH_BATCH = 100
# Progress is pushed to the agent's pages at most this often while a job runs.
PROGRESS_PUSH_SECONDS = 1.0
# Refusals listed in a summary at most (all are kept as the job's items).
SUMMARY_FAILURES_MAX = 200


def sync_max() -> int:
    """Selections up to this size are applied in the request."""
    return int(settings.SERVICEDESK.get("BULK_SYNC_MAX", 20))


def bulk_max() -> int:
    """The most tickets one bulk action may change (a larger selection is refused)."""
    return int(settings.SERVICEDESK.get("BULK_MAX", COUNT_CAP))


# --- The request, checked at the edge ----------------------------------------------


@dataclass(frozen=True)
class BulkRequest:
    """A checked bulk request: the action, its parameters as stored (JSON), and the selection:
    ``ids`` (tickets chosen) or ``filters`` (inbox filter parameters, with the count the agent saw)."""

    action: str
    parameters: dict[str, Any]
    ids: list[int] | None = None
    filters: dict[str, Any] | None = None
    seen_count: int | None = None
    source: str = "ui"


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
        return number if 0 < number < 2**63 else None
    return None


def _one_text(parameters: Mapping[str, Any], name: str) -> str:
    value = parameters.get(name)
    return value.strip() if isinstance(value, str) else ""


def bulk_parameters_check(*, user: Any, action: str, parameters: Any) -> dict[str, Any]:
    """The action's parameters in their stored form; InvalidInput naming each bad one.

    status ``{"status": "solved"}``; priority ``{"priority": "high"}``;
    assignee ``{"assignee": <agent id> | null}``; queue ``{"queue": "<slug>"}``
    (one ``user`` works in); tags ``{"add": [...], "remove": [...]}``; spam
    ``{"spam": true | false}``; merge ``{"target": "SD-1001"}`` (a ticket
    ``user`` sees, not merged itself); macro ``{"macro": <id>}`` (one ``user`` sees).
    """
    if action not in BulkAction.values:
        raise InvalidInput({"action": [_("Unknown action.")]})
    if not isinstance(parameters, Mapping):
        raise InvalidInput({"parameters": [_("Give the parameters as an object.")]})
    expected = {
        BulkAction.STATUS: {"status"},
        BulkAction.PRIORITY: {"priority"},
        BulkAction.ASSIGNEE: {"assignee"},
        BulkAction.QUEUE: {"queue"},
        BulkAction.TAGS: {"add", "remove"},
        BulkAction.SPAM: {"spam"},
        BulkAction.MERGE: {"target"},
        BulkAction.MACRO: {"macro"},
    }[BulkAction(action)]
    unknown = sorted(set(parameters) - expected)
    if unknown:
        raise InvalidInput({"parameters": [_("Unknown parameter: %(names)s.") % {"names": ", ".join(unknown)}]})
    checker = _PARAMETER_CHECKS[BulkAction(action)]
    return checker(user, parameters)


def _status_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    status = _one_text(parameters, "status")
    if status not in Status.values:
        raise InvalidInput({"status": [_("Choose a status.")]})
    return {"status": status}


def _priority_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    priority = _one_text(parameters, "priority")
    if priority not in Priority.values:
        raise InvalidInput({"priority": [_("Choose a priority.")]})
    return {"priority": priority}


def _assignee_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    if "assignee" not in parameters:
        raise InvalidInput({"assignee": [_("Choose an agent, or nobody.")]})
    raw = parameters["assignee"]
    if raw is None or raw in ("", "none"):
        return {"assignee": None}
    if raw == "me":
        return {"assignee": user.pk}
    pk = _whole_number(raw)
    agent = User.objects.filter(pk=pk, is_active=True).first() if pk else None
    if agent is None or not is_agent(agent):
        raise InvalidInput({"assignee": [_("Choose an active agent.")]})
    return {"assignee": agent.pk}


def _queue_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    slug = _one_text(parameters, "queue")
    if not slug or not queues_visible_to(user).filter(slug=slug).exists():
        raise InvalidInput({"queue": [_("Choose one of your queues.")]})
    return {"queue": slug}


def _tags_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    names: dict[str, list[str]] = {}
    for part in ("add", "remove"):
        raw = parameters.get(part) or []
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
            raise InvalidInput({"tags": [_("Give the tags as a list of names.")]})
        names[part] = tag_names_clean(raw)
    if not names["add"] and not names["remove"]:
        raise InvalidInput({"tags": [_("Give the tags to add or to remove.")]})
    both = sorted(set(names["add"]) & set(names["remove"]))
    if both:
        raise InvalidInput(
            {"tags": [_("A tag cannot be added and removed at once: %(names)s.") % {"names": ", ".join(both)}]}
        )
    return names


def _spam_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    raw = parameters.get("spam")
    value = {True: True, False: False, "1": True, "0": False, "true": True, "false": False}.get(
        raw.strip().lower() if isinstance(raw, str) else raw
    )
    if value is None:
        raise InvalidInput({"spam": [_("Choose spam or not spam.")]})
    return {"spam": value}


def _merge_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    reference = _one_text(parameters, "target").upper()
    try:
        target = ticket_get_for(user, reference) if reference else None
    except NotFound:
        target = None
    if target is None:
        raise InvalidInput({"target": [_("Give the reference of a ticket you can see to merge into.")]})
    if target.merged_into_id:
        raise InvalidInput({"target": [_("The target ticket was itself merged into another one.")]})
    return {"target": target.reference}


def _macro_check(user: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    from servicedesk.macros.access import macro_get_for

    try:
        macro = macro_get_for(user, parameters.get("macro"))
    except NotFound:
        raise InvalidInput({"macro": [_("Choose a macro you can use.")]}) from None
    return {"macro": macro.pk}


_PARAMETER_CHECKS: dict[BulkAction, Callable[[Any, Mapping[str, Any]], dict[str, Any]]] = {
    BulkAction.STATUS: _status_check,
    BulkAction.PRIORITY: _priority_check,
    BulkAction.ASSIGNEE: _assignee_check,
    BulkAction.QUEUE: _queue_check,
    BulkAction.TAGS: _tags_check,
    BulkAction.SPAM: _spam_check,
    BulkAction.MERGE: _merge_check,
    BulkAction.MACRO: _macro_check,
}


def bulk_request_check(*, user: Any, data: Mapping[str, Any], source: str = "ui") -> BulkRequest:
    """Verify and normalise a bulk request: ``action``, ``parameters`` and either ``ids``
    (ticket ids, each one ``user`` sees) or ``filter`` (inbox filter parameters, an object or
    a query string) with ``count`` (how many tickets the agent saw it match).

    Raises InvalidInput naming every bad field: an unknown action, bad
    parameters, no selection or both, ids that are not whole numbers or name
    tickets ``user`` does not see (listed as not found), more than ``bulk_max()``.
    """
    errors: dict[str, list[str]] = {}
    action = data.get("action")
    parameters: dict[str, Any] = {}
    try:
        parameters = bulk_parameters_check(
            user=user, action=action if isinstance(action, str) else "", parameters=data.get("parameters", {})
        )
    except InvalidInput as exc:
        errors.update(exc.errors)
    ids = filters = seen_count = None
    has_ids = data.get("ids") not in (None, "", [])
    has_filter = data.get("filter") is not None
    if has_ids == has_filter:
        errors["ids"] = [_("Choose tickets, or all the tickets of a filter (not both).")]
    elif has_ids:
        try:
            ids = _ids_check(user, data["ids"])
        except InvalidInput as exc:
            errors.update(exc.errors)
    else:
        try:
            filters, seen_count = _filter_check(user, data["filter"], data.get("count"))
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput(errors)
    if action == BulkAction.MERGE and ids is not None:
        ids = [pk for pk in ids if pk != _target_id(user, parameters)]
    return BulkRequest(
        action=str(action), parameters=parameters, ids=ids, filters=filters, seen_count=seen_count, source=source
    )


def _ids_check(user: Any, raw: Any) -> list[int]:
    if not isinstance(raw, list):
        raw = [raw]
    ids = [_whole_number(value) for value in raw]
    if None in ids:
        raise InvalidInput({"ids": [_("Give ticket ids, whole numbers.")]})
    wanted = sorted({pk for pk in ids if pk is not None})
    if len(wanted) > bulk_max():
        raise InvalidInput({"ids": [_("Choose at most %(n)d tickets.") % {"n": bulk_max()}]})
    seen = set(tickets_visible_to(user).filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [pk for pk in wanted if pk not in seen]
    if missing:
        shown = ", ".join(str(pk) for pk in missing[:20])
        raise InvalidInput({"ids": [_("Tickets not found: %(ids)s.") % {"ids": shown}]})
    return wanted


def _filter_check(user: Any, raw: Any, count: Any) -> tuple[dict[str, Any], int | None]:
    if isinstance(raw, str):
        raw = QueryDict(raw.lstrip("?"))
    if not isinstance(raw, Mapping | QueryDict):
        raise InvalidInput({"filter": [_("Give the filter as an object or a query string.")]})
    filters = inbox_params_clean(raw, user=user)
    seen = None
    if count not in (None, ""):
        zero = count in (0, "0") and not isinstance(count, bool)
        seen = 0 if zero else _whole_number(count)
        if seen is None:
            raise InvalidInput({"count": [_("Give the count you saw, a whole number.")]})
    return filters, seen


def _target_id(user: Any, parameters: Mapping[str, Any]) -> int:
    return ticket_get_for(user, parameters["target"]).pk


# --- Applying to one ticket ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ticket_id: int
    reference: str
    outcome: str
    reason: str = ""


@dataclass
class BulkSummary:
    """What a bulk action did: counts by outcome, and each refusal with its reason."""

    total: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.outcome, getattr(self, outcome.outcome) + 1)
        if outcome.outcome == BulkOutcome.FAILED and len(self.failures) < SUMMARY_FAILURES_MAX:
            self.failures.append(
                {"ticket": outcome.ticket_id, "reference": outcome.reference, "reason": outcome.reason}
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_processed": max(0, self.total - self.changed - self.unchanged - self.failed - self.skipped),
            "failures": self.failures,
        }


@dataclass(frozen=True)
class _Change:
    """A checked request turned into what the services take (looked up once per run)."""

    action: str
    parameters: dict[str, Any]
    assignee: User | None = None
    queue: Queue | None = None
    target: Ticket | None = None
    macro: Any = None


def _change_for(user: Any, action: str, parameters: dict[str, Any]) -> _Change:
    """The objects the parameters name, checked again for ``user`` now (a job runs later)."""
    checked = bulk_parameters_check(user=user, action=action, parameters=parameters)
    if action == BulkAction.ASSIGNEE:
        assignee = User.objects.filter(pk=checked["assignee"]).first() if checked["assignee"] else None
        return _Change(action, checked, assignee=assignee)
    if action == BulkAction.QUEUE:
        return _Change(action, checked, queue=Queue.objects.get(slug=checked["queue"]))
    if action == BulkAction.MERGE:
        return _Change(action, checked, target=ticket_get_for(user, checked["target"]))
    if action == BulkAction.MACRO:
        from servicedesk.macros.access import macro_get_for

        return _Change(action, checked, macro=macro_get_for(user, checked["macro"]))
    return _Change(action, checked)


class _JobStopped(Exception):
    """The run no longer holds its job (cancelled, or taken over): the ticket at hand is rolled back."""


def _perform(change: _Change, ticket: Ticket, actor: Actor, at: datetime) -> None:
    """The one service call of ``change`` on a ticket locked by the caller."""
    p = change.parameters
    if change.action == BulkAction.STATUS:
        ticket_status_change(ticket=ticket, status=p["status"], actor=actor, at=at)
    elif change.action == BulkAction.PRIORITY:
        ticket_priority_change(ticket=ticket, priority=p["priority"], actor=actor, at=at)
    elif change.action == BulkAction.ASSIGNEE:
        ticket_assign(ticket=ticket, assignee=change.assignee, actor=actor, at=at)
    elif change.action == BulkAction.QUEUE:
        assert change.queue is not None
        ticket_queue_change(ticket=ticket, queue=change.queue, actor=actor, at=at)
    elif change.action == BulkAction.TAGS:
        names = set(ticket.tags.values_list("name", flat=True))
        wanted = (names | set(p["add"])) - set(p["remove"])
        ticket_tags_set(ticket=ticket, tags=sorted(wanted), actor=actor, at=at)
    elif change.action == BulkAction.SPAM:
        ticket_spam_set(ticket=ticket, spam=p["spam"], actor=actor, at=at)
    elif change.action == BulkAction.MERGE:
        assert change.target is not None
        ticket_merge(source=ticket, target=change.target, actor=actor, at=at)
    elif change.action == BulkAction.MACRO:
        from servicedesk.macros.services import macro_apply

        macro_apply(macro=change.macro, ticket=ticket, actor=actor, at=at)


def _process(
    *,
    ticket_id: int,
    owner: Any,
    change: _Change,
    actor: Actor,
    at: datetime,
    record: Callable[[Outcome], None] | None = None,
) -> Outcome | None:
    """Apply ``change`` to one ticket in a transaction of its own; the outcome, or None when
    the job had processed the ticket already.

    Under the ticket's row lock (the merge target's too, in id order): the
    ticket must still be one ``owner`` sees, else it is skipped untouched; a
    refusal rolls back what the service began and is the outcome. ``record``
    (a job's) writes the outcome in the same transaction, and raises
    _JobStopped to roll the ticket back when the run lost its job.
    """
    with transaction.atomic():
        # A merge locks its target too: both in id order, as ticket_merge takes them.
        others = (change.target.pk,) if change.target is not None else ()
        locked = tickets_lock(ticket_id, *others).get(ticket_id)
        if locked is None:
            outcome = Outcome(ticket_id, "", BulkOutcome.SKIPPED, _("The ticket no longer exists."))
        elif not tickets_visible_to(owner).filter(pk=ticket_id).exists():
            outcome = Outcome(
                ticket_id, locked.reference or "", BulkOutcome.SKIPPED, _("You can no longer see this ticket.")
            )
        elif change.target is not None and change.target.pk == ticket_id:
            outcome = Outcome(ticket_id, locked.reference or "", BulkOutcome.UNCHANGED)
        else:
            outcome = _apply(change, locked, actor, at)
        if record is not None:
            record(outcome)
    return outcome


def _apply(change: _Change, locked: Ticket, actor: Actor, at: datetime) -> Outcome:
    before = locked.version
    reference = locked.reference or ""
    try:
        with transaction.atomic():
            _perform(change, locked, actor, at)
    except ApplicationError as exc:
        return Outcome(locked.pk, reference, BulkOutcome.FAILED, str(exc.message))
    after = Ticket.objects.filter(pk=locked.pk).values_list("version", flat=True).first()
    return Outcome(locked.pk, reference, BulkOutcome.CHANGED if after != before else BulkOutcome.UNCHANGED)


# --- Submitting -------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkSubmitted:
    """``summary`` when the request was applied at once, else the ``job`` a worker runs."""

    summary: BulkSummary | None = None
    job: BulkJob | None = None


def bulk_submit(*, user: Any, request: BulkRequest, at: datetime | None = None) -> BulkSubmitted:
    """Apply a checked request now when it selects at most ``sync_max()`` tickets, else queue a job.

    A filter is evaluated here for its size: the tickets it matches now are
    changed at once if they are few; otherwise the job evaluates it again
    when it runs. More than ``bulk_max()`` matching tickets is refused
    (InvalidInput on ``filter``). The job's task is enqueued after commit;
    with the broker down it stays queued until the sweep enqueues it.
    """
    at = at or timezone.now()
    ids = request.ids
    if request.filters is not None:
        found = _filter_ids(user, request, at, limit=max(sync_max(), bulk_max()) + 1)
        if len(found) > bulk_max():
            raise InvalidInput({"filter": [_("More than %(n)d tickets match: narrow the filter.") % {"n": bulk_max()}]})
        if len(found) <= sync_max():
            ids = found
    if ids is not None and len(ids) <= sync_max():
        return BulkSubmitted(summary=bulk_apply(user=user, request=request, ids=ids, at=at))
    return BulkSubmitted(job=bulk_job_create(user=user, request=request, at=at))


def _filter_ids(user: Any, request: BulkRequest, now: datetime, *, limit: int) -> list[int]:
    """The ids of the tickets a request's filter matches for ``user`` now, in id order (the merge
    target left out), at most ``limit``."""
    assert request.filters is not None
    qs = inbox_tickets(user=user, params=request.filters, now=now)
    if request.action == BulkAction.MERGE:
        qs = qs.exclude(reference=request.parameters["target"])
    return list(qs.prefetch_related(None).order_by("pk").values_list("pk", flat=True)[:limit])


def bulk_apply(*, user: Any, request: BulkRequest, ids: list[int], at: datetime | None = None) -> BulkSummary:
    """Apply the request to each of ``ids`` in the request, each ticket in its own transaction
    (see ``_process``); returns the summary. Errors: InvalidInput when the parameters no longer hold."""
    at = at or timezone.now()
    change = _change_for(user, request.action, request.parameters)
    actor = Actor.agent(user, source=request.source)
    summary = BulkSummary(total=len(ids))
    for pk in ids:
        outcome = _process(ticket_id=pk, owner=user, change=change, actor=actor, at=at)
        if outcome is not None:
            summary.add(outcome)
    return summary


# --- Jobs --------------------------------------------------------------------------------


def bulk_job_create(*, user: Any, request: BulkRequest, at: datetime | None = None) -> BulkJob:
    """Store the job and enqueue its run after commit (the sweep enqueues it again when the broker
    was down: ``bulk_jobs_pending_dispatch``). Not deduplicated: each call is a job."""
    from servicedesk.desk.tasks import bulk_job_run_task

    at = at or timezone.now()
    with transaction.atomic():
        job = BulkJob.objects.create(
            owner=user,
            action=request.action,
            source=request.source,
            parameters=request.parameters,
            ids=request.ids,
            filters=request.filters,
            seen_count=request.seen_count if request.ids is None else len(request.ids),
            ticket_ids=request.ids,
            total=len(request.ids) if request.ids is not None else 0,
            created_at=at,
        )
        transaction.on_commit(lambda: task_enqueue(bulk_job_run_task, job.pk))
    pushes.bulk_job_changed_publish(job=job)
    return job


def _claimable(now: datetime) -> Q:
    """Queued, or running under a claim whose heartbeat is older than the lease (a lost worker's)."""
    return Q(status=BulkJobStatus.QUEUED) | Q(status=BulkJobStatus.RUNNING, heartbeat_at__lt=now - JOB_LEASE)


def bulk_job_run(*, job_id: int) -> str:
    """Run a job: claim it, resolve its selection (once), process each ticket not yet processed, finish.

    Only the caller whose UPDATE claimed the job works on it; any other
    call (a re-delivered task, a second enqueue) returns the job's status.
    Parameters are checked again for the agent first: one no longer valid
    (a queue they left, a macro gone) fails the job with the reason and
    nothing changed. Returns the job's status at the end of this run.
    """
    claimed_at = timezone.now()
    claimed = BulkJob.objects.filter(_claimable(claimed_at), pk=job_id).update(
        status=BulkJobStatus.RUNNING, claimed_at=claimed_at, heartbeat_at=claimed_at
    )
    if not claimed:
        found = BulkJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        return found or "missing"
    job = BulkJob.objects.select_related("owner").get(pk=job_id)
    mine = BulkJob.objects.filter(pk=job_id, status=BulkJobStatus.RUNNING, claimed_at=claimed_at)
    pushes.bulk_job_changed_publish(job=job)
    owner = job.owner
    try:
        if not owner.is_active:
            raise ApplicationError(_("The agent who asked for this can no longer work in the desk."))
        change = _change_for(owner, job.action, job.parameters)
        if job.ticket_ids is None:
            request = BulkRequest(action=job.action, parameters=job.parameters, filters=job.filters)
            ids = _filter_ids(owner, request, claimed_at, limit=bulk_max() + 1)
            if len(ids) > bulk_max():
                raise ApplicationError(_("More than %(n)d tickets match now: narrow the filter.") % {"n": bulk_max()})
            if not mine.update(ticket_ids=ids, total=len(ids)):
                return _status_of(job_id)
            job.ticket_ids, job.total = ids, len(ids)
    except ApplicationError as exc:
        reason = (
            "; ".join(m for ms in exc.errors.values() for m in ms) if isinstance(exc, InvalidInput) else exc.message
        )
        mine.update(status=BulkJobStatus.FAILED, error=str(reason)[:2000], finished_at=timezone.now())
        pushes.bulk_job_changed_publish(job=job)
        return _status_of(job_id)
    actor = Actor.agent(owner, source=job.source)
    processed = set(BulkJobItem.objects.filter(job_id=job_id).values_list("ticket_id", flat=True))
    last_push = time.monotonic()

    def record(outcome: Outcome) -> None:
        at = timezone.now()
        try:
            with transaction.atomic():
                BulkJobItem.objects.create(
                    job_id=job_id, ticket_id=outcome.ticket_id, outcome=outcome.outcome, reason=outcome.reason, at=at
                )
        except IntegrityError:
            # Another run recorded this ticket (it held the claim before us): ours is rolled back.
            raise _JobStopped from None
        counters: dict[str, Any] = {"done": F("done") + 1, "heartbeat_at": at}
        if outcome.outcome in (BulkOutcome.CHANGED, BulkOutcome.FAILED, BulkOutcome.SKIPPED):
            counters[outcome.outcome] = F(outcome.outcome) + 1
        if not mine.update(**counters):
            raise _JobStopped

    at = claimed_at
    for pk in job.ticket_ids or []:
        if pk in processed:
            continue
        try:
            _process(ticket_id=pk, owner=owner, change=change, actor=actor, at=at, record=record)
        except _JobStopped:
            return _status_of(job_id)
        except Exception:
            # An unexpected failure of one ticket's service is that ticket's refusal, logged in full.
            log.exception("bulk job %s: ticket %s failed", job_id, pk)
            try:
                with transaction.atomic():
                    record(Outcome(pk, "", BulkOutcome.FAILED, _("An unexpected error stopped this change.")))
            except _JobStopped:
                return _status_of(job_id)
        if time.monotonic() - last_push >= PROGRESS_PUSH_SECONDS:
            last_push = time.monotonic()
            pushes.bulk_job_changed_publish(job=job)
    mine.update(status=BulkJobStatus.DONE, result=bulk_job_summary(job_id=job_id), finished_at=timezone.now())
    pushes.bulk_job_changed_publish(job=job)
    return _status_of(job_id)


def _status_of(job_id: int) -> str:
    return BulkJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or "missing"


def bulk_job_summary(*, job_id: int) -> dict[str, Any]:
    """The job's summary from its counters and items: counts by outcome, the refusals with reasons."""
    job = BulkJob.objects.get(pk=job_id)
    summary = BulkSummary(total=job.total, changed=job.changed, failed=job.failed, skipped=job.skipped)
    summary.unchanged = max(0, job.done - job.changed - job.failed - job.skipped)
    failures = (
        BulkJobItem.objects.filter(job_id=job_id, outcome=BulkOutcome.FAILED)
        .select_related("ticket")
        .order_by("ticket_id")[:SUMMARY_FAILURES_MAX]
    )
    summary.failures = [
        {"ticket": item.ticket_id, "reference": item.ticket.reference, "reason": item.reason} for item in failures
    ]
    return summary.as_dict()


def bulk_job_cancel(*, job: BulkJob, user: Any) -> BulkJob:
    """Cancel a queued or running job: no ticket after the one at hand is processed; what was
    done stays done and is in the summary. A finished job is left as it is. Owner or admins only
    (others: NotFound, as for reading it)."""
    if not bulk_job_may_see(user, job):
        raise NotFound(_("Job not found."))
    cancelled = BulkJob.objects.filter(pk=job.pk, status__in=BULK_JOB_ACTIVE).update(
        status=BulkJobStatus.CANCELLED, finished_at=timezone.now()
    )
    if cancelled:
        BulkJob.objects.filter(pk=job.pk).update(result=bulk_job_summary(job_id=job.pk))
        pushes.bulk_job_changed_publish(job=job)
    job.refresh_from_db()
    return job


def bulk_job_state(job: BulkJob) -> dict[str, Any]:
    """The job as the page's script and the API show it (JSON values only)."""
    return {
        "id": job.pk,
        "action": job.action,
        "action_label": str(BulkAction(job.action).label),
        "status": job.status,
        "status_label": str(BulkJobStatus(job.status).label),
        "active": job.active,
        "seen_count": job.seen_count,
        "total": job.total,
        "done": job.done,
        "changed": job.changed,
        "failed": job.failed,
        "skipped": job.skipped,
        "error": job.error,
        "result": job.result,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def bulk_job_may_see(user: Any, job: BulkJob) -> bool:
    """A job is its owner's, and the admins'."""
    return job.owner_id == getattr(user, "pk", None) or user_role(user) == ADMIN


def bulk_job_get_for(user: Any, pk: Any) -> BulkJob:
    """One job ``user`` may see (``bulk_job_may_see``), else NotFound."""
    job = BulkJob.objects.filter(pk=pk).first() if _whole_number(pk) else None
    if job is None or not bulk_job_may_see(user, job):
        raise NotFound(_("Job not found."))
    return job


def bulk_jobs_recent(*, user: Any, now: datetime | None = None, limit: int = 3) -> list[BulkJob]:
    """The agent's jobs to show on the inbox: those not finished, and those finished in the last half hour."""
    now = now or timezone.now()
    return list(
        BulkJob.objects.filter(owner_id=getattr(user, "pk", None), created_at__gte=now - timedelta(days=1))
        .filter(Q(status__in=BULK_JOB_ACTIVE) | Q(finished_at__gte=now - timedelta(minutes=30)))
        .order_by("-created_at", "-id")[:limit]
    )


def bulk_jobs_pending_dispatch(*, now: datetime | None = None) -> int:
    """Enqueue again the jobs whose task was lost: queued for more than ``JOB_PENDING_AGE`` (the
    broker was down when they were asked for) or running with a heartbeat older than ``JOB_LEASE``
    (the worker was lost). Processes nothing itself: the claim in ``bulk_job_run`` lets one run
    work on a job. At most ``JOB_DISPATCH_BATCH``, oldest first; stops at the first enqueue the
    broker refuses. Returns how many were enqueued."""
    from servicedesk.desk.tasks import bulk_job_run_task

    now = now or timezone.now()
    ids = list(
        BulkJob.objects.filter(
            Q(status=BulkJobStatus.QUEUED, created_at__lt=now - JOB_PENDING_AGE)
            | Q(status=BulkJobStatus.RUNNING, heartbeat_at__lt=now - JOB_LEASE)
        )
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:JOB_DISPATCH_BATCH]
    )
    enqueued = 0
    for pk in ids:
        if not task_enqueue(bulk_job_run_task, pk):
            break
        enqueued += 1
    return enqueued
