"""``/api/v1/me/availability/``: the signed-in agent reads or sets their availability
(and, with the permission to change agent profiles, their chat capacity)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.routing import selectors
from servicedesk.routing.models import CHAT_CAPACITY_MAX, AgentProfile, Availability
from servicedesk.routing.services import agent_availability_set, agent_chat_capacity_set, agent_profile_ensure


class IsDeskUser(BasePermission):
    message = _("Only agents have an availability.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


class AvailabilitySerializer(serializers.Serializer):
    availability = serializers.ChoiceField(choices=Availability.choices)
    changed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    capacity = serializers.IntegerField(read_only=True)
    chat_capacity = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=CHAT_CAPACITY_MAX,
        help_text=_("Chats offered at the same time at most (0 to 20); only managers and admins may change it."),
    )
    open_tickets = serializers.IntegerField(read_only=True)


def _body(profile: AgentProfile) -> dict[str, Any]:
    return {
        "availability": profile.availability,
        "changed_at": profile.availability_changed_at,
        "capacity": profile.capacity,
        "chat_capacity": profile.chat_capacity,
        "open_tickets": selectors.agent_loads([profile.user_id]).get(profile.user_id, 0),
    }


class MyAvailabilityView(APIView):
    """Whether routing may give the caller tickets now: ``online``, ``away`` or ``offline``."""

    permission_classes = [IsAuthenticated, IsDeskUser]

    @extend_schema(responses=AvailabilitySerializer)
    def get(self, request: Request) -> Response:
        profile = agent_profile_ensure(user=signed_in_user(request))
        return Response(AvailabilitySerializer(_body(profile)).data)

    @extend_schema(request=AvailabilitySerializer, responses=AvailabilitySerializer)
    def put(self, request: Request) -> Response:
        serializer = AvailabilitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = signed_in_user(request)
        chat_capacity = serializer.validated_data.get("chat_capacity")
        # Both or neither: a refused chat capacity leaves the availability as it was.
        with transaction.atomic():
            if chat_capacity is not None:
                agent_chat_capacity_set(agent=user, chat_capacity=chat_capacity, actor=user)
            profile = agent_availability_set(agent=user, availability=serializer.validated_data["availability"])
        return Response(AvailabilitySerializer(_body(profile)).data)
