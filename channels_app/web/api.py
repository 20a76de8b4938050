"""The help centre's API for signed-in customers, and satisfaction survey answers (docs/help-centre.md).

- ``/api/v1/portal/tickets/``, ``/api/v1/portal/tickets/<reference>/``,
  ``.../status/``: the same requests, threads and actions as the portal's
  pages, for the customer the ``sd_help`` cookie signs in
  (``HelpSessionAuthentication``), by the same access rules. Writing needs
  the CSRF token, as the pages' forms do.
- ``/api/v1/surveys/<token>/``: a survey's state (GET) and its answer (POST),
  by the signed token of its mail; a second answer replaces the first.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, generics, serializers, status
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.throttles import ClientIpThrottleAuthentication
from servicedesk.tickets import access
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket
from servicedesk.tickets.services.intake import customer_may_reopen
from servicedesk.tickets.services.surveys import SurveyClosed, survey_answer, survey_for_token, survey_is_open
from servicedesk.tickets.services.tickets import ticket_status_change
from servicedesk.tickets.statuses import Status

from .signin import COOKIE, PortalCustomer, portal_customer


class HelpSessionAuthentication(BaseAuthentication):
    """The customer signed in to the help centre (the ``sd_help`` cookie), never a desk user."""

    def authenticate(self, request: Request) -> tuple[PortalCustomer, None] | None:
        viewer = portal_customer(request._request)
        if viewer is None:
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # A cookie travels with any site's request: writing needs the page's CSRF token.
            check = CSRFCheck(lambda _request: None)  # type: ignore[arg-type,return-value]
            check.process_request(request._request)
            if check.process_view(request._request, None, (), {}) is not None:  # type: ignore[arg-type]
                raise exceptions.PermissionDenied(_("CSRF check failed."))
        return viewer, None

    def authenticate_header(self, request: Request) -> str:
        return "Cookie"


class HelpSessionScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "channels_app.web.api.HelpSessionAuthentication"
    name = "helpSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": COOKIE}


def _viewer(request: Request) -> PortalCustomer:
    viewer = request.user
    if not isinstance(viewer, PortalCustomer):
        raise exceptions.NotAuthenticated()
    return viewer


class PortalTicketSerializer(serializers.Serializer):
    reference = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    channel = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    requester = serializers.CharField(source="customer.name", help_text=_("Who sent it (organization managers)."))
    own = serializers.SerializerMethodField()

    def get_own(self, ticket: Ticket) -> bool:
        return bool(ticket.customer_id == self.context["viewer"].customer.pk)


class PortalMessageSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=_("public_enduser (the customer's) or public_agent (ours)."))
    channel = serializers.CharField()
    author = serializers.CharField(source="author_name")
    text = serializers.CharField(source="shown_text")
    created_at = serializers.DateTimeField()
    files = serializers.SerializerMethodField()

    def get_files(self, message: Message) -> list[dict[str, Any]]:
        return [{"name": a.filename, "size": a.size} for a in message.attachments.all()]


class PortalTicketDetailSerializer(PortalTicketSerializer):
    messages = serializers.SerializerMethodField()
    can_reopen = serializers.SerializerMethodField()

    def get_messages(self, ticket: Ticket) -> list[dict[str, Any]]:
        thread = (
            access.public_messages(Message.objects.filter(ticket=ticket))
            .select_related("author_user", "author_customer")
            .prefetch_related("attachments")
            .order_by("created_at", "id")
        )
        return list(PortalMessageSerializer(thread, many=True).data)

    def get_can_reopen(self, ticket: Ticket) -> bool:
        return bool(ticket.is_solved and customer_may_reopen(ticket, timezone.now()))


class PortalTickets(generics.ListAPIView):
    """The signed-in customer's requests on every channel, the latest change first."""

    authentication_classes = [ClientIpThrottleAuthentication, HelpSessionAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = PortalTicketSerializer

    def get_queryset(self) -> QuerySet[Ticket]:
        return (
            access.tickets_visible_to(_viewer(self.request)).select_related("customer").order_by("-updated_at", "-id")
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "viewer": _viewer(self.request)}


def _request_for(viewer: PortalCustomer, reference: str) -> Ticket:
    found = access.tickets_visible_to(viewer).select_related("customer").filter(reference=reference).first()
    if found is None:
        raise exceptions.NotFound()
    return found


class PortalTicket(APIView):
    authentication_classes = [ClientIpThrottleAuthentication, HelpSessionAuthentication]
    permission_classes = [IsAuthenticated]

    serializer_class = PortalTicketDetailSerializer

    def get(self, request: Request, reference: str) -> Response:
        viewer = _viewer(request)
        ticket = _request_for(viewer, reference)
        return Response(PortalTicketDetailSerializer(ticket, context={"viewer": viewer}).data)


class StatusActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[("solve", _("My problem is solved")), ("reopen", _("Reopen"))])


class PortalTicketStatus(APIView):
    """ "My problem is solved" and reopen (within the reopen window), on the customer's own requests."""

    authentication_classes = [ClientIpThrottleAuthentication, HelpSessionAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = StatusActionSerializer

    def post(self, request: Request, reference: str) -> Response:
        viewer = _viewer(request)
        ticket = _request_for(viewer, reference)
        if ticket.customer_id != viewer.customer.pk:
            raise exceptions.NotFound()
        serializer = StatusActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action = serializer.validated_data["action"]
        actor = Actor.of_customer(viewer.customer, source="portal")
        if action == "solve" and not ticket.is_solved:
            ticket = ticket_status_change(ticket=ticket, status=Status.SOLVED, actor=actor)
        elif action == "reopen" and ticket.is_solved:
            if not customer_may_reopen(ticket, timezone.now()):
                return Response(
                    {"action": [_("This request was closed too long ago to reopen; please send a new request.")]},
                    status=status.HTTP_409_CONFLICT,
                )
            ticket = ticket_status_change(ticket=ticket, status=Status.OPEN, actor=actor)
        return Response(PortalTicketSerializer(ticket, context={"viewer": viewer}).data)


class SurveyAnswerSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class SurveyStateSerializer(serializers.Serializer):
    reference = serializers.CharField(source="ticket.reference")
    subject = serializers.CharField(source="ticket.subject")
    open = serializers.BooleanField()
    score = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)


class SurveyView(APIView):
    """A satisfaction survey by the signed token of its mail: its state, and the answer (1-5, a comment)."""

    authentication_classes = [ClientIpThrottleAuthentication]
    permission_classes = [AllowAny]
    serializer_class = SurveyAnswerSerializer

    def _state(self, token: str) -> tuple[Any, dict[str, Any]]:
        try:
            survey = survey_for_token(token)
        except NotFound:
            raise exceptions.NotFound() from None
        rating = survey.rating
        state = {
            "ticket": survey.ticket,
            "open": survey_is_open(survey),
            "score": rating.score if rating is not None else None,
            "comment": rating.comment if rating is not None else "",
        }
        return survey, state

    def get(self, request: Request, token: str) -> Response:
        _survey, state = self._state(token)
        return Response(SurveyStateSerializer(state).data)

    def post(self, request: Request, token: str) -> Response:
        survey, _state = self._state(token)
        serializer = SurveyAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            rating = survey_answer(
                survey=survey,
                score=serializer.validated_data["score"],
                comment=serializer.validated_data.get("comment", ""),
            )
        except SurveyClosed as exc:
            return Response({"detail": str(exc.message)}, status=status.HTTP_409_CONFLICT)
        except ApplicationError as exc:
            return Response({exc.field or "detail": [str(exc.message)]}, status=status.HTTP_400_BAD_REQUEST)
        state = {"ticket": survey.ticket, "open": True, "score": rating.score, "comment": rating.comment}
        return Response(SurveyStateSerializer(state).data)
