"""REST API v1 of the inbox: saved views, their counts, bulk actions and bulk jobs (docs/inbox.md).

Mounted at /api/v1/ before the tickets API (``/tickets/bulk/`` would
otherwise read as a ticket's reference). Desk users only; the checks and the
writes are those of the pages (``saved_views.py``, ``bulk.py``), and their
refusals become JSON errors in ``servicedesk.core.api.exception_handler``:
400 naming each bad field, 403 for what the caller's role may not do, 404
for what they may not see.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.desk import bulk
from servicedesk.desk.models import BulkAction, BulkJobStatus, SavedView, ViewScope
from servicedesk.desk.saved_views import (
    COLUMNS,
    InvalidInput,
    ViewInput,
    saved_view_can_change,
    saved_view_create,
    saved_view_delete,
    saved_view_get_for,
    saved_view_query_string,
    saved_view_update,
    saved_views_visible_to,
    view_counts,
)
from servicedesk.tickets.access import queues_visible_to
from servicedesk.tickets.selectors import TICKET_SORTS


class IsDeskUser(BasePermission):
    message = _("Only agents have inbox views and bulk actions.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


DESK_ONLY = [IsAuthenticated, IsDeskUser]
FILTERS_HELP = _(
    "The inbox's filter parameters, as in its address: q, status, queue, assignee (an id, me or none), channel, "
    "priority, customer, tags, tag_match (all or any), due (hour or overdue), spam, deleted, mentioned (me). "
    "Lists as arrays or comma-separated text."
)


# --- Saved views ---------------------------------------------------------------


class SavedViewSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(
        choices=ViewScope.choices,
        default=ViewScope.PERSONAL,
        help_text=_("personal (only you); everyone or queue: shared, by managers and admins."),
    )
    queue = serializers.CharField(
        required=False, allow_null=True, help_text=_("The queue's slug, for a view shared with a queue.")
    )
    filters = serializers.DictField(required=False, help_text=FILTERS_HELP)
    sort = serializers.ChoiceField(choices=list(TICKET_SORTS), default="-updated")
    columns = serializers.ListField(
        child=serializers.ChoiceField(choices=list(COLUMNS)),
        required=False,
        help_text=_("The columns shown, in the inbox's order; none given: every column."),
    )
    owner = serializers.IntegerField(read_only=True, allow_null=True)
    can_change = serializers.BooleanField(read_only=True)
    inbox_url = serializers.CharField(read_only=True, help_text=_("The view's address in the inbox."))
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class SavedViewUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    filters = serializers.DictField(required=False, help_text=FILTERS_HELP)
    sort = serializers.ChoiceField(choices=list(TICKET_SORTS), required=False)
    columns = serializers.ListField(child=serializers.ChoiceField(choices=list(COLUMNS)), required=False)


def _view_body(user: Any, view: SavedView) -> dict[str, Any]:
    return {
        "id": view.pk,
        "name": view.name,
        "scope": view.scope,
        "queue": view.queue.slug if view.queue is not None else None,
        "filters": view.filters,
        "sort": view.sort,
        "columns": view.columns,
        "owner": view.owner_id,
        "can_change": saved_view_can_change(user, view),
        "inbox_url": f"{reverse('desk:inbox')}?{saved_view_query_string(view)}",
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }


VIEW_ID = OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The view's id."))


class SavedViewListView(APIView):
    """The caller's inbox views: their own, and those shared with everyone or their queues."""

    permission_classes = DESK_ONLY
    serializer_class = SavedViewSerializer

    @extend_schema(summary="List inbox views", responses=SavedViewSerializer(many=True))
    def get(self, request: Request) -> Response:
        user = signed_in_user(request)
        return Response([_view_body(user, view) for view in saved_views_visible_to(user)])

    @extend_schema(
        summary="Save an inbox view",
        description=(
            "A personal view, or (managers and admins) one shared with everyone or a queue's agents. "
            "A name already used in the same list is refused (400)."
        ),
        request=SavedViewSerializer,
        responses={201: SavedViewSerializer},
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        serializer = SavedViewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        queue = None
        if data.get("queue"):
            queue = queues_visible_to(user).filter(slug=data["queue"]).first()
            if queue is None:
                raise InvalidInput({"queue": [str(_("Choose one of your queues."))]})
        view = saved_view_create(
            user=user,
            data=ViewInput(
                name=data["name"], filters=data.get("filters", {}), sort=data["sort"], columns=data.get("columns", [])
            ),
            scope=data["scope"],
            queue=queue,
        )
        return Response(_view_body(user, view), status=status.HTTP_201_CREATED)


class SavedViewDetailView(APIView):
    permission_classes = DESK_ONLY
    serializer_class = SavedViewSerializer

    @extend_schema(summary="An inbox view", parameters=[VIEW_ID], responses=SavedViewSerializer)
    def get(self, request: Request, pk: int) -> Response:
        user = signed_in_user(request)
        return Response(_view_body(user, saved_view_get_for(user, pk)))

    @extend_schema(
        summary="Rename an inbox view or change what it shows",
        description="Only the fields sent are changed. The owner changes a personal view; managers and admins a shared one.",
        parameters=[VIEW_ID],
        request=SavedViewUpdateSerializer,
        responses=SavedViewSerializer,
    )
    def patch(self, request: Request, pk: int) -> Response:
        user = signed_in_user(request)
        view = saved_view_get_for(user, pk)
        serializer = SavedViewUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        saved_view_update(
            view=view,
            user=user,
            data=ViewInput(
                name=data.get("name"), filters=data.get("filters"), sort=data.get("sort"), columns=data.get("columns")
            ),
        )
        return Response(_view_body(user, view))

    @extend_schema(summary="Delete an inbox view", parameters=[VIEW_ID], responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        user = signed_in_user(request)
        saved_view_delete(view=saved_view_get_for(user, pk), user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ViewCountsSerializer(serializers.Serializer):
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=_(
            "Tickets each view lists now: the built-in ones by key (mine, unassigned, mentioned), saved ones as view-<id>."
        ),
    )


class SavedViewCountsView(APIView):
    permission_classes = DESK_ONLY
    serializer_class = ViewCountsSerializer

    @extend_schema(summary="How many tickets each inbox view lists", responses=ViewCountsSerializer)
    def get(self, request: Request) -> Response:
        user = signed_in_user(request)
        return Response({"counts": view_counts(user=user, views=saved_views_visible_to(user))})


# --- Bulk actions ----------------------------------------------------------------


class BulkRequestSerializer(serializers.Serializer):
    """For the schema: the body is checked by ``bulk.bulk_request_check``, as the inbox's form is."""

    action = serializers.ChoiceField(choices=BulkAction.choices)
    parameters = serializers.DictField(
        help_text=_(
            'status {"status": "solved"}; priority {"priority": "high"}; assignee {"assignee": <agent id> or null}; '
            'queue {"queue": "<slug>"}; tags {"add": [...], "remove": [...]}; spam {"spam": true or false}; '
            'merge {"target": "SD-1001"}; macro {"macro": <id>}.'
        )
    )
    ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text=_("Ticket ids, each one you can see.")
    )
    filter = serializers.DictField(
        required=False,
        help_text=_("Instead of ids: every ticket these inbox filters match when the change runs. %(help)s")
        % {"help": FILTERS_HELP},
    )
    count = serializers.IntegerField(
        required=False, min_value=0, help_text=_("With a filter: how many tickets you saw it match.")
    )


class BulkFailureSerializer(serializers.Serializer):
    ticket = serializers.IntegerField()
    reference = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class BulkSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField(help_text=_("Already so: nothing to change."))
    failed = serializers.IntegerField(help_text=_("Refused, each listed in failures with its reason."))
    skipped = serializers.IntegerField(help_text=_("No longer visible to you when the change ran: not changed."))
    not_processed = serializers.IntegerField(help_text=_("Left when the job was cancelled or failed."))
    failures = BulkFailureSerializer(many=True)


class BulkAppliedSerializer(serializers.Serializer):
    summary = BulkSummarySerializer()


class BulkJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=BulkAction.choices)
    action_label = serializers.CharField()
    status = serializers.ChoiceField(choices=BulkJobStatus.choices)
    status_label = serializers.CharField()
    active = serializers.BooleanField()
    seen_count = serializers.IntegerField(allow_null=True, help_text=_("The count the agent saw when choosing."))
    total = serializers.IntegerField(help_text=_("Tickets the job processes (its filter evaluated when it ran)."))
    done = serializers.IntegerField()
    changed = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    error = serializers.CharField()
    result = BulkSummarySerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField()


class BulkQueuedSerializer(serializers.Serializer):
    job = BulkJobSerializer()
    url = serializers.CharField()


def _job_body(job: Any) -> dict[str, Any]:
    return {**bulk.bulk_job_state(job), "url": reverse("desk_api:bulk-job-detail", args=[job.pk])}


class TicketBulkView(APIView):
    permission_classes = DESK_ONLY
    serializer_class = BulkRequestSerializer

    @extend_schema(
        summary="Change many tickets at once",
        description=(
            "Each ticket is changed by its own service call, with its own timeline event; a refusal is listed "
            "and the others go on; a ticket you no longer see when it runs is skipped. Up to BULK_SYNC_MAX "
            "tickets (20) are changed in the request (200 with the summary); more are changed by a job "
            "(202 with the job and its URL)."
        ),
        request=BulkRequestSerializer,
        responses={200: BulkAppliedSerializer, 202: BulkQueuedSerializer},
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        data = request.data if not isinstance(request.data, QueryDict) else request.data.dict()
        checked = bulk.bulk_request_check(user=user, data=data, source="api")
        submitted = bulk.bulk_submit(user=user, request=checked)
        if submitted.job is None:
            assert submitted.summary is not None
            return Response({"summary": submitted.summary.as_dict()})
        body = _job_body(submitted.job)
        return Response(
            {"job": body, "url": body["url"]}, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]}
        )


JOB_ID = OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The job's id."))


class BulkJobDetailView(APIView):
    permission_classes = DESK_ONLY
    serializer_class = BulkJobSerializer

    @extend_schema(
        summary="A bulk job's progress and summary",
        description="Only the agent who started it, and admins (404 for anyone else).",
        parameters=[JOB_ID],
        responses={200: BulkJobSerializer, 404: OpenApiResponse(description="Not found.")},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(_job_body(bulk.bulk_job_get_for(signed_in_user(request), pk)))


class BulkJobCancelView(APIView):
    permission_classes = DESK_ONLY
    serializer_class = BulkJobSerializer

    @extend_schema(
        summary="Cancel a bulk job",
        description="No ticket after the one at hand is changed; what was done is kept. A finished job is left as it is.",
        parameters=[JOB_ID],
        request=None,
        responses={200: BulkJobSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = signed_in_user(request)
        job = bulk.bulk_job_cancel(job=bulk.bulk_job_get_for(user, pk), user=user)
        return Response(_job_body(job))
