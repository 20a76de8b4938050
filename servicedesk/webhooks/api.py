"""``/api/v1/webhooks/``: integrators' endpoints, their deliveries, and redelivery (managers and admins).

The views validate, call one service and answer; refusals are 400 with the
field (``ApplicationError``), 403 for someone who may not manage webhooks.
The signing secret is in the answer to the creation and to a rotation only.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.auth import signed_in_user
from servicedesk.tickets.api.views import Pagination
from servicedesk.webhooks.access import webhooks_manageable_by
from servicedesk.webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from servicedesk.webhooks.services import (
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
)


class ManagesWebhooks(BasePermission):
    message = _("Only managers and admins manage webhooks.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return webhooks_manageable_by(request.user)


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    url = serializers.URLField(max_length=2000, help_text=_("An http or https address; public unless allowed."))
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False, max_length=len(EventType.values)
    )
    is_active = serializers.BooleanField(required=False, help_text=_("False: paused (nothing is sent)."))
    paused_reason = serializers.CharField(read_only=True)
    paused_at = serializers.DateTimeField(read_only=True, allow_null=True)
    failing_since = serializers.DateTimeField(read_only=True, allow_null=True)
    allow_private_addresses = serializers.BooleanField(
        required=False, help_text=_("Admins only: deliver to private, loopback or link-local addresses.")
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text=_("The signing secret; shown only in this answer."))


class EndpointUpdateSerializer(EndpointSerializer):
    rotate_secret = serializers.BooleanField(
        required=False, write_only=True, help_text=_("True: a new signing secret, returned once in the answer.")
    )


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    at = serializers.DateTimeField(read_only=True)
    duration_ms = serializers.IntegerField(read_only=True)
    status_code = serializers.IntegerField(read_only=True, allow_null=True)
    response_excerpt = serializers.CharField(read_only=True)
    error = serializers.CharField(read_only=True)
    succeeded = serializers.BooleanField(read_only=True)
    manual = serializers.BooleanField(read_only=True)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    event_id = serializers.UUIDField(read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    state = serializers.CharField(read_only=True)
    attempts = serializers.IntegerField(read_only=True)
    next_attempt_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_status_code = serializers.IntegerField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True)
    delivered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    attempt_log = AttemptSerializer(many=True, read_only=True)


def _endpoint_body(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body = dict(EndpointSerializer(endpoint).data)
    if secret is not None:
        body["secret"] = secret
    return body


@extend_schema_view(
    get=extend_schema(summary="List webhook endpoints", responses=EndpointSerializer(many=True)),
    post=extend_schema(
        summary="Add a webhook endpoint",
        description="The answer carries the signing secret, shown this once.",
        request=EndpointSerializer,
        responses={201: EndpointWithSecretSerializer},
    ),
)
class EndpointListView(generics.ListCreateAPIView):
    serializer_class = EndpointSerializer
    pagination_class = Pagination
    permission_classes = [IsAuthenticated, ManagesWebhooks]

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return WebhookEndpoint.objects.order_by("id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = webhook_endpoint_create(actor=signed_in_user(request), **serializer.validated_data)
        return Response(_endpoint_body(created.endpoint, created.secret), status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="A webhook endpoint", responses=EndpointSerializer),
    patch=extend_schema(
        summary="Change, pause, resume a webhook endpoint or rotate its secret",
        request=EndpointUpdateSerializer,
        responses=EndpointWithSecretSerializer,
    ),
    delete=extend_schema(summary="Remove a webhook endpoint and its delivery log", responses={204: None}),
)
class EndpointDetailView(generics.GenericAPIView):
    serializer_class = EndpointSerializer
    permission_classes = [IsAuthenticated, ManagesWebhooks]

    def get(self, request: Request, pk: int) -> Response:
        return Response(_endpoint_body(get_object_or_404(WebhookEndpoint, pk=pk)))

    def patch(self, request: Request, pk: int) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        serializer = EndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        rotate = changes.pop("rotate_secret", False)
        endpoint = webhook_endpoint_update(endpoint=endpoint, actor=signed_in_user(request), changes=changes)
        secret = webhook_endpoint_secret_rotate(endpoint=endpoint) if rotate else None
        return Response(_endpoint_body(endpoint, secret))

    def delete(self, request: Request, pk: int) -> Response:
        webhook_endpoint_delete(endpoint=get_object_or_404(WebhookEndpoint, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first, with their event and attempts (three queries a page)."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number")))
        .order_by("-created_at", "-id")
    )


@extend_schema_view(get=extend_schema(summary="An endpoint's deliveries and their attempts"))
class EndpointDeliveriesView(generics.ListAPIView):
    serializer_class = DeliverySerializer
    pagination_class = Pagination
    permission_classes = [IsAuthenticated, ManagesWebhooks]

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return deliveries_of(get_object_or_404(WebhookEndpoint, pk=self.kwargs["pk"]))


class DeliveryRedeliverView(APIView):
    permission_classes = [IsAuthenticated, ManagesWebhooks]

    @extend_schema(
        summary="Send a delivery again now",
        description="A pending or failed delivery is attempted at once; a delivered one is 409.",
        request=None,
        responses={202: DeliverySerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        delivery = webhook_delivery_redeliver(delivery=get_object_or_404(WebhookDelivery, pk=pk))
        delivery = deliveries_of(delivery.endpoint).get(pk=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
