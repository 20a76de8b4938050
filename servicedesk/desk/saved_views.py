"""The inbox's filters, columns and views: built-in, personal and shared (docs/inbox.md).

An inbox is an address: its filters, sort and visible columns are the query
string (``?status=open&tags=vip&sort=-updated&columns=reference,subject``).
A saved view names one; the sidebar lists the views an agent may see, each
with its count, all counted in one statement (``view_counts``).

Who sees which view: personal views their owner; views shared with everyone
every agent; views shared with a queue the agents who work that queue
(``access.queues_visible_to``). A view whose queue, or a queue its filters
name, is not one the agent sees is not shown to them. Only the owner changes a
personal view; managers and admins make, rename and delete the shared ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.errors import ApplicationError, NotFound, PermissionDenied
from servicedesk.core.pagination import COUNT_CAP
from servicedesk.core.prepared import planned_for_values
from servicedesk.core.text import clean_line
from servicedesk.desk.models import SavedView, ViewScope
from servicedesk.tickets.access import queues_visible_to, tickets_visible_to
from servicedesk.tickets.models import Channel, MessageMention, Queue, Ticket
from servicedesk.tickets.selectors import (
    DUE_VIEWS,
    TAG_MATCH_ALL,
    TAG_MATCH_ANY,
    TICKET_SORTS,
    TicketFilters,
    ticket_filters_q,
    ticket_list,
    ticket_search_for,
)
from servicedesk.tickets.services.tickets import tag_names_clean
from servicedesk.tickets.statuses import UNSOLVED_STATUSES, Priority, Status


class InvalidInput(ApplicationError):
    """Bad input in one or more fields: ``errors`` holds each field's messages (a 400)."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: [str(message) for message in messages] for name, messages in errors.items()}
        super().__init__(_("Invalid input."), extra=self.errors)


# --- Columns -------------------------------------------------------------------

# Every column the inbox can show, in the order it shows them. The reference is
# always shown: it is the row's link to the ticket.
COLUMNS: dict[str, Promise] = {
    "reference": gettext_lazy("Reference"),
    "subject": gettext_lazy("Subject"),
    "customer": gettext_lazy("Customer"),
    "channel": gettext_lazy("Channel"),
    "status": gettext_lazy("Status"),
    "priority": gettext_lazy("Priority"),
    "due": gettext_lazy("SLA due"),
    "queue": gettext_lazy("Queue"),
    "assignee": gettext_lazy("Assignee"),
    "tags": gettext_lazy("Tags"),
    "updated": gettext_lazy("Updated"),
    "created": gettext_lazy("Created"),
}
DEFAULT_COLUMNS: tuple[str, ...] = tuple(COLUMNS)
ALWAYS_SHOWN = "reference"


def columns_clean(raw: Any, *, strict: bool = True) -> tuple[str, ...]:
    """The columns asked for (a comma-separated string or a list), in the inbox's order.

    Nothing asked for is every column. ``strict``: an unknown name raises
    InvalidInput (field ``columns``); otherwise it is left out.
    """
    names = _strings(raw)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown and strict:
        raise InvalidInput({"columns": [_("Unknown column: %(name)s.") % {"name": ", ".join(unknown)}]})
    wanted = {name for name in names if name in COLUMNS}
    if not wanted:
        return DEFAULT_COLUMNS
    wanted.add(ALWAYS_SHOWN)
    return tuple(name for name in COLUMNS if name in wanted)


def _strings(raw: Any) -> list[str]:
    """Values given as one comma-separated string, a list of them, or None; trimmed, empty ones left out."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    values: list[str] = []
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise InvalidInput({"filters": [_("Give each value as text.")]})
        values.extend(part.strip() for part in str(item).split(",") if part.strip())
    return list(dict.fromkeys(values))


# --- Filters -------------------------------------------------------------------

# The inbox's filter parameters; the multi-valued ones are lists (``status=new,open``).
FILTER_KEYS = (
    "q",
    "status",
    "queue",
    "assignee",
    "channel",
    "priority",
    "customer",
    "tags",
    "tag_match",
    "due",
    "spam",
    "deleted",
    "mentioned",
)
MULTI_KEYS = frozenset({"status", "queue", "channel", "priority", "tags"})
MENTIONED_ME = "me"
SEARCH_MAX = 200


def inbox_params_clean(data: Mapping[str, Any] | QueryDict, *, user: Any, strict: bool = True) -> dict[str, Any]:
    """The inbox filter parameters of ``data`` in one form: multi-valued ones as lists, others as strings.

    ``data`` is a query string's QueryDict or a JSON object. Keys other than
    ``FILTER_KEYS`` are left out, or refused with ``strict``, as is any value
    the inbox would not match (an unknown status, a queue ``user`` does not
    see, an id that is not a whole number): InvalidInput names each field.
    """
    errors: dict[str, list[str]] = {}
    keys = list(data.keys())
    if strict:
        unknown = [key for key in keys if key not in FILTER_KEYS]
        if unknown:
            errors["filters"] = [_("Unknown filter: %(names)s.") % {"names": ", ".join(sorted(unknown))}]
    cleaned: dict[str, Any] = {}
    for key in FILTER_KEYS:
        if key not in data:
            continue
        raw = data.getlist(key) if isinstance(data, QueryDict) else data[key]
        try:
            value = _filter_value(key, raw, user=user)
        except InvalidInput as exc:
            errors[key] = [message for messages in exc.errors.values() for message in messages]
            continue
        if value:
            cleaned[key] = value
    if errors and strict:
        raise InvalidInput(errors)
    return cleaned


def _filter_value(key: str, raw: Any, *, user: Any) -> Any:
    """One filter's value in its stored form ('' or [] when empty); InvalidInput when it could never match."""
    if key in ("spam", "deleted"):
        values = _strings(raw)
        if values and values[-1].lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise InvalidInput({key: [_("Give 1 or 0.")]})
        return "1" if values and values[-1].lower() in ("1", "true", "yes") else ""
    if key == "q":
        text = raw[-1] if isinstance(raw, list | tuple) and raw else raw
        if text is None:
            return ""
        if not isinstance(text, str):
            raise InvalidInput({key: [_("Give the search as text.")]})
        return clean_line(text, max_length=SEARCH_MAX)
    values = _strings(raw)
    if key == "tags":
        return tag_names_clean(values)
    allowed: Iterable[str] | None = {
        "status": Status.values,
        "priority": Priority.values,
        "channel": Channel.values,
        "tag_match": (TAG_MATCH_ALL, TAG_MATCH_ANY),
        "due": DUE_VIEWS,
        "mentioned": (MENTIONED_ME,),
    }.get(key)
    if key == "queue":
        allowed = set(queues_visible_to(user).filter(slug__in=values).values_list("slug", flat=True))
    if allowed is not None:
        unknown = [value for value in values if value not in allowed]
        if unknown:
            raise InvalidInput({key: [_("Unknown value: %(values)s.") % {"values": ", ".join(unknown)}]})
    if key in MULTI_KEYS:
        return values
    if len(values) > 1:
        raise InvalidInput({key: [_("Give one value.")]})
    value = values[0] if values else ""
    if key == "customer" and value and not _whole_number(value):
        raise InvalidInput({key: [_("Give the customer's id, a whole number.")]})
    if key == "assignee" and value and value not in ("me", "none") and not _whole_number(value):
        raise InvalidInput({key: [_("Give an agent's id, me or none.")]})
    return value


def _whole_number(value: str) -> bool:
    return value.isascii() and value.isdigit() and 0 < int(value) < 2**63


def params_query_dict(params: Mapping[str, Any]) -> QueryDict:
    """Stored filter parameters as the QueryDict a request would carry."""
    query = QueryDict(mutable=True)
    for key, value in params.items():
        query.setlist(key, [",".join(value)] if isinstance(value, list) else [str(value)])
    return query


def params_query_string(params: Mapping[str, Any], **extra: Any) -> str:
    """``key=value&...`` of the parameters (lists comma-separated, as the inbox's links write them)."""
    pairs = [*params.items(), *((k, v) for k, v in extra.items() if v not in (None, "", []))]
    return "&".join(
        f"{quote(str(key))}={quote(','.join(value) if isinstance(value, list) else str(value), safe=',')}"
        for key, value in pairs
    )


def is_mentioned(params: Mapping[str, Any] | QueryDict) -> bool:
    value = params.get("mentioned")
    return (value[-1] if isinstance(value, list) and value else value) == MENTIONED_ME


def inbox_tickets(*, user: Any, params: Mapping[str, Any] | QueryDict, now: datetime | None = None) -> QuerySet[Ticket]:
    """The inbox's tickets for filter parameters (a request's QueryDict or stored ones), sorted by
    their ``sort``, related rows prefetched: ``ticket_list`` and the inbox's own filters."""
    query = params if isinstance(params, QueryDict) else params_query_dict(params)
    qs = ticket_list(user=user, filters=TicketFilters.from_params(query), now=now)
    if is_mentioned(query):
        qs = qs.filter(mentioned_q(user))
    return qs


def inbox_q(*, user: Any, params: Mapping[str, Any], now: datetime, search: Q | None = None) -> Q:
    """The condition of stored filter parameters on the tickets ``user`` sees; runs no query
    (``search``: the condition of their search when the caller made it already)."""
    query = params_query_dict(params)
    q = ticket_filters_q(user=user, filters=TicketFilters.from_params(query), now=now, search=search)
    if is_mentioned(query):
        q &= mentioned_q(user)
    return q


# --- "Mentioned": replaceable -------------------------------------------------

MentionRule = Callable[[Any], Q]


def mentioned_in_notes(user: Any) -> Q:
    """Tickets with an internal note that mentions ``user``: its ``MessageMention`` rows, written
    when the note is stored (docs/followups.md); one probe of the (user, ticket) index per ticket."""
    user_id: int = getattr(user, "pk", None) or 0
    return Q(Exists(MessageMention.objects.filter(user_id=user_id, ticket_id=OuterRef("pk"))))


_mention_rule: list[MentionRule] = [mentioned_in_notes]


def mention_rule_set(rule: MentionRule) -> MentionRule:
    """Make ``rule`` (user -> condition on tickets) what "mentioned" means; returns the rule it replaced.

    For the package that records mentions, from its ``AppConfig.ready``.
    """
    replaced = _mention_rule[0]
    _mention_rule[0] = rule
    return replaced


def mentioned_q(user: Any) -> Q:
    """Tickets whose internal notes mention ``user`` (a condition on tickets; no query runs)."""
    return _mention_rule[0](user)


# --- Built-in views --------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinView:
    key: str
    label: Promise
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def query_string(self) -> str:
        return params_query_string(self.params)


# Open work: the statuses that still wait for someone.
OPEN_STATUSES = [status for status in Status.values if status in UNSOLVED_STATUSES]
BUILTIN_VIEWS: tuple[BuiltinView, ...] = (
    BuiltinView("mine", gettext_lazy("My open tickets"), {"assignee": "me", "status": OPEN_STATUSES}),
    BuiltinView("unassigned", gettext_lazy("Unassigned"), {"assignee": "none", "status": OPEN_STATUSES}),
    BuiltinView("mentioned", gettext_lazy("Mentioning me"), {"mentioned": MENTIONED_ME}),
)


# --- Saved views: reads ----------------------------------------------------------


def saved_views_visible_to(user: Any) -> list[SavedView]:
    """The views ``user`` may see, by name: their own, those shared with everyone and
    with their queues, except any whose filters name a queue they do not see. At most two queries."""
    queues = queues_visible_to(user)
    shared = Q(scope=ViewScope.EVERYONE) | Q(scope=ViewScope.QUEUE, queue__in=queues.values("pk"))
    views = list(
        SavedView.objects.filter(Q(scope=ViewScope.PERSONAL, owner_id=getattr(user, "pk", None)) | shared)
        .select_related("queue")
        .order_by("name", "pk")
    )
    named = {slug for view in views for slug in view.filters.get("queue", [])}
    if not named:
        return views
    seen = set(queues.filter(slug__in=named).values_list("slug", flat=True))
    return [view for view in views if set(view.filters.get("queue", [])) <= seen]


def saved_view_get_for(user: Any, pk: Any) -> SavedView:
    """One view ``user`` may see, else NotFound."""
    found = next((view for view in saved_views_visible_to(user) if str(view.pk) == str(pk)), None)
    if found is None:
        raise NotFound(_("View not found."))
    return found


def saved_view_can_change(user: Any, view: SavedView) -> bool:
    """The owner changes a personal view; managers and admins the shared ones."""
    if view.scope == ViewScope.PERSONAL:
        return view.owner_id == getattr(user, "pk", None)
    return sees_all_queues(user)


def saved_view_query_string(view: SavedView) -> str:
    """The view's inbox address after ``?``: its filters, sort, columns (unless all) and its id."""
    columns = list(view.columns) if tuple(view.columns) != DEFAULT_COLUMNS else None
    # In the inbox's order of filters, whatever order the database keeps the object's keys in.
    filters = {key: view.filters[key] for key in FILTER_KEYS if key in view.filters}
    return params_query_string(filters, sort=view.sort, columns=columns, view=view.pk)


@planned_for_values()
def view_counts(*, user: Any, views: Iterable[SavedView], now: datetime | None = None) -> dict[str, int]:
    """How many tickets each built-in view (by key) and each saved view (``view-<id>``) lists for
    ``user`` now, up to ``COUNT_CAP`` (``COUNT_CAP + 1`` means "more"), in one query, after
    the queries of the views' searches (at most three each, as the list runs them).

    One capped count per view, each a subquery of one SELECT, so the database plans each
    view on its own indexes (a view of one agent's open tickets reads those only) and stops
    at the cap; a single scan with a FILTER per view read every ticket the user sees."""
    now = now or timezone.now()
    entries = [(view.key, view.params) for view in BUILTIN_VIEWS]
    entries += [(f"view-{view.pk}", view.filters) for view in views]
    parts: list[str] = []
    params: list[Any] = []
    for n, (_key, filters) in enumerate(entries):
        # A view's search is the list's own (ticket_search: its tickets' ids when it is
        # narrow, their text alone when broad), so the count is what the view lists, and
        # no count tests every ticket against names, pieces and text at once.
        term = TicketFilters.from_params(params_query_dict(filters)).search
        search = ticket_search_for(user, term).condition if term else None
        listed = tickets_visible_to(user).filter(inbox_q(user=user, params=filters, now=now, search=search))
        sql, values = listed.order_by().values("pk")[: COUNT_CAP + 1].query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS v{n})")  # noqa: S608 (SQL of the ORM's own queries)
        params.extend(values)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        counted = cursor.fetchone()
    return {key: int(counted[n] or 0) for n, (key, _params) in enumerate(entries)}


# --- Saved views: writes ---------------------------------------------------------


@dataclass(frozen=True)
class ViewInput:
    """What a form or an API client sends for a view; ``None`` leaves a field as it is (updates)."""

    name: str | None = None
    filters: Mapping[str, Any] | QueryDict | None = None
    sort: str | None = None
    columns: Any = None


def _view_fields(user: Any, data: ViewInput, *, partial: bool) -> dict[str, Any]:
    """The checked fields of ``data``; InvalidInput names every bad one."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    if data.name is not None or not partial:
        name = clean_line(data.name or "", max_length=100)
        if not name:
            errors["name"] = [_("Give the view a name.")]
        fields["name"] = name
    if data.filters is not None or not partial:
        try:
            fields["filters"] = inbox_params_clean(data.filters or {}, user=user)
        except InvalidInput as exc:
            errors.update(exc.errors)
    if data.sort is not None or not partial:
        sort = data.sort or "-updated"
        if sort not in TICKET_SORTS:
            errors["sort"] = [_("Unknown sort.")]
        fields["sort"] = sort
    if data.columns is not None or not partial:
        try:
            fields["columns"] = list(columns_clean(data.columns))
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput(errors)
    return fields


def _name_taken() -> InvalidInput:
    return InvalidInput({"name": [_("You already see a view with this name here. Choose another name.")]})


def saved_view_create(
    *,
    user: Any,
    data: ViewInput,
    scope: str = ViewScope.PERSONAL,
    queue: Queue | None = None,
    at: datetime | None = None,
) -> SavedView:
    """Save a view for ``user`` (personal) or, for managers and admins, shared with everyone or ``queue``.

    Errors: InvalidInput (400) naming each bad field; PermissionDenied (403)
    when an agent shares a view. A name already used in the same list
    (the owner's, everyone's, the queue's) is refused by a unique constraint.
    """
    at = at or timezone.now()
    errors: dict[str, list[str]] = {}
    if scope not in ViewScope.values:
        errors["scope"] = [_("Unknown sharing.")]
    elif scope != ViewScope.PERSONAL and not sees_all_queues(user):
        raise PermissionDenied(_("Only managers and admins share views."))
    if scope == ViewScope.QUEUE and queue is None:
        errors["queue"] = [_("Choose the queue to share the view with.")]
    try:
        fields = _view_fields(user, data, partial=False)
    except InvalidInput as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidInput(errors)
    view = SavedView(
        scope=scope,
        owner=user if scope == ViewScope.PERSONAL else None,
        queue=queue if scope == ViewScope.QUEUE else None,
        created_by=user,
        created_at=at,
        updated_at=at,
        **fields,
    )
    try:
        with transaction.atomic():
            view.save(force_insert=True)
    except IntegrityError:
        raise _name_taken() from None
    return view


def saved_view_update(*, view: SavedView, user: Any, data: ViewInput, at: datetime | None = None) -> SavedView:
    """Rename a view or change what it shows; only the fields given. Errors as ``saved_view_create``;
    PermissionDenied when ``user`` may not change it (``saved_view_can_change``)."""
    if not saved_view_can_change(user, view):
        raise PermissionDenied(_("Only the view's owner, or a manager for a shared view, can change it."))
    fields = _view_fields(user, data, partial=True)
    if not fields:
        return view
    for name, value in fields.items():
        setattr(view, name, value)
    view.updated_at = at or timezone.now()
    try:
        with transaction.atomic():
            view.save(update_fields=[*fields, "updated_at"])
    except IntegrityError:
        raise _name_taken() from None
    return view


def saved_view_delete(*, view: SavedView, user: Any) -> None:
    """Delete a view ``user`` may change, else PermissionDenied."""
    if not saved_view_can_change(user, view):
        raise PermissionDenied(_("Only the view's owner, or a manager for a shared view, can delete it."))
    SavedView.objects.filter(pk=view.pk).delete()
