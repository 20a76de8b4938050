"""``POST /api/v1/inbound/email/``: raw MIME mail forwarded by a mail service.

Authenticated by a shared secret only: the header
``X-ServiceDesk-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed with
``SERVICEDESK["INBOUND_EMAIL_SECRET"]``. An empty secret disables the endpoint
(404). Session, token and CSRF checks do not apply: the signature is the check.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.email.models import InboundEmail
from channels_app.email.mta import inbound_max_bytes
from channels_app.email.services import email_ingest
from servicedesk.core.throttles import InboundEmailRateThrottle, Refusals

SIGNATURE_HEADER = "X-ServiceDesk-Signature"
CONTENT_TYPES = ("message/rfc822", "application/octet-stream")
RETRY_AFTER_SECONDS = 60
# Requests refused for their signature, counted per client IP.
REFUSALS = Refusals("inbound-email-refused")


class RawMailParser(BaseParser):
    """Declares the accepted media types; the view reads the body itself."""

    media_type = "message/rfc822"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream.read()


class RawOctetParser(RawMailParser):
    media_type = "application/octet-stream"


def signature_valid(body: bytes, header: str, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


_Result = inline_serializer(
    "InboundEmailResult",
    fields={
        "outcome": serializers.ChoiceField(choices=["stored", "duplicate", "quarantined"]),
        "reference": serializers.CharField(allow_null=True),
        "reason": serializers.CharField(allow_null=True),
    },
)
_Error = inline_serializer("InboundEmailError", fields={"detail": serializers.CharField()})


class InboundEmailView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [InboundEmailRateThrottle]
    parser_classes = [RawMailParser, RawOctetParser]

    @extend_schema(
        operation_id="inbound_email_receive",
        summary="Receive one raw email",
        description=(
            "The raw RFC 5322 message as the body. Sign the exact body with HMAC-SHA256 keyed with the "
            "shared secret (SD_INBOUND_EMAIL_SECRET) and send `X-ServiceDesk-Signature: sha256=<hex>`. "
            "The same message sent twice is stored once (outcome `duplicate`). Mail that cannot be "
            "processed is kept in quarantine (outcome `quarantined`, with the reason). 503 means try again later."
        ),
        auth=[],
        request={ct: OpenApiTypes.BINARY for ct in CONTENT_TYPES},
        parameters=[
            OpenApiParameter(
                SIGNATURE_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="sha256=<hex HMAC-SHA256 of the body>",
            ),
        ],
        responses={
            200: OpenApiResponse(
                _Result,
                examples=[
                    OpenApiExample("stored", value={"outcome": "stored", "reference": "SD-1042", "reason": None}),
                ],
            ),
            401: OpenApiResponse(_Error, description="Missing or wrong signature."),
            429: OpenApiResponse(_Error, description="Too many requests from this address; see Retry-After."),
            404: OpenApiResponse(_Error, description="The endpoint is disabled (no secret configured)."),
            413: OpenApiResponse(_Error, description="The message is larger than the limit."),
            415: OpenApiResponse(_Error, description="The body is not message/rfc822 or application/octet-stream."),
            503: OpenApiResponse(_Error, description="Temporarily unavailable; send again later."),
        },
        tags=["inbound"],
    )
    def post(self, request: Request) -> Response:
        secret = settings.SERVICEDESK.get("INBOUND_EMAIL_SECRET") or ""
        if not secret:
            return Response({"detail": "Not found."}, status=404)
        # Too many wrong signatures from this address: answered before the body is read.
        retry_after = REFUSALS.blocked(request, limit=settings.SERVICEDESK["INBOUND_EMAIL_REFUSED_PER_MINUTE"])
        if retry_after is not None:
            return Response(
                {"detail": "Too many refused requests, try again later."},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        limit = inbound_max_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return Response({"detail": f"The message is larger than {limit} bytes."}, status=413)
        body = request._request.read(limit + 1)
        if len(body) > limit:
            return Response({"detail": f"The message is larger than {limit} bytes."}, status=413)
        if not signature_valid(body, request.headers.get(SIGNATURE_HEADER, ""), secret):
            REFUSALS.count(request)
            return Response({"detail": "Missing or invalid signature."}, status=401)
        content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            return Response({"detail": "Send the raw message as message/rfc822."}, status=415)
        try:
            result = email_ingest(raw=body, source=InboundEmail.Source.HTTP)
        except (OperationalError, InterfaceError, OSError):
            response = Response({"detail": "Temporarily unavailable, try again later."}, status=503)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        return Response({"outcome": result.outcome.value, "reference": result.reference, "reason": result.reason})
