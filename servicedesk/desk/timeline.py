"""The ticket timeline as agents read it: who, when, what, before and after.

Event values are stored as the services wrote them (status codes, user ids,
queue slugs, tag lists); here they become labels and names, with the users
named in assignee events fetched in one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.accounts.models import User
from servicedesk.core.datetimes import format_instant
from servicedesk.desk.sla import duration_text
from servicedesk.sla.models import SlaPolicy, TargetHours
from servicedesk.tickets import access
from servicedesk.tickets.models import (
    Channel,
    DeliveryStatus,
    Initiator,
    MessageKind,
    TargetKind,
    TargetState,
    Ticket,
    TicketEvent,
)
from servicedesk.tickets.services.merging import merge_reference
from servicedesk.tickets.statuses import Priority, Status

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

_LABELS: dict[str, dict[str, StrOrPromise]] = {
    "status": dict(Status.choices),
    "priority": dict(Priority.choices),
    "kind": dict(MessageKind.choices),
    "delivery": dict(DeliveryStatus.choices),
    "channel": dict(Channel.choices),
    "initiator": dict(Initiator.choices),
}

_KEY_LABELS = {
    "status": gettext_lazy("status"),
    "priority": gettext_lazy("priority"),
    "channel": gettext_lazy("channel"),
    "initiator": gettext_lazy("started by"),
    "queue": gettext_lazy("queue"),
    "topic": gettext_lazy("topic"),
    "assignee": gettext_lazy("assignee"),
    "kind": gettext_lazy("type"),
    "error": gettext_lazy("reason"),
    "score": gettext_lazy("score"),
    "customer": gettext_lazy("customer"),
}


_SOURCES = {
    "ui": gettext_lazy("workspace"),
    "api": gettext_lazy("API"),
    "intake": gettext_lazy("channel"),
    "portal": gettext_lazy("customer portal"),
    "import": gettext_lazy("import"),
    "system": gettext_lazy("automatic"),
    "routing": gettext_lazy("automatic assignment"),
    "sla": gettext_lazy("service level"),
}


_SLA_KINDS = frozenset(
    {
        TicketEvent.Kind.SLA_APPLIED,
        TicketEvent.Kind.SLA_PAUSED,
        TicketEvent.Kind.SLA_RESUMED,
        TicketEvent.Kind.SLA_FULFILLED,
        TicketEvent.Kind.SLA_BREACHED,
        TicketEvent.Kind.SLA_CANCELLED,
    }
)


# Events whose value names the other ticket of a merge or a split (services/merging.py).
_MERGE_KINDS = frozenset(
    {TicketEvent.Kind.MERGED, TicketEvent.Kind.MERGED_IN, TicketEvent.Kind.SPLIT, TicketEvent.Kind.SPLIT_FROM}
)


@dataclass(frozen=True)
class TimelineRow:
    event: TicketEvent
    actor: str
    before: str
    after: str
    source: str


def ticket_timeline(ticket: Ticket, *, user: Any, tz: tzinfo | None = None) -> list[TimelineRow]:
    """The ticket's events as ``user`` may read them, oldest first; instants inside SLA values
    are shown in ``tz``. A customer who acted is named only if ``user`` may see them
    (``access.customers_conceal``), and a merge names the other ticket only if ``user``
    may see it (``access.ticket_references_visible``), else "another ticket"."""
    events = list(
        TicketEvent.objects.filter(ticket=ticket).select_related("actor_user", "actor_customer").order_by("at", "id")
    )
    # Who did what is named as ``user`` may see them (docs/architecture.md, "Access rules").
    access.customers_conceal(user, [], events=events)
    user_ids: set[int] = set()
    policy_slugs: set[str] = set()
    merged_references = {
        merge_reference(value)
        for event in events
        if event.kind in _MERGE_KINDS
        for value in (event.before, event.after)
        if merge_reference(value)
    }
    shown_references = access.ticket_references_visible(user, merged_references) if merged_references else set()
    for event in events:
        for value in (event.before, event.after):
            if event.kind == TicketEvent.Kind.ASSIGNEE and isinstance(value, int):
                user_ids.add(value)
            elif isinstance(value, dict) and isinstance(value.get("assignee"), int):
                user_ids.add(value["assignee"])
            if event.kind in _SLA_KINDS and isinstance(value, dict) and isinstance(value.get("policy"), str):
                policy_slugs.add(value["policy"])
    names = {user.pk: str(user) for user in User.objects.filter(pk__in=user_ids)} if user_ids else {}
    policies = dict(SlaPolicy.objects.filter(slug__in=policy_slugs).values_list("slug", "name")) if policy_slugs else {}
    zone = tz or timezone.get_current_timezone()

    def shown(kind: str, value: Any) -> str:
        if kind in _SLA_KINDS:
            return _sla_display(value, policies, zone)
        if kind == TicketEvent.Kind.PENDING_UNTIL:
            return _pending_until_display(value, zone)
        if kind in _MERGE_KINDS and merge_reference(value):
            reference = merge_reference(value)
            return reference if reference in shown_references else _("another ticket")
        return _display(kind, value, names)

    return [
        TimelineRow(
            event=event,
            actor=_actor_name(event),
            before=shown(event.kind, event.before),
            after=shown(event.kind, event.after),
            source=str(_SOURCES.get(event.source, event.source)),
        )
        for event in events
    ]


def _sla_display(value: Any, policies: dict[str, str], zone: tzinfo) -> str:
    """A target snapshot as a sentence: "First reply: Active · due 2025-10-20 12:00 · target 2 h 00 min
    (Business hours) · Standard"."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    kind, state = value.get("target"), value.get("state")
    head = str(TargetKind(kind).label) if kind in TargetKind.values else str(kind or "")
    if state in TargetState.values:
        head = f"{head}: {TargetState(state).label}"
    parts = [head]
    due = _instant(value.get("due_at"))
    if due is not None:
        parts.append(_("due %(when)s") % {"when": format_instant(due, zone)})
    elif state in (TargetState.ACHIEVED, TargetState.BREACHED, TargetState.PAUSED) and isinstance(
        value.get("elapsed_seconds"), int | float
    ):
        parts.append(_("measured %(time)s") % {"time": duration_text(int(value["elapsed_seconds"] // 60))})
    if isinstance(value.get("minutes"), int):
        hours = value.get("hours")
        hours_label = TargetHours(hours).label if hours in TargetHours.values else hours
        parts.append(_("target %(time)s (%(hours)s)") % {"time": duration_text(value["minutes"]), "hours": hours_label})
    policy = value.get("policy")
    if isinstance(policy, str):
        parts.append(policies.get(policy, policy))
    return " · ".join(parts)


def _pending_until_display(value: Any, zone: tzinfo) -> str:
    """A pending-until value (docs/followups.md): the instant in ``zone``, and why it ended when the time came."""
    if isinstance(value, dict):
        until = _instant(value.get("until"))
        if value.get("reason") == "until_reached":
            return _("cleared: the time came")
        return format_instant(until, zone) if until is not None else _("cleared")
    until = _instant(value)
    return format_instant(until, zone) if until is not None else ""


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _actor_name(event: TicketEvent) -> str:
    if event.actor_user_id:
        return str(event.actor_user)
    if event.actor_customer_id:
        return str(event.actor_customer)
    return _("System")


def _display(kind: str, value: Any, names: dict[int, str]) -> str:
    if value is None or value == "":
        return ""
    if kind == TicketEvent.Kind.ASSIGNEE:
        return names.get(value, f"#{value}") if isinstance(value, int) else str(value)
    if kind in (TicketEvent.Kind.STATUS, TicketEvent.Kind.PRIORITY) and isinstance(value, str):
        return str(_LABELS[kind].get(value, value))
    if kind == TicketEvent.Kind.DELIVERY and isinstance(value, str):
        return str(_LABELS["delivery"].get(value, value))
    if kind == TicketEvent.Kind.SPAM and isinstance(value, bool):
        return _("Spam") if value else _("Not spam")
    if kind == TicketEvent.Kind.DELETED and isinstance(value, bool):
        return _("Deleted") if value else _("Not deleted")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if item is None or item == "":
                continue
            labels = _LABELS["delivery"] if kind == TicketEvent.Kind.DELIVERY and key == "status" else _LABELS.get(key)
            shown = labels.get(item, item) if labels and isinstance(item, str) else item
            if kind == TicketEvent.Kind.DELIVERY and key == "error" and isinstance(item, str):
                shown = _(item)  # our own reasons are in the catalogue; a server's reply stays as it is
            if key == "assignee" and isinstance(item, int):
                shown = names.get(item, f"#{item}")
            parts.append(f"{_KEY_LABELS.get(key, key)}: {shown}")
        return ", ".join(parts)
    return str(value)
