"""The macros and canned replies API (docs/macros.md#api).

``/api/v1/macros/``, ``/api/v1/macros/<id>/``,
``/api/v1/tickets/<reference>/macros/<id>/apply/`` (and ``preview/``),
``/api/v1/canned-replies/``, ``/api/v1/canned-replies/<id>/`` and
``/api/v1/canned-replies/<id>/render/?ticket=<reference>``. Agents only (403
for anyone else). A macro, canned reply or ticket the caller may not see is
404; one they see but may not change is 403 on PATCH and DELETE. Service
refusals are 400 with the field (``servicedesk.core.api.exception_handler``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.core import errors
from servicedesk.tickets.access import ticket_get_for
from servicedesk.tickets.api.views import IDEMPOTENCY_PARAMETER, Pagination, idempotency_key
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Queue, Ticket
from servicedesk.tickets.services.idempotency import request_digest

from .access import (
    can_manage,
    canned_replies_for_ticket,
    canned_replies_visible_to,
    canned_reply_get_for,
    macro_get_for,
    macros_for_ticket,
    macros_visible_to,
)
from .models import CannedReply, Macro, Scope, Scoped
from .services import (
    CannedReplyInput,
    MacroInput,
    StepResult,
    canned_reply_render,
    canned_reply_save,
    macro_apply,
    macro_preview,
    macro_save,
    scoped_delete,
)

ACTIONS_HELP = _(
    "The actions, applied in this order. Each is an object with a type: "
    '{"type": "status", "status": "solved"}, {"type": "priority", "priority": "high"}, '
    '{"type": "queue", "queue": "<queue slug>"}, {"type": "assignee", "assignee": <agent id> | "me" | null}, '
    '{"type": "tags", "mode": "add" | "remove" | "set", "tags": ["..."]}, '
    '{"type": "reply" | "note", "text": "<template>", "translations": {"zh-hans": "<template>"}}.'
)
TEMPLATE_HELP = _(
    'A template with placeholders such as {{ customer.first_name|default:"there" }} and {{ ticket.reference }} '
    "(docs/macros.md#placeholders); checked when saved."
)


class AgentsOnly(BasePermission):
    message = _("Only agents use macros and canned replies.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


def _not_found(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except errors.NotFound:
        raise exceptions.NotFound() from None


class ScopedSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.PERSONAL)
    queue = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Queue.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("The queue's slug, for the queue scope."),
    )
    owner = serializers.IntegerField(source="owner_id", read_only=True, allow_null=True)
    can_change = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_can_change(self, item: Scoped) -> bool:
        return can_manage(self.context["request"].user, item)

    def merged(self, current: Scoped | None) -> dict[str, Any]:
        data = self.validated_data
        return {
            "name": data.get("name", current.name if current else ""),
            "scope": data.get("scope", current.scope if current else Scope.PERSONAL),
            "queue": data.get("queue", current.queue if current else None),
        }


class MacroSerializer(ScopedSerializer):
    actions = serializers.JSONField(help_text=ACTIONS_HELP)

    def save(self, **kwargs: Any) -> Macro:
        current = self.instance
        merged = self.merged(current)
        actions = self.validated_data.get("actions", current.actions if current else None)
        self.instance = macro_save(
            data=MacroInput(actions=actions, **merged), user=signed_in_user(self.context["request"]), macro=current
        )
        return self.instance


class CannedReplySerializer(ScopedSerializer):
    text = serializers.CharField(max_length=10_000, help_text=TEMPLATE_HELP)
    translations = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=10_000),
        required=False,
        help_text=_("The text in other languages, by language code (zh-hans); used for customers of that language."),
    )

    def save(self, **kwargs: Any) -> CannedReply:
        current = self.instance
        data = self.validated_data
        self.instance = canned_reply_save(
            data=CannedReplyInput(
                text=data.get("text", current.text if current else ""),
                translations=data.get("translations", current.translations if current else {}),
                **self.merged(current),
            ),
            user=signed_in_user(self.context["request"]),
            canned=current,
        )
        return self.instance


TICKET_FILTER = OpenApiParameter(
    "ticket",
    OpenApiTypes.STR,
    description=_(
        "Only those that apply to this ticket (a reference, e.g. SD-1001): 404 for a ticket you may not see."
    ),
)
REFERENCE_PARAMETER = OpenApiParameter(
    "reference", OpenApiTypes.STR, OpenApiParameter.PATH, description=_("Ticket reference, e.g. SD-1001.")
)


class _ScopedList(generics.ListCreateAPIView):
    permission_classes = [IsAuthenticated, AgentsOnly]
    pagination_class = Pagination
    filter_backends: list[Any] = []

    def ticket_filter(self) -> Ticket | None:
        reference = (self.request.query_params.get("ticket") or "").strip()
        if not reference:
            return None
        return _not_found(ticket_get_for, self.request.user, reference)


class _ScopedDetail(generics.RetrieveUpdateDestroyAPIView):
    permission_classes = [IsAuthenticated, AgentsOnly]
    filter_backends: list[Any] = []
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def perform_update(self, serializer: Any) -> None:
        serializer.save()

    def perform_destroy(self, instance: Any) -> None:
        scoped_delete(item=instance, user=signed_in_user(self.request))


@extend_schema_view(
    get=extend_schema(
        summary="List macros",
        description="The macros the caller may see: their own, their queues' and the global ones.",
        parameters=[TICKET_FILTER],
    ),
    post=extend_schema(
        summary="Create a macro",
        description="Agents create personal macros; managers and admins also queue and global ones (403 otherwise).",
    ),
)
class MacroListView(_ScopedList):
    serializer_class = MacroSerializer

    def get_queryset(self) -> QuerySet[Macro]:
        ticket = self.ticket_filter()
        found = macros_for_ticket(self.request.user, ticket) if ticket else macros_visible_to(self.request.user)
        return found.select_related("queue").order_by("name", "pk")


@extend_schema_view(
    get=extend_schema(summary="A macro"),
    patch=extend_schema(
        summary="Change a macro", description="Only the fields sent change; 403 unless yours to change."
    ),
    delete=extend_schema(summary="Delete a macro", description="403 unless yours to change."),
)
class MacroDetailView(_ScopedDetail):
    serializer_class = MacroSerializer
    queryset = Macro.objects.none()  # for the schema; objects come from get_object

    def get_object(self) -> Macro:
        return _not_found(macro_get_for, self.request.user, self.kwargs["pk"])


class StepSerializer(serializers.Serializer):
    action = serializers.IntegerField(source="index", help_text=_("The action's position, from 0."))
    type = serializers.CharField(source="kind")
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not the serializer's own label
    before = serializers.CharField(help_text=_("The value before, as shown to people (empty for a message)."))
    after = serializers.CharField()
    text = serializers.CharField(help_text=_("A reply's or note's text, filled in."))
    message = serializers.SerializerMethodField()

    def get_message(self, step: StepResult) -> int | None:
        return step.message.pk if step.message is not None and step.message.pk else None


class MacroResultSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    version = serializers.IntegerField()
    steps = StepSerializer(many=True)


class MacroPreviewSerializer(serializers.Serializer):
    steps = StepSerializer(many=True)
    refused = inline_serializer(
        "MacroRefusal",
        fields={"action": serializers.IntegerField(), "detail": serializers.CharField()},
        allow_null=True,
    )


def _ticket_and_macro(request: Request, reference: str, pk: int) -> tuple[Ticket, Macro]:
    ticket = _not_found(ticket_get_for, request.user, reference)
    return ticket, _not_found(macro_get_for, request.user, pk)


MACRO_ID_PARAMETER = OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The macro's id."))


@extend_schema(
    summary="Apply a macro to a ticket",
    description=(
        "Each action through the ticket's services in one transaction, each leaving its event. A refused action "
        "(a status move not allowed, an assignee outside the ticket's queue, ...) is 400 with the reason and the "
        "action's position, and nothing is changed. 404 for a ticket or macro the caller may not see. With an "
        "Idempotency-Key the macro is applied once: the same request again answers with what the first one did "
        "(the same steps and version) and applies nothing; the key with another ticket or macro is 422."
    ),
    parameters=[REFERENCE_PARAMETER, MACRO_ID_PARAMETER, IDEMPOTENCY_PARAMETER],
    request=None,
    responses={200: MacroResultSerializer},
)
class MacroApplyView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, AgentsOnly]
    serializer_class = MacroResultSerializer
    filter_backends: list[Any] = []

    def post(self, request: Request, reference: str, pk: int) -> Response:
        key = idempotency_key(request)
        ticket, macro = _ticket_and_macro(request, reference, pk)
        result = macro_apply(
            macro=macro,
            ticket=ticket,
            actor=Actor.agent(signed_in_user(request), source="api"),
            idempotency_key=key,
            request_digest=request_digest(method=request.method or "", path=request.path, body=request.data),
        )
        body = {"ticket": result.ticket.reference, "version": result.version, "steps": result.steps}
        return Response(MacroResultSerializer(body).data)


@extend_schema(
    summary="What a macro would do to a ticket",
    description="The steps applying it now would take (nothing is kept), or the action that would be refused.",
    parameters=[REFERENCE_PARAMETER, MACRO_ID_PARAMETER],
    responses={200: MacroPreviewSerializer},
)
class MacroPreviewView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, AgentsOnly]
    serializer_class = MacroPreviewSerializer
    filter_backends: list[Any] = []

    def get(self, request: Request, reference: str, pk: int) -> Response:
        ticket, macro = _ticket_and_macro(request, reference, pk)
        preview = macro_preview(macro=macro, ticket=ticket, actor=Actor.agent(signed_in_user(request), source="api"))
        refused = (
            {"action": preview.refused.index, "detail": preview.refused.message}
            if preview.refused is not None
            else None
        )
        return Response(MacroPreviewSerializer({"steps": preview.steps, "refused": refused}).data)


@extend_schema_view(
    get=extend_schema(
        summary="List canned replies",
        description="The canned replies the caller may see: their own, their queues' and the global ones.",
        parameters=[TICKET_FILTER],
    ),
    post=extend_schema(
        summary="Create a canned reply",
        description="Agents create personal ones; managers and admins also queue and global ones (403 otherwise).",
    ),
)
class CannedReplyListView(_ScopedList):
    serializer_class = CannedReplySerializer

    def get_queryset(self) -> QuerySet[CannedReply]:
        ticket = self.ticket_filter()
        user = self.request.user
        found = canned_replies_for_ticket(user, ticket) if ticket else canned_replies_visible_to(user)
        return found.select_related("queue").order_by("name", "pk")


@extend_schema_view(
    get=extend_schema(summary="A canned reply"),
    patch=extend_schema(summary="Change a canned reply", description="403 unless yours to change."),
    delete=extend_schema(summary="Delete a canned reply", description="403 unless yours to change."),
)
class CannedReplyDetailView(_ScopedDetail):
    serializer_class = CannedReplySerializer
    queryset = CannedReply.objects.none()  # for the schema; objects come from get_object

    def get_object(self) -> CannedReply:
        return _not_found(canned_reply_get_for, self.request.user, self.kwargs["pk"])


RenderedSerializer = inline_serializer(
    "CannedReplyRendered",
    fields={
        "text": serializers.CharField(help_text=_("The text filled in for the ticket's customer.")),
        "language": serializers.CharField(help_text=_("The customer's language it was filled in for.")),
    },
)


@extend_schema(
    summary="A canned reply filled in for a ticket",
    description="In the customer's language where the canned reply has it. 404 for a ticket or canned reply the "
    "caller may not see.",
    parameters=[
        OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The canned reply's id.")),
        OpenApiParameter("ticket", OpenApiTypes.STR, required=True, description=_("Ticket reference, e.g. SD-1001.")),
    ],
    responses={200: RenderedSerializer},
)
class CannedReplyRenderView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, AgentsOnly]
    filter_backends: list[Any] = []

    def get(self, request: Request, pk: int) -> Response:
        reference = (request.query_params.get("ticket") or "").strip()
        if not reference:
            return Response(
                {"detail": _("Invalid input."), "ticket": [_("Give the ticket's reference.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        ticket = _not_found(ticket_get_for, request.user, reference)
        canned = _not_found(canned_reply_get_for, request.user, pk)
        rendered = _not_found(lambda: canned_reply_render(canned=canned, ticket=ticket, user=signed_in_user(request)))
        return Response({"text": rendered.text, "language": rendered.language})
