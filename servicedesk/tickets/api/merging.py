"""Merging and splitting tickets through the API (docs/merging.md).

``POST /api/v1/tickets/<reference>/merge/`` and
``POST /api/v1/tickets/<reference>/messages/<id>/split/``, for agents. Both
tickets must be ones the caller sees (``access.ticket_get_for``): a ticket
they may not see is 404 on the path and a 400 field error as the target.
A refusal of the service is a 400 with its field. The old reference keeps
answering ``GET /api/v1/tickets/<reference>/`` with the closed record and its
``merged_into`` (the target's reference, if the caller may see it).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from servicedesk.accounts.auth import signed_in_user
from servicedesk.core import errors
from servicedesk.tickets import access
from servicedesk.tickets.api.permissions import caller_is_agent
from servicedesk.tickets.api.serializers import TicketDetailSerializer
from servicedesk.tickets.api.views import REFERENCE_PARAMETER, visible_ticket
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.merging import ticket_merge, ticket_split


class TicketMergeSerializer(serializers.Serializer):
    target = serializers.CharField(max_length=32, help_text=_("Reference of the ticket to merge into."))
    notify_customer = serializers.BooleanField(
        default=False, help_text=_("Tell the customer in the target's thread (a public reply, sent by email).")
    )


class TicketSplitSerializer(serializers.Serializer):
    subject = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        help_text=_("The new ticket's subject; else the message's first line."),
    )
    queue = serializers.SlugField(required=False, help_text=_("The new ticket's queue (slug); else the ticket's."))


def _agent_only(request: Request) -> None:
    if not caller_is_agent(request):
        raise exceptions.PermissionDenied(_("Only agents merge or split tickets."))


@extend_schema(
    summary="Merge a ticket into another (agents)",
    description=(
        "Moves the ticket's messages, notes, attachments, sessions, tags and followers to `target` (a ticket of the "
        "same customer), closes it and points it to the target. Answers the target. The same pair again answers the "
        "target without a second merge. 400 with a field for a refusal: `target` (itself, a ticket merged or deleted, "
        "another customer's, one you may not see)."
    ),
    parameters=[REFERENCE_PARAMETER],
    request=TicketMergeSerializer,
    responses={200: TicketDetailSerializer},
)
class TicketMergeView(generics.GenericAPIView):
    serializer_class = TicketMergeSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []

    def post(self, request: Request, reference: str) -> Response:
        source = visible_ticket(request.user, reference)
        _agent_only(request)
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            target = access.ticket_get_for(request.user, data.validated_data["target"])
        except errors.NotFound:
            raise exceptions.ValidationError({"target": [_("No such ticket.")]}) from None
        merged = ticket_merge(
            source=source,
            target=target,
            actor=Actor.agent(signed_in_user(request), source="api"),
            notify_customer=data.validated_data["notify_customer"],
        )
        answer = visible_ticket(request.user, merged.reference or "")
        return Response(TicketDetailSerializer(answer, context=self.get_serializer_context()).data)


@extend_schema(
    summary="Split a customer's message into a new ticket (agents)",
    description=(
        "Moves the message and its attachments to a new ticket of the same customer; answers the new ticket (201). "
        "The same message again answers the ticket it went to. 400 with `message` for an agent's reply or note or "
        "the ticket's only message; `queue` for a queue you do not work in."
    ),
    parameters=[
        REFERENCE_PARAMETER,
        OpenApiParameter("message_id", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The message's id.")),
    ],
    request=TicketSplitSerializer,
    responses={201: TicketDetailSerializer},
)
class MessageSplitView(generics.GenericAPIView):
    serializer_class = TicketSplitSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []

    def post(self, request: Request, reference: str, message_id: int) -> Response:
        ticket = visible_ticket(request.user, reference)
        _agent_only(request)
        message = access.messages_visible_to(request.user, ticket).filter(pk=message_id).first()
        if message is None:
            raise exceptions.NotFound()
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        queue = None
        if data.validated_data.get("queue"):
            queue = access.queues_visible_to(request.user).filter(slug=data.validated_data["queue"]).first()
            if queue is None:
                raise exceptions.ValidationError({"queue": [_("No such queue.")]})
        new = ticket_split(
            ticket=ticket,
            message=message,
            actor=Actor.agent(signed_in_user(request), source="api"),
            subject=data.validated_data.get("subject", ""),
            queue=queue,
        )
        answer = visible_ticket(request.user, new.reference or "")
        return Response(
            TicketDetailSerializer(answer, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )


urlpatterns = [
    path("tickets/<str:reference>/merge/", TicketMergeView.as_view(), name="ticket-merge"),
    path("tickets/<str:reference>/messages/<int:message_id>/split/", MessageSplitView.as_view(), name="message-split"),
]
