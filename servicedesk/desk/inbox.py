"""The inbox page and its forms: the list, bulk actions and saved views (docs/inbox.md).

Views validate, call one service of ``bulk.py`` or ``saved_views.py`` and
answer; bad input re-renders the inbox with the errors and status 400.
Every form is a plain POST with its CSRF token, so the page works without
JavaScript; ``static/desk/inbox.js`` adds selecting a page at once, showing
an action's own fields and following a job's progress.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.errors import ApplicationError, PermissionDenied
from servicedesk.core.pagination import COUNT_CAP, page_or_404
from servicedesk.core.prepared import planned_for_values
from servicedesk.desk import bulk, sla
from servicedesk.desk.forms import desk_users, queues_for
from servicedesk.desk.models import BulkAction, BulkJobStatus, ViewScope
from servicedesk.desk.saved_views import (
    BUILTIN_VIEWS,
    COLUMNS,
    FILTER_KEYS,
    MENTIONED_ME,
    InvalidInput,
    ViewInput,
    columns_clean,
    inbox_tickets,
    is_mentioned,
    saved_view_can_change,
    saved_view_create,
    saved_view_delete,
    saved_view_get_for,
    saved_view_query_string,
    saved_view_update,
    saved_views_visible_to,
    view_counts,
)
from servicedesk.tickets import access
from servicedesk.tickets.models import Channel, Ticket
from servicedesk.tickets.selectors import DUE_OVERDUE, DUE_SOON, TAG_MATCH_ANY, TicketFilters
from servicedesk.tickets.statuses import Priority, Status

PAGE_SIZE = 25
# Columns the inbox sorts by; the first click on updated/created shows the newest first.
SORT_COLUMNS = ("reference", "subject", "customer", "status", "priority", "due", "updated", "created")
_NEWEST_FIRST = frozenset({"updated", "created", "priority"})
# Parameters of the inbox's address that are not filters.
_NOT_FILTERS = ("page", "view", "apply", "columns", "sort")


def _labels_set(tickets: list[Ticket]) -> None:
    """Each row's channel, status and priority in the reader's language, looked up in one table
    per page (``get_status_display`` builds its table again for every row and column)."""
    channels, statuses, priorities = (
        {value: str(label) for value, label in choices}
        for choices in (Channel.choices, Status.choices, Priority.choices)
    )
    for ticket in tickets:
        ticket.channel_label = channels.get(ticket.channel, ticket.channel)  # type: ignore[attr-defined]
        ticket.status_label = statuses.get(ticket.status, ticket.status)  # type: ignore[attr-defined]
        ticket.priority_label = priorities.get(ticket.priority, ticket.priority)  # type: ignore[attr-defined]


@planned_for_values()
def inbox_page(
    request: HttpRequest,
    params: QueryDict | None = None,
    *,
    status: int = 200,
    bulk_errors: dict[str, list[str]] | None = None,
    view_errors: dict[str, list[str]] | None = None,
) -> HttpResponse:
    """The inbox for ``params`` (default: the query string), with the errors of a refused form."""
    params = params if params is not None else request.GET
    customer_id = (params.get("customer") or "").strip()
    if customer_id and not (customer_id.isdigit() and int(customer_id) < 2**63):
        # As in the API: 1.5 is not "no filter".
        reason = _("Customer: give the customer's id, a whole number.")
        return render(request, "400.html", {"reason": reason}, status=400)
    user = signed_in_user(request)
    filters = TicketFilters.from_params(params)
    now = sla.now()
    page = page_or_404(inbox_tickets(user=user, params=params, now=now), PAGE_SIZE, params.get("page"))
    page.object_list = list(page.object_list)
    access.customers_conceal(user, page.object_list)
    _labels_set(page.object_list)
    current = filters.sort.lstrip("-")
    sort_links = {}
    for column in SORT_COLUMNS:
        if column == current:
            target = column if filters.sort.startswith("-") else f"-{column}"
        else:
            target = f"-{column}" if column in _NEWEST_FIRST else column
        sort_links[column] = target
    views = saved_views_visible_to(user)
    counts = view_counts(user=user, views=views, now=now)
    current_view = params.get("view") or ""
    filter_query = urlencode([(key, value) for key, values in params.lists() if key in FILTER_KEYS for value in values])
    return render(
        request,
        "desk/inbox.html",
        {
            "page": page,
            "filters": filters,
            "mentioned": is_mentioned(params),
            "mentioned_me": MENTIONED_ME,
            "tag_match_any": filters.tags_any,
            "tag_match_any_value": TAG_MATCH_ANY,
            "tags_text": ", ".join(filters.tags),
            "sort_current": current,
            "sort_descending": filters.sort.startswith("-"),
            "sort_links": sort_links,
            "status_choices": Status.choices,
            "priority_choices": Priority.choices,
            "channel_choices": Channel.choices,
            "queues": queues_for(user),
            "agents": desk_users(),
            "due_soon": DUE_SOON,
            "due_overdue": DUE_OVERDUE,
            "can_delete": sees_all_queues(user),
            "sla": sla.SlaBoard(page.object_list, now),
            "sla_formats": sla.script_formats(),
            # Columns, views and bulk actions (docs/inbox.md).
            "columns": columns_clean(params.getlist("columns"), strict=False),
            "column_choices": list(COLUMNS.items()),
            "count_cap": COUNT_CAP,
            "builtin_views": [
                {"key": view.key, "label": view.label, "query": view.query_string, "count": counts[view.key]}
                for view in BUILTIN_VIEWS
            ],
            "saved_views": [
                {
                    "view": view,
                    "query": saved_view_query_string(view),
                    "count": counts[f"view-{view.pk}"],
                    "can_change": saved_view_can_change(user, view),
                    "current": str(view.pk) == current_view,
                }
                for view in views
            ],
            "can_share": sees_all_queues(user),
            "scope_choices": ViewScope.choices,
            "current_query": urlencode([(k, v) for k, vs in params.lists() if k not in ("page", "view") for v in vs]),
            "filter_query": filter_query,
            "bulk_actions": BulkAction.choices,
            "bulk_macros": _macros_for(user),
            "bulk_jobs": bulk.bulk_jobs_recent(user=user),
            "bulk_sync_max": bulk.sync_max(),
            "bulk_errors": bulk_errors or {},
            "view_errors": view_errors or {},
            "posted": request.POST if status >= 400 else {},
            "posted_ids": {int(pk) for pk in request.POST.getlist("ids") if pk.isdigit()} if status >= 400 else set(),
            "inbox_strings": _script_strings(),
        },
        status=status,
    )


def _script_strings() -> dict[str, str]:
    """static/desk/inbox.js's strings in the page's language (``%(name)s`` filled in by the script)."""
    return {
        "figures": _("%(done)s of %(total)s processed: %(changed)s changed, %(failed)s refused, %(skipped)s skipped."),
        "ticketsOne": ngettext("%(counter)s ticket", "%(counter)s tickets", 1),
        "ticketsOther": ngettext("%(counter)s ticket", "%(counter)s tickets", 2),
    }


def _macros_for(user: Any) -> list[Any]:
    """The macros ``user`` may apply (one query), for the bulk bar."""
    from servicedesk.macros.access import macros_visible_to

    return list(macros_visible_to(user).order_by("name", "pk"))


def _inbox_address(query: str) -> str:
    return f"/desk/?{query}" if query else "/desk/"


def _query_of(request: HttpRequest) -> QueryDict:
    """The inbox address a form was posted from (its ``back`` field), as a QueryDict."""
    return QueryDict(str(request.POST.get("back") or "").lstrip("?"))


# --- Bulk actions ---------------------------------------------------------------


def _bulk_data(request: HttpRequest) -> dict[str, Any]:
    """The bulk bar's fields in the shape ``bulk.bulk_request_check`` takes."""
    post = request.POST
    action = str(post.get("action") or "")
    by_action: dict[str, dict[str, Any]] = {
        BulkAction.STATUS: {"status": post.get("status", "")},
        BulkAction.PRIORITY: {"priority": post.get("priority", "")},
        BulkAction.ASSIGNEE: {"assignee": post.get("assignee", "")},
        BulkAction.QUEUE: {"queue": post.get("queue", "")},
        BulkAction.TAGS: {"add": post.get("tags_add", ""), "remove": post.get("tags_remove", "")},
        BulkAction.SPAM: {"spam": post.get("spam", "")},
        BulkAction.MERGE: {"target": post.get("target", "")},
        BulkAction.MACRO: {"macro": post.get("macro", "")},
    }
    parameters = by_action.get(action, {})
    data: dict[str, Any] = {"action": action, "parameters": parameters}
    scope = post.get("scope") or "selected"
    if scope == "matching":
        data["filter"] = str(post.get("filter") or "")
        data["count"] = post.get("count")
    else:
        ids = post.getlist("page_ids" if scope == "page" else "ids")
        data["ids"] = ids
    return data


@require_POST
@agent_required
def bulk_submit(request: HttpRequest) -> HttpResponse:
    """Apply the bulk bar's action to the selected tickets, the page, or all matching the filter."""
    user = signed_in_user(request)
    back = _query_of(request)
    data = _bulk_data(request)
    if data.get("ids") == []:
        return inbox_page(request, back, status=400, bulk_errors={"ids": [_("Choose at least one ticket.")]})
    try:
        checked = bulk.bulk_request_check(user=user, data=data, source="ui")
        submitted = bulk.bulk_submit(user=user, request=checked)
    except InvalidInput as exc:
        return inbox_page(request, back, status=400, bulk_errors=exc.errors)
    except ApplicationError as exc:
        return inbox_page(request, back, status=400, bulk_errors={"action": [exc.message]})
    if submitted.job is not None:
        messages.info(request, _("The change was started for the tickets of this filter; its progress is shown below."))
    elif submitted.summary is not None:
        _summary_messages(request, submitted.summary.as_dict())
    return redirect(_inbox_address(back.urlencode()))


def _summary_messages(request: HttpRequest, summary: dict[str, Any]) -> None:
    parts = [
        ngettext("%(n)d ticket changed", "%(n)d tickets changed", summary["changed"]) % {"n": summary["changed"]},
        ngettext("%(n)d already so", "%(n)d already so", summary["unchanged"]) % {"n": summary["unchanged"]},
        ngettext("%(n)d refused", "%(n)d refused", summary["failed"]) % {"n": summary["failed"]},
        ngettext("%(n)d skipped (no longer visible)", "%(n)d skipped (no longer visible)", summary["skipped"])
        % {"n": summary["skipped"]},
    ]
    level = messages.success if not summary["failed"] and not summary["skipped"] else messages.warning
    level(request, _("Done: %(parts)s.") % {"parts": ", ".join(parts)})
    for failure in summary["failures"]:
        messages.error(request, f"{failure['reference']}: {failure['reason']}")


@require_GET
@agent_required
def bulk_job_status(request: HttpRequest, pk: int) -> JsonResponse:
    """A job's progress for the inbox's script (its owner and admins; others 404)."""
    job = bulk.bulk_job_get_for(signed_in_user(request), pk)
    return JsonResponse({"job": bulk.bulk_job_state(job)})


@require_POST
@agent_required
def bulk_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a job: no ticket after the one at hand is changed."""
    user = signed_in_user(request)
    job = bulk.bulk_job_cancel(job=bulk.bulk_job_get_for(user, pk), user=user)
    if job.status == BulkJobStatus.CANCELLED:
        messages.info(request, _("The change was cancelled; what was done before is kept and listed."))
    else:
        messages.info(request, _("The change had already finished."))
    return redirect(_inbox_address(_query_of(request).urlencode()))


# --- Saved views -------------------------------------------------------------------


def _view_input(request: HttpRequest, query: QueryDict) -> ViewInput:
    return ViewInput(
        name=str(request.POST.get("name") or ""),
        filters=QueryDict(urlencode([(k, v) for k, vs in query.lists() if k not in _NOT_FILTERS for v in vs])),
        sort=query.get("sort") or "-updated",
        columns=query.getlist("columns"),
    )


@require_POST
@agent_required
def view_create(request: HttpRequest) -> HttpResponse:
    """Save the inbox's current filters, sort and columns as a view (shared ones: managers and admins)."""
    user = signed_in_user(request)
    back = _query_of(request)
    scope = str(request.POST.get("scope") or ViewScope.PERSONAL)
    queue = None
    if scope == ViewScope.QUEUE:
        queue = access.queues_visible_to(user).filter(slug=str(request.POST.get("queue") or "")).first()
    try:
        view = saved_view_create(user=user, data=_view_input(request, back), scope=scope, queue=queue)
    except InvalidInput as exc:
        return inbox_page(request, back, status=400, view_errors=exc.errors)
    except PermissionDenied as exc:
        return inbox_page(request, back, status=403, view_errors={"scope": [exc.message]})
    messages.success(request, _("The view %(name)s was saved.") % {"name": view.name})
    return redirect(_inbox_address(saved_view_query_string(view)))


@require_POST
@agent_required
def view_rename(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    back = _query_of(request)
    view = saved_view_get_for(user, pk)
    try:
        saved_view_update(view=view, user=user, data=ViewInput(name=str(request.POST.get("name") or "")))
    except InvalidInput as exc:
        return inbox_page(request, back, status=400, view_errors=exc.errors)
    except PermissionDenied as exc:
        return inbox_page(request, back, status=403, view_errors={"name": [exc.message]})
    messages.success(request, _("The view was renamed to %(name)s.") % {"name": view.name})
    return redirect(_inbox_address(back.urlencode()))


@require_POST
@agent_required
def view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    back = _query_of(request)
    view = saved_view_get_for(user, pk)
    try:
        saved_view_delete(view=view, user=user)
    except PermissionDenied as exc:
        return inbox_page(request, back, status=403, view_errors={"name": [exc.message]})
    messages.success(request, _("The view %(name)s was deleted.") % {"name": view.name})
    if back.get("view") == str(pk):
        return redirect("desk:inbox")
    return redirect(_inbox_address(back.urlencode()))


@require_GET
@agent_required
def view_counts_json(request: HttpRequest) -> JsonResponse:
    """Every view's count now, for the sidebar's refresh: ``{"counts": {"mine": 3, "view-7": 12}}``."""
    user = signed_in_user(request)
    return JsonResponse({"counts": view_counts(user=user, views=saved_views_visible_to(user))})
