"""``/api/v1/me/availability/``: the signed-in agent reads or sets their availability."""

from __future__ import annotations

from typing import Any

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
from servicedesk.routing.models import AgentProfile, Availability
from servicedesk.routing.services import agent_availability_set, agent_profile_ensure


class IsDeskUser(BasePermission):
    message = _("Only agents have an availability.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


class AvailabilitySerializer(serializers.Serializer):
    availability = serializers.ChoiceField(choices=Availability.choices)
    changed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    capacity = serializers.IntegerField(read_only=True)
    open_tickets = serializers.IntegerField(read_only=True)


def _body(profile: AgentProfile) -> dict[str, Any]:
    return {
        "availability": profile.availability,
        "changed_at": profile.availability_changed_at,
        "capacity": profile.capacity,
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
        profile = agent_availability_set(
            agent=signed_in_user(request),
            availability=serializer.validated_data["availability"],
        )
        return Response(AvailabilitySerializer(_body(profile)).data)
