"""The ticket timeline as agents read it: who, when, what, before and after.

Event values are stored as the services wrote them (status codes, user ids,
queue slugs, tag lists); here they become labels and names, with the users
named in assignee events fetched in one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.accounts.models import User
from servicedesk.tickets.models import Channel, DeliveryStatus, Initiator, MessageKind, Ticket, TicketEvent
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
}


@dataclass(frozen=True)
class TimelineRow:
    event: TicketEvent
    actor: str
    before: str
    after: str
    source: str


def ticket_timeline(ticket: Ticket) -> list[TimelineRow]:
    events = list(
        TicketEvent.objects.filter(ticket=ticket).select_related("actor_user", "actor_customer").order_by("at", "id")
    )
    user_ids: set[int] = set()
    for event in events:
        for value in (event.before, event.after):
            if event.kind == TicketEvent.Kind.ASSIGNEE and isinstance(value, int):
                user_ids.add(value)
            elif isinstance(value, dict) and isinstance(value.get("assignee"), int):
                user_ids.add(value["assignee"])
    names = {user.pk: str(user) for user in User.objects.filter(pk__in=user_ids)} if user_ids else {}
    return [
        TimelineRow(
            event=event,
            actor=_actor_name(event),
            before=_display(event.kind, event.before, names),
            after=_display(event.kind, event.after, names),
            source=str(_SOURCES.get(event.source, event.source)),
        )
        for event in events
    ]


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
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if item is None or item == "":
                continue
            labels = _LABELS["delivery"] if kind == TicketEvent.Kind.DELIVERY and key == "status" else _LABELS.get(key)
            shown = labels.get(item, item) if labels and isinstance(item, str) else item
            if key == "assignee" and isinstance(item, int):
                shown = names.get(item, f"#{item}")
            parts.append(f"{_KEY_LABELS.get(key, key)}: {shown}")
        return ", ".join(parts)
    return str(value)
