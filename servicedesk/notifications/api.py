"""Notifications' part of REST API v1: following a ticket, reminders, and notification preferences.

Agents only. A ticket is found through ``access.ticket_get_for`` (one the
caller may not see is 404, on every path), every write is a service call,
and a refusal is a 400 with the field's message (``core.api.exception_handler``).
See docs/followups.md.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.notifications.models import NotificationKind, Reminder
from servicedesk.notifications.preferences import (
    KINDS,
    KindPreference,
    notification_preferences_set,
    preferences_check,
    preferences_of,
)
from servicedesk.notifications.reminders import NOTE_MAX, reminder_cancel, reminder_create, reminders_of
from servicedesk.tickets.access import ticket_get_for
from servicedesk.tickets.followups import ticket_is_followed_by
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.followups import ticket_follow, ticket_unfollow

REFERENCE = OpenApiParameter(
    "reference", OpenApiTypes.STR, OpenApiParameter.PATH, description=_("Ticket reference, e.g. SD-1001.")
)


class IsDeskUser(BasePermission):
    message = _("Only agents follow tickets, set reminders and choose notifications.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


def _ticket(request: Request, reference: str) -> Ticket:
    return ticket_get_for(request.user, reference)


# --- Following ---------------------------------------------------------------


class FollowSerializer(serializers.Serializer):
    reference = serializers.CharField(read_only=True)
    following = serializers.BooleanField(read_only=True)


class TicketFollowView(APIView):
    """Whether the caller follows a ticket; follow it (POST) or stop (DELETE)."""

    permission_classes = [IsAuthenticated, IsDeskUser]

    @extend_schema(summary="Whether you follow a ticket", parameters=[REFERENCE], responses=FollowSerializer)
    def get(self, request: Request, reference: str) -> Response:
        ticket = _ticket(request, reference)
        return Response({"reference": ticket.reference, "following": ticket_is_followed_by(ticket, request.user)})

    @extend_schema(
        summary="Follow a ticket",
        description=(
            "You are told of the ticket's customer messages and of status changes by others (in the "
            "workspace and by email, as your notification preferences say). 201 when you start following, "
            "200 when you already did."
        ),
        parameters=[REFERENCE],
        request=None,
        responses={201: FollowSerializer, 200: FollowSerializer},
    )
    def post(self, request: Request, reference: str) -> Response:
        ticket = _ticket(request, reference)
        started = ticket_follow(ticket=ticket, user=signed_in_user(request))
        return Response(
            {"reference": ticket.reference, "following": True},
            status=status.HTTP_201_CREATED if started else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Stop following a ticket",
        description="204 whether or not you followed it.",
        parameters=[REFERENCE],
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, reference: str) -> Response:
        ticket = _ticket(request, reference)
        ticket_unfollow(ticket=ticket, user=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Reminders ---------------------------------------------------------------


class ReminderSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    ticket = serializers.CharField(source="ticket.reference", read_only=True)
    remind_at = serializers.DateTimeField(help_text=_("When to be reminded: an ISO 8601 instant in the future."))
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=NOTE_MAX, help_text=_("What to remember (optional).")
    )
    created_at = serializers.DateTimeField(read_only=True)
    delivered_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the reminder was delivered; null while it waits.")
    )
    outcome = serializers.ChoiceField(
        choices=Reminder.Outcome.choices,
        read_only=True,
        allow_blank=True,
        help_text=_("sent, or not_visible when the ticket was no longer yours to see; empty while it waits."),
    )


class TicketRemindersView(APIView):
    """The caller's own reminders on a ticket, and a new one."""

    permission_classes = [IsAuthenticated, IsDeskUser]

    @extend_schema(
        summary="Your reminders on a ticket",
        description="Your own reminders on this ticket, the soonest first, waiting and delivered.",
        parameters=[REFERENCE],
        responses=ReminderSerializer(many=True),
    )
    def get(self, request: Request, reference: str) -> Response:
        ticket = _ticket(request, reference)
        reminders = reminders_of(user=signed_in_user(request), ticket=ticket)
        return Response(ReminderSerializer(reminders, many=True).data)

    @extend_schema(
        summary="Set a reminder on a ticket",
        description=(
            "At `remind_at` you get a notification (in the workspace, and by email as your preferences say), "
            "once. Nothing is sent if you may no longer see the ticket by then."
        ),
        parameters=[REFERENCE],
        request=ReminderSerializer,
        responses={201: ReminderSerializer},
    )
    def post(self, request: Request, reference: str) -> Response:
        ticket = _ticket(request, reference)
        serializer = ReminderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reminder = reminder_create(
            user=signed_in_user(request),
            ticket=ticket,
            remind_at=serializer.validated_data["remind_at"],
            note=serializer.validated_data.get("note", ""),
        )
        return Response(ReminderSerializer(reminder).data, status=status.HTTP_201_CREATED)


class ReminderDetailView(APIView):
    permission_classes = [IsAuthenticated, IsDeskUser]

    @extend_schema(
        summary="Cancel a reminder",
        description="Only your own; a reminder on a ticket you may no longer see is not found.",
        parameters=[OpenApiParameter("reminder_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={204: None},
    )
    def delete(self, request: Request, reminder_id: int) -> Response:
        reminder_cancel(user=signed_in_user(request), reminder_id=reminder_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Preferences -------------------------------------------------------------


class KindPreferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[(kind, NotificationKind(kind).label) for kind in KINDS])
    # The kind's name for people; the attribute shadows DRF's own ``Field.label``, which a serializer does not use.
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    in_app = serializers.BooleanField(required=False, help_text=_("Shown in the workspace (the bell)."))
    email = serializers.BooleanField(required=False, help_text=_("Sent by email."))


class PreferencesSerializer(serializers.Serializer):
    preferences = KindPreferenceSerializer(many=True)


def _preferences_body(preferences: list[KindPreference]) -> dict[str, Any]:
    return {
        "preferences": [
            {"kind": pref.kind, "label": pref.label, "in_app": pref.in_app, "email": pref.email} for pref in preferences
        ]
    }


class MyNotificationPreferencesView(APIView):
    """Per kind of notice, whether the caller wants it in the workspace and by email."""

    permission_classes = [IsAuthenticated, IsDeskUser]

    @extend_schema(
        summary="Your notification preferences",
        description="Every kind you can be sent; `webhook_paused` only for managers and admins.",
        responses=PreferencesSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(_preferences_body(preferences_of(signed_in_user(request))))

    @extend_schema(
        summary="Change your notification preferences",
        description=(
            "Send the kinds to change, each with `in_app` and/or `email`; what is left out keeps its value. "
            'Example: `{"preferences": [{"kind": "mention", "email": false}]}`. A kind you are not sent '
            "(`webhook_paused` for an agent who is neither a manager nor an admin) is a 400."
        ),
        request=PreferencesSerializer,
        responses=PreferencesSerializer,
    )
    def patch(self, request: Request) -> Response:
        serializer = PreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = signed_in_user(request)
        changes = preferences_check(user=user, changes=serializer.validated_data["preferences"])
        preferences = notification_preferences_set(user=user, changes=changes)
        return Response(_preferences_body(preferences))
