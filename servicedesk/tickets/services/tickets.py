"""Ticket state changes. Each writes the change and its TicketEvent in one transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent, sees_all_queues
from servicedesk.core.errors import ApplicationError
from servicedesk.core.prepared import row_update
from servicedesk.core.text import clean_line
from servicedesk.tickets import hooks, statuses
from servicedesk.tickets.config import queue_default_cached
from servicedesk.tickets.events import Actor, event_build, event_record, events_store
from servicedesk.tickets.ids import ids_allocate
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import Customer, Queue, Rating, Tag, Ticket, TicketEvent, TicketTarget, Topic
from servicedesk.tickets.services.sla import SlaWrites, ticket_sla_refresh
from servicedesk.tickets.statuses import Priority, Status


class InvalidStatusTransition(ApplicationError):
    pass


class InvalidAssignee(ApplicationError):
    pass


class InvalidMerge(ApplicationError):
    pass


def priority_check(priority: str) -> None:
    """Raise ApplicationError (field ``priority``) for anything but a known priority."""
    if priority not in Priority.values:
        raise ApplicationError(_("Unknown priority."), field="priority")


def reference_for(pk: int) -> str:
    conf = settings.SERVICEDESK
    return f"{conf['REFERENCE_PREFIX']}-{pk + conf['REFERENCE_OFFSET']}"


def queue_default() -> Queue:
    """The configured default queue, else the oldest; created when there is no queue at all."""
    queue = queue_default_cached()
    if queue is None:
        slug = settings.SERVICEDESK["DEFAULT_QUEUE"]
        queue, _created = Queue.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    return queue


@dataclass
class TicketOpened:
    """A ticket just inserted, and what its opening still has to store.

    ``events`` (the ``created`` event, then its SLA events) and the SLA
    targets waiting in ``sla`` are stored by ``store``, in two statements,
    after whatever the caller adds to ``events`` (its messages' events).
    """

    ticket: Ticket
    targets: list[TicketTarget]
    events: list[TicketEvent]
    sla: SlaWrites

    def store(self) -> None:
        self.sla.flush()
        events_store(self.events)


def ticket_insert(
    *,
    customer: Customer,
    subject: str,
    channel: str,
    actor: Actor,
    at: datetime,
    initiator: str = "inbound",
    queue: Queue | None = None,
    topic: Topic | None = None,
    priority: str = Priority.NORMAL,
    assignee: User | None = None,
    language: str = "",
    external_id: str | None = None,
    same_issue_as: Ticket | None = None,
    is_spam: bool = False,
    is_deleted: bool = False,
) -> TicketOpened:
    """Insert a ticket in status ``new`` with its reference and SLA snapshot (two statements:
    its id from the sequence, then the row).

    The ``created`` event and the SLA targets and events are gathered, not
    stored: call ``TicketOpened.store`` in the same transaction (``ticket_create``
    does all of it). Run inside ``transaction.atomic``.
    """
    priority_check(priority)
    if queue is None:
        queue = topic.queue if topic is not None and topic.queue is not None else queue_default()
    subject = clean_line(subject, max_length=300) or _("(no subject)")
    ticket = Ticket(
        subject=subject,
        channel=channel,
        initiator=initiator,
        status=Status.NEW,
        priority=priority,
        customer=customer,
        topic=topic,
        queue=queue,
        assignee=assignee,
        language=language,
        portal_key=secrets.token_hex(16),
        external_id=external_id,
        same_issue_as=same_issue_as,
        is_spam=is_spam,
        is_deleted=is_deleted,
        created_at=at,
        updated_at=at,
    )
    events = [
        event_build(
            ticket=ticket,
            kind=TicketEvent.Kind.CREATED,
            actor=actor,
            at=at,
            after={
                "status": Status.NEW,
                "priority": priority,
                "channel": channel,
                "initiator": initiator,
                "queue": queue.slug,
                "topic": topic.slug if topic else None,
                "assignee": assignee.pk if assignee else None,
            },
        )
    ]
    # The targets and the snapshot are worked out before the insert, which carries the snapshot.
    sla = SlaWrites(deferred=True, events=events, ticket_unsaved=True)
    targets: list[TicketTarget] = []
    if actor.source != "import":
        # Imported history states its own outcome; its tickets get their targets when the import ends.
        targets = ticket_sla_refresh(ticket=ticket, at=at, reselect=True, writes=sla, new=True)
    sla.ticket_unsaved = False
    # The id is taken from the table's sequence first, so the row is inserted
    # with its reference: an UPDATE after the insert would write every one of
    # the ticket's indexes a second time.
    (ticket.pk,) = ids_allocate(Ticket, 1)
    ticket.reference = reference_for(ticket.pk)
    ticket.save(force_insert=True)
    return TicketOpened(ticket=ticket, targets=targets, events=events, sla=sla)


def ticket_create(
    *,
    customer: Customer,
    subject: str,
    channel: str,
    actor: Actor,
    initiator: str = "inbound",
    queue: Queue | None = None,
    topic: Topic | None = None,
    priority: str = Priority.NORMAL,
    assignee: User | None = None,
    language: str = "",
    at: datetime | None = None,
    external_id: str | None = None,
    same_issue_as: Ticket | None = None,
    is_spam: bool = False,
    is_deleted: bool = False,
) -> Ticket:
    """Open a ticket in status ``new`` with a ``created`` event; reference ``SD-<n>``.

    Idempotency for imports comes from ``external_id`` (unique).
    """
    at = at or timezone.now()
    with transaction.atomic():
        opened = ticket_insert(
            customer=customer,
            subject=subject,
            channel=channel,
            actor=actor,
            at=at,
            initiator=initiator,
            queue=queue,
            topic=topic,
            priority=priority,
            assignee=assignee,
            language=language,
            external_id=external_id,
            same_issue_as=same_issue_as,
            is_spam=is_spam,
            is_deleted=is_deleted,
        )
        opened.store()
        ticket_route_inbound(opened, actor=actor, at=at)
    return opened.ticket


def ticket_route_inbound(opened: TicketOpened, *, actor: Actor, at: datetime) -> None:
    """Automatic assignment of a ticket just opened, in the same transaction
    (docs/architecture.md, "Routing"), by the router routing registered in the
    ticket hooks. What the opening gathered is stored before the router writes."""
    ticket = opened.ticket
    if (
        ticket.initiator == "inbound"
        and ticket.assignee_id is None
        and not (ticket.is_spam or ticket.is_deleted)
        and actor.source != "import"
    ):
        hooks.inbound_ticket_route(ticket=ticket, at=at, before_write=opened.store)


def _sla_refresh(ticket: Ticket, actor: Actor, at: datetime, *, reselect: bool = False) -> None:
    """Move the SLA targets with the change. Imported history states its own
    outcome; its tickets get their targets evaluated when the import ends."""
    if actor.source != "import":
        ticket_sla_refresh(ticket=ticket, at=at, reselect=reselect)


def ticket_touch(ticket: Ticket, at: datetime, fields: list[str]) -> None:
    """Save ``fields`` of a locked ticket a service just changed, and move its
    ``updated_at`` to ``at`` unless the ticket is already newer (imported
    history arrives out of order). For services of this package and of
    packages above it (routing); the caller holds the ticket's lock.
    The ticket's version goes up by one in the same UPDATE (docs/architecture.md,
    "Concurrent changes")."""
    ticket.version += 1
    fields.append("version")
    if at > ticket.updated_at:
        ticket.updated_at = at
        fields.append("updated_at")
    row_update(ticket, fields)


def status_transition_check(*, current: str, target: str) -> bool:
    """True when ``current`` -> ``target`` is a change TRANSITIONS allows, False when
    the ticket already has that status; raises InvalidStatusTransition otherwise."""
    if target not in Status.values:
        raise InvalidStatusTransition(_("Unknown status."), field="status")
    if current == target:
        return False
    if not statuses.can_transition(current, target):
        raise InvalidStatusTransition(
            _("A ticket cannot go from %(before)s to %(after)s.")
            % {"before": Status(current).label, "after": Status(target).label},
            field="status",
        )
    return True


def status_fields_set(ticket: Ticket, status: str, at: datetime) -> list[str]:
    """Put ``status`` on the instance, with ``solved_at`` set on a solve and cleared on
    a reopen (docs/metrics.md#statuses) and ``pending_until`` cleared by any status but
    pending; returns the fields that changed."""
    before = ticket.status
    ticket.status = status
    fields = ["status"]
    if statuses.is_solve(before, status):
        ticket.solved_at = at
        fields.append("solved_at")
    elif statuses.is_reopen(before, status):
        ticket.solved_at = None
        fields.append("solved_at")
    if status != Status.PENDING and ticket.pending_until is not None:
        # Leaving pending, by any path, ends a snooze (docs/followups.md).
        ticket.pending_until = None
        fields.append("pending_until")
    return fields


def _apply_status(ticket: Ticket, status: str, actor: Actor, at: datetime) -> bool:
    """Change status on a locked ticket; returns False when it already had it."""
    before = ticket.status
    if not status_transition_check(current=before, target=status):
        return False
    ticket_touch(ticket, at, status_fields_set(ticket, status, at))
    event_record(ticket=ticket, kind=TicketEvent.Kind.STATUS, actor=actor, at=at, before=before, after=status)
    _sla_refresh(ticket, actor, at)
    return True


def ticket_status_change(*, ticket: Ticket, status: str, actor: Actor, at: datetime | None = None) -> Ticket:
    """Move a ticket to ``status`` if TRANSITIONS allows it; same status is a no-op.

    Raises InvalidStatusTransition (nothing changed). A merged ticket stays closed.
    """
    at = at or timezone.now()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if locked.merged_into_id:
            raise InvalidStatusTransition(_("This ticket was merged into another one."), field="status")
        _apply_status(locked, status, actor, at)
    return locked


def ticket_priority_change(*, ticket: Ticket, priority: str, actor: Actor, at: datetime | None = None) -> Ticket:
    at = at or timezone.now()
    priority_check(priority)
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if locked.priority != priority:
            before = locked.priority
            locked.priority = priority
            ticket_touch(locked, at, ["priority"])
            event_record(
                ticket=locked, kind=TicketEvent.Kind.PRIORITY, actor=actor, at=at, before=before, after=priority
            )
            _sla_refresh(locked, actor, at, reselect=True)
    return locked


def _set_aside(ticket: Ticket, *, kind: str, value: bool, actor: Actor, at: datetime | None) -> Ticket:
    """Set the flag of ``kind`` (``TicketEvent.SET_ASIDE``), with its event and the SLA moved along."""
    field = TicketEvent.SET_ASIDE[kind]
    at = at or timezone.now()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        before = getattr(locked, field)
        if before != value:
            setattr(locked, field, value)
            ticket_touch(locked, at, [field])
            event_record(ticket=locked, kind=kind, actor=actor, at=at, before=before, after=value)
            _sla_refresh(locked, actor, at, reselect=True)
    return locked


def ticket_spam_set(*, ticket: Ticket, spam: bool, actor: Actor, at: datetime | None = None) -> Ticket:
    """Mark a ticket as spam, or as not spam; a ``spam`` event records each change.

    A spam ticket leaves the queues' lists, routing, the SLA (its targets are
    cancelled; marked not spam, they run again) and every service metric.
    """
    return _set_aside(ticket, kind=TicketEvent.Kind.SPAM, value=spam, actor=actor, at=at)


def ticket_delete_set(*, ticket: Ticket, deleted: bool, actor: Actor, at: datetime | None = None) -> Ticket:
    """Delete a ticket (kept, hidden), or restore it; a ``deleted`` event records each change.

    A deleted ticket is seen only by managers and admins (in the inbox's
    Deleted view, to restore it); it leaves routing, the SLA and every
    service metric like spam. Who may delete is the caller's check.
    """
    return _set_aside(ticket, kind=TicketEvent.Kind.DELETED, value=deleted, actor=actor, at=at)


def assignee_check(*, ticket: Ticket, assignee: User | None) -> None:
    if assignee is None:
        return
    if not assignee.is_active or not is_agent(assignee):
        raise InvalidAssignee(_("Tickets can only be assigned to active agents."), field="assignee")
    if not sees_all_queues(assignee) and not assignee.queues.filter(pk=ticket.queue_id).exists():
        raise InvalidAssignee(_("This agent does not work in the ticket's queue."), field="assignee")


def ticket_assign(*, ticket: Ticket, assignee: User | None, actor: Actor, at: datetime | None = None) -> Ticket:
    """Assign to an agent of the ticket's queue (or unassign with None)."""
    at = at or timezone.now()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        assignee_check(ticket=locked, assignee=assignee)
        new_id = assignee.pk if assignee else None
        if locked.assignee_id != new_id:
            before = locked.assignee_id
            locked.assignee = assignee
            ticket_touch(locked, at, ["assignee"])
            event_record(ticket=locked, kind=TicketEvent.Kind.ASSIGNEE, actor=actor, at=at, before=before, after=new_id)
    return locked


def ticket_queue_change(*, ticket: Ticket, queue: Queue, actor: Actor, at: datetime | None = None) -> Ticket:
    """Move to another queue; an assignee who does not work there is unassigned."""
    at = at or timezone.now()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if locked.queue_id != queue.pk:
            before = locked.queue.slug
            locked.queue = queue
            ticket_touch(locked, at, ["queue"])
            event_record(
                ticket=locked, kind=TicketEvent.Kind.QUEUE, actor=actor, at=at, before=before, after=queue.slug
            )
            _sla_refresh(locked, actor, at, reselect=True)
            if locked.assignee is not None:
                try:
                    assignee_check(ticket=locked, assignee=locked.assignee)
                except InvalidAssignee:
                    before_assignee = locked.assignee_id
                    locked.assignee = None
                    locked.save(update_fields=["assignee"])
                    event_record(
                        ticket=locked,
                        kind=TicketEvent.Kind.ASSIGNEE,
                        actor=actor,
                        at=at,
                        before=before_assignee,
                        after=None,
                    )
    return locked


def ticket_topic_change(*, ticket: Ticket, topic: Topic | None, actor: Actor, at: datetime | None = None) -> Ticket:
    at = at or timezone.now()
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        new_id = topic.pk if topic else None
        if locked.topic_id != new_id:
            before = locked.topic.slug if locked.topic else None
            locked.topic = topic
            ticket_touch(locked, at, ["topic"])
            event_record(
                ticket=locked,
                kind=TicketEvent.Kind.TOPIC,
                actor=actor,
                at=at,
                before=before,
                after=topic.slug if topic else None,
            )
    return locked


def ticket_subject_change(*, ticket: Ticket, subject: str, actor: Actor, at: datetime | None = None) -> Ticket:
    at = at or timezone.now()
    subject = clean_line(subject, max_length=300)
    if not subject:
        raise ApplicationError(_("The subject cannot be empty."), field="subject")
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        if locked.subject != subject:
            before = locked.subject
            locked.subject = subject
            ticket_touch(locked, at, ["subject"])
            event_record(ticket=locked, kind=TicketEvent.Kind.SUBJECT, actor=actor, at=at, before=before, after=subject)
    return locked


def tag_names_clean(names: Iterable[str]) -> list[str]:
    cleaned = []
    for name in names:
        name = " ".join(str(name).split()).lower()[:64]
        if name and name not in cleaned:
            cleaned.append(name)
    return sorted(cleaned)


def ticket_tags_set(*, ticket: Ticket, tags: Iterable[str], actor: Actor, at: datetime | None = None) -> Ticket:
    """Replace the ticket's tags (names are trimmed and lower-cased)."""
    at = at or timezone.now()
    names = tag_names_clean(tags)
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        before = sorted(locked.tags.values_list("name", flat=True))
        if before != names:
            for name in names:
                Tag.objects.get_or_create(name=name)
            locked.tags.set(Tag.objects.filter(name__in=names))
            ticket_touch(locked, at, [])
            event_record(ticket=locked, kind=TicketEvent.Kind.TAGS, actor=actor, at=at, before=before, after=names)
    return locked


# The properties a page or an API client changes, with the event kind that records each.
FIELD_EVENT_KINDS: dict[str, str] = {
    "status": TicketEvent.Kind.STATUS,
    "priority": TicketEvent.Kind.PRIORITY,
    "assignee": TicketEvent.Kind.ASSIGNEE,
    "queue": TicketEvent.Kind.QUEUE,
    "topic": TicketEvent.Kind.TOPIC,
    "subject": TicketEvent.Kind.SUBJECT,
    "tags": TicketEvent.Kind.TAGS,
    "is_spam": TicketEvent.Kind.SPAM,
    "is_deleted": TicketEvent.Kind.DELETED,
    "pending_until": TicketEvent.Kind.PENDING_UNTIL,
}


class TicketConflict(ApplicationError):
    """A field the caller changed was changed by someone else since they loaded the ticket."""

    status_code = 409

    def __init__(self, conflicts: list[FieldConflict], *, version: int) -> None:
        lines = [conflict.describe() for conflict in conflicts]
        super().__init__(" ".join(lines), extra={"version": version})
        self.conflicts = conflicts
        self.version = version


class TicketVersionMismatch(ApplicationError):
    """The caller's version of the ticket (the API's If-Match) is not the current one."""

    status_code = 412

    def __init__(self, *, version: int) -> None:
        super().__init__(
            _("The ticket was changed since you loaded it (it is now at version %(version)d).") % {"version": version},
            extra={"version": version},
        )
        self.version = version


@dataclass(frozen=True)
class FieldConflict:
    """One refused field: its value now, and who changed it last and when."""

    field: str
    current: Any
    current_label: str
    changed_by: str
    changed_at: datetime | None

    def describe(self) -> str:
        return _("%(field)s was changed to %(value)s by %(who)s after you opened this ticket.") % {
            "field": field_label(self.field),
            "value": self.current_label,
            "who": self.changed_by,
        }


def field_label(field: str) -> str:
    """The user-facing name of a ticket property."""
    labels = {
        "status": _("Status"),
        "priority": _("Priority"),
        "assignee": _("Assignee"),
        "queue": _("Queue"),
        "topic": _("Topic"),
        "subject": _("Subject"),
        "tags": _("Tags"),
        "is_spam": _("Spam"),
        "is_deleted": _("Deleted"),
        "pending_until": _("Pending until"),
    }
    return str(labels.get(field, field))


def ticket_field_values(ticket: Ticket) -> dict[str, Any]:
    """Each property's current value in the form changes are compared in:
    ids for related rows, tag names sorted."""
    return {
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee": ticket.assignee_id,
        "queue": ticket.queue_id,
        "topic": ticket.topic_id,
        "subject": ticket.subject,
        "tags": sorted(tag.name for tag in ticket.tags.all()),
        "is_spam": ticket.is_spam,
        "is_deleted": ticket.is_deleted,
        "pending_until": ticket.pending_until,
    }


def field_value_comparable(field: str, value: Any) -> Any:
    """A change or an original value in the form of ``ticket_field_values``."""
    if field in ("assignee", "queue", "topic"):
        if value is None or value == "":
            return None
        return value.pk if hasattr(value, "pk") else int(value)
    if field == "tags":
        names = value.split(",") if isinstance(value, str) else value
        return tag_names_clean(names or [])
    if field == "subject":
        return " ".join(str(value or "").split())[:300]
    return value


def _field_value_label(field: str, value: Any) -> str:
    if field == "status":
        return str(Status(value).label)
    if field == "priority":
        return str(Priority(value).label)
    if field == "assignee":
        user = User.objects.filter(pk=value).first() if value else None
        return str(user) if user else str(_("Unassigned"))
    if field == "queue":
        return str(Queue.objects.filter(pk=value).first() or value)
    if field == "topic":
        return str(Topic.objects.filter(pk=value).first() or _("No topic"))
    if field == "tags":
        return ", ".join(value) or str(_("no tags"))
    if field in ("is_spam", "is_deleted"):
        return str(_("yes") if value else _("no"))
    return str(value)


def _changed_by(ticket: Ticket, field: str) -> tuple[str, datetime | None]:
    """Who made the latest change of ``field`` and when, from the timeline."""
    event = (
        TicketEvent.objects.filter(ticket=ticket, kind=FIELD_EVENT_KINDS[field])
        .select_related("actor_user", "actor_customer")
        .order_by("-at", "-id")
        .first()
    )
    if event is None:
        return str(_("someone else")), None
    if event.actor_user is not None:
        return str(event.actor_user), event.at
    if event.actor_customer is not None:
        return str(event.actor_customer), event.at
    return str(_("the system")), event.at


def ticket_conflicts_check(
    *, ticket: Ticket, changes: Mapping[str, Any], originals: Mapping[str, Any], version: int | None = None
) -> None:
    """Refuse changes to fields that changed since the caller read ``originals``.

    ``ticket`` is locked by the caller. When it is still at ``version`` (the
    one the caller read) nothing changed since; otherwise only the fields in
    ``changes`` that have an original are compared, and one whose current
    value is already what the caller asks for is no conflict. Raises
    TicketConflict naming each field, its value now and who set it.
    """
    if version is not None and ticket.version == version:
        return
    current = ticket_field_values(ticket)
    conflicts = []
    for field, value in changes.items():
        if field not in originals or field not in current:
            continue
        now = current[field]
        if now == field_value_comparable(field, originals[field]) or now == field_value_comparable(field, value):
            continue
        who, when = _changed_by(ticket, field)
        conflicts.append(
            FieldConflict(
                field=field,
                current=now,
                current_label=_field_value_label(field, now),
                changed_by=who,
                changed_at=when,
            )
        )
    if conflicts:
        raise TicketConflict(conflicts, version=ticket.version)


def ticket_version_require(*, ticket: Ticket, version: int) -> Ticket:
    """Lock ``ticket`` and raise TicketVersionMismatch unless it is at ``version`` (the API's If-Match).

    For a write that does not take a version itself (a customer's message,
    which goes through intake): call it inside that write's transaction, so
    the row lock keeps the ticket at ``version`` until the write commits.
    """
    if transaction.get_autocommit():
        raise RuntimeError("ticket_version_require guards a write: call it inside that write's transaction.")
    locked = ticket_lock(ticket.pk)
    if locked.version != version:
        raise TicketVersionMismatch(version=locked.version)
    return locked


def ticket_update(
    *,
    ticket: Ticket,
    actor: Actor,
    at: datetime | None = None,
    originals: Mapping[str, Any] | None = None,
    version: int | None = None,
    **changes: Any,
) -> Ticket:
    """Apply several field changes at once, all or nothing; fields not given are not written.

    Accepts ``status``, ``priority``, ``assignee`` (User or None), ``queue``,
    ``topic``, ``subject``, ``tags``, ``is_spam``, ``is_deleted`` and ``pending_until``
    (after the status: the ticket must then be pending; None clears it); each leaves its own event.
    ``version`` (the API's If-Match) must be the ticket's current version, else
    TicketVersionMismatch; ``originals`` (the values a page was loaded with)
    make ``ticket_conflicts_check`` refuse a field someone else changed since
    (TicketConflict). Both are checked under the row lock before anything is written.
    """
    at = at or timezone.now()
    unknown = set(changes) - set(FIELD_EVENT_KINDS)
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        if version is not None or originals:
            locked = ticket_lock(ticket.pk)
            if version is not None and locked.version != version:
                raise TicketVersionMismatch(version=locked.version)
            if originals:
                ticket_conflicts_check(ticket=locked, changes=changes, originals=originals)
        if "subject" in changes:
            ticket = ticket_subject_change(ticket=ticket, subject=changes["subject"], actor=actor, at=at)
        if "queue" in changes:
            ticket = ticket_queue_change(ticket=ticket, queue=changes["queue"], actor=actor, at=at)
        if "topic" in changes:
            ticket = ticket_topic_change(ticket=ticket, topic=changes["topic"], actor=actor, at=at)
        if "priority" in changes:
            ticket = ticket_priority_change(ticket=ticket, priority=changes["priority"], actor=actor, at=at)
        if "assignee" in changes:
            ticket = ticket_assign(ticket=ticket, assignee=changes["assignee"], actor=actor, at=at)
        if "tags" in changes:
            ticket = ticket_tags_set(ticket=ticket, tags=changes["tags"], actor=actor, at=at)
        if "status" in changes:
            ticket = ticket_status_change(ticket=ticket, status=changes["status"], actor=actor, at=at)
        if "is_spam" in changes:
            ticket = ticket_spam_set(ticket=ticket, spam=changes["is_spam"], actor=actor, at=at)
        if "is_deleted" in changes:
            ticket = ticket_delete_set(ticket=ticket, deleted=changes["is_deleted"], actor=actor, at=at)
        if "pending_until" in changes:
            from servicedesk.tickets.services.followups import ticket_pending_until_set

            ticket = ticket_pending_until_set(ticket=ticket, until=changes["pending_until"], actor=actor, at=at)
    return ticket


def ticket_merge(
    *, source: Ticket, target: Ticket, actor: Actor, at: datetime | None = None, notify_customer: bool = False
) -> Ticket:
    """Merge ``source`` into ``target``: see ``services/merging.py`` (imported when called, as it builds on this module)."""
    from servicedesk.tickets.services import merging

    return merging.ticket_merge(source=source, target=target, actor=actor, at=at, notify_customer=notify_customer)


def ticket_rate(
    *,
    ticket: Ticket,
    score: int,
    actor: Actor,
    comment: str = "",
    at: datetime | None = None,
    external_key: str | None = None,
) -> Rating:
    """Record the customer's satisfaction rating (1-5); the latest one counts."""
    at = at or timezone.now()
    if not isinstance(score, int) or not 1 <= score <= 5:
        raise ApplicationError(_("A rating is a whole number from 1 to 5."), field="score")
    with transaction.atomic():
        locked = ticket_lock(ticket.pk)
        rating = Rating.objects.create(ticket=locked, score=score, comment=comment, at=at, external_key=external_key)
        ticket_touch(locked, at, [])
        event_record(ticket=locked, kind=TicketEvent.Kind.RATING, actor=actor, at=at, after={"score": score})
    return rating
