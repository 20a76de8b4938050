"""``POST /api/v1/phone/events/``: a telephone system's call events in the generic CTI form (docs/phone.md).

Signed with ``X-ServiceDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">`` under the secret of the line (``SD_PHONE_WEBHOOK_SECRET``
for the default line): a missing, wrong or more than five minutes old
signature is 401 and nothing is stored; the signature says which line sent
the event. Bad input is 400 with the reason per field; an event for a number
that is not the signing line's is 404. Answers never carry customer data.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.core.input import GuardedJSONParser
from servicedesk.core.throttles import PHONE_EVENTS_LIMIT, Refusals
from servicedesk.tickets.services.customers import InvalidIdentity

from .lines import KnownLine, lines_known
from .models import DEFAULT_LINE_KEY, CallDirection, CallEventKind, PhoneLine
from .services import CallEventIn, call_event_store, call_fold_soon, phone_number

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-ServiceDesk-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
BODY_MAX_BYTES = 256 * 1024
REFUSALS = Refusals("phone-events-refused")
# How far back and ahead an event's time may be (a simulated day may be months old).
AT_PAST = timedelta(days=400)
AT_FUTURE = timedelta(hours=1)
CAUSES = ("normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound", "forwarded", "voicemail")


def signature_parse(header: str) -> tuple[int, list[str]] | None:
    """``t`` and the ``v1`` signatures of the header, or None when it is not of that form."""
    stamp: int | None = None
    signatures = []
    for part in (header or "").split(","):
        name, _sep, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            stamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.strip().lower())
    return (stamp, signatures) if stamp is not None and signatures else None


def signature_make(body: bytes, secret: str, stamp: int) -> str:
    """The header value for ``body`` signed at ``stamp`` (unix seconds) with ``secret``."""
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def signing_line(body: bytes, header: str, *, now: float | None = None) -> PhoneLine | None:
    """The active line whose secret (current or previous) signed ``body``, or None."""
    if signature_parse(header) is None:
        return None
    for fresh in (False, True):
        known = lines_known(fresh=fresh)
        if settings.SERVICEDESK.get("PHONE_WEBHOOK_SECRET") and not any(k.line.key == DEFAULT_LINE_KEY for k in known):
            default_line()
            known = lines_known(fresh=True)
        line = line_signed(known, body, header, now=now)
        if line is not None:
            return line
        # No secret this process knows matched: once more from the database (a line just made or rotated).
    return None


def line_signed(known: Iterable[KnownLine], body: bytes, header: str, *, now: float | None = None) -> PhoneLine | None:
    """Of the lines ``known``, the active one whose secret signed ``body`` in ``header`` in time, or None."""
    parsed = signature_parse(header)
    if parsed is None:
        return None
    stamp, signatures = parsed
    now = time.time() if now is None else now
    if abs(now - stamp) > SIGNATURE_TOLERANCE_SECONDS:
        return None
    at = timezone.now()
    for k in known:
        if not k.line.is_active:
            continue
        for secret in k.secrets(at):
            expected = signature_make(body, secret, stamp).split("v1=", 1)[1]
            if any(hmac.compare_digest(expected, given) for given in signatures):
                return k.line
    return None


def default_line() -> PhoneLine:
    """The default line, made on first use (its secret is ``SD_PHONE_WEBHOOK_SECRET``)."""
    line, _created = PhoneLine.objects.get_or_create(key=DEFAULT_LINE_KEY, defaults={"name": "Default line"})
    return line


class PhoneNumberField(serializers.CharField):
    """A number as a telephone system writes it: E.164 after checking, '' when withheld."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            phone_number(value)
        except InvalidIdentity as exc:
            raise serializers.ValidationError(str(exc.message)) from None
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with its offset: a time without one is refused, not read in the desk's zone."""

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str):
            parsed = parse_datetime(value.strip())
            if parsed is not None and parsed.tzinfo is None:
                raise serializers.ValidationError(
                    _("Give the time with its offset, such as 2026-03-02T09:15:00+01:00.")
                )
        return super().to_internal_value(value)


class UsersField(serializers.ListField):
    """``user``: one agent (an email address or an extension) or a list of them."""

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [data]
        return list(super().to_internal_value(data))


class CtiEventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=CallEventKind.values)
    call_id = serializers.CharField(max_length=250)
    direction = serializers.ChoiceField(choices=CallDirection.values, default=CallDirection.INBOUND)
    from_ = PhoneNumberField(max_length=64, allow_blank=True, required=False, default="")
    to = PhoneNumberField(max_length=64, allow_blank=True, required=False, default="")
    user = UsersField(child=serializers.CharField(max_length=254), max_length=100, required=False, default=list)
    answering_user = serializers.CharField(max_length=254, allow_blank=True, required=False, default="")
    cause = serializers.ChoiceField(choices=CAUSES, required=False, allow_blank=True, default="")
    queue = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    at = AwareDateTimeField(required=False, default=None, allow_null=True)
    recording_url = serializers.URLField(max_length=2000, allow_blank=True, required=False, default="")
    voicemail_url = serializers.URLField(max_length=2000, allow_blank=True, required=False, default="")
    transcript = serializers.CharField(
        max_length=100_000, allow_blank=True, required=False, default="", trim_whitespace=False
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "from" is a keyword in Python: the field is declared as from_.
        fields["from"] = fields.pop("from_")
        return fields

    def validate_at(self, value: Any) -> Any:
        if value is None:
            return None
        now = timezone.now()
        if not now - AT_PAST <= value <= now + AT_FUTURE:
            raise serializers.ValidationError(_("The time is too far in the past or the future."))
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["event"] == CallEventKind.NEW_CALL and not (attrs.get("from") or attrs.get("to")):
            raise serializers.ValidationError({"from": _("A new call needs its numbers.")})
        return attrs


def event_parse(body: bytes, received_at: Any) -> CallEventIn | Answer:
    """The signed body as an event, or the 400 that says what is wrong with it.

    The API's own JSON checks (depth, NUL characters) on the bytes the
    signature covered, then the fields (``CtiEventSerializer``).
    """
    try:
        raw = GuardedJSONParser().parse(io.BytesIO(body))
    except exceptions.ParseError as exc:
        return Answer(400, {"detail": str(exc.detail)})
    if not isinstance(raw, dict):
        return Answer(400, {"detail": "The body is a JSON object."})
    serializer = CtiEventSerializer(data=raw)
    if not serializer.is_valid():
        return Answer(400, {"detail": "Invalid input.", **serializer.errors})
    return event_in(serializer.validated_data, raw, received_at)


def event_in(data: dict[str, Any], raw: dict[str, Any], received_at: Any) -> CallEventIn:
    sent = {key: value for key, value in raw.items() if key in _EVENT_FIELDS}
    return CallEventIn(
        kind=data["event"],
        call_id=data["call_id"],
        direction=data["direction"],
        from_number=data.get("from", ""),
        to_number=data.get("to", ""),
        at=data.get("at") or received_at,
        sent=sent,
        users=tuple(data.get("user") or ()),
        answering_user=data.get("answering_user", ""),
        cause=data.get("cause", ""),
        queue=data.get("queue", ""),
        recording_url=data.get("recording_url", ""),
        voicemail_url=data.get("voicemail_url", ""),
        transcript=data.get("transcript", ""),
    )


# The fields an event may carry: what makes two copies of it the same (``CallEventIn.sent``).
_EVENT_FIELDS = frozenset(CtiEventSerializer().get_fields())


def line_takes(line: PhoneLine, event: CallEventIn, known: Iterable[KnownLine] | None = None) -> bool:
    """Whether the event's number is the line's (the default line takes any number no other line has).

    ``known``: the lines to compare with (default: this process's, ``lines_known``).
    """
    ours = event.to_number if event.direction == CallDirection.INBOUND else event.from_number
    try:
        number = phone_number(ours)
    except InvalidIdentity:
        return False
    if line.key == DEFAULT_LINE_KEY:
        others = lines_known() if known is None else known
        return not number or not any(k.line.number == number and k.line.pk != line.pk for k in others)
    return not line.number or (bool(number) and number == line.number) or not ours


_Error = inline_serializer("PhoneEventError", fields={"detail": serializers.CharField()})
_Result = inline_serializer("PhoneEventResult", fields={"outcome": serializers.ChoiceField(["stored", "duplicate"])})


class CtiEventView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    # The rate limit is event_receive's (one round trip), as the web server's direct route applies it.
    throttle_classes: list[type] = []

    @extend_schema(
        operation_id="phone_event_receive",
        summary="Receive one call event (generic CTI)",
        description=(
            "One JSON event of a call: newCall, answer or hangup (docs/phone.md). Sign the exact body: "
            '`X-ServiceDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the '
            "line's secret. The same event sent again changes nothing (outcome `duplicate`); events may "
            "come in any order."
        ),
        auth=[],
        request=OpenApiTypes.OBJECT,
        parameters=[OpenApiParameter(SIGNATURE_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=True)],
        responses={
            200: _Result,
            400: OpenApiResponse(description="Malformed JSON or invalid fields, with the reason per field."),
            401: OpenApiResponse(_Error, description="Missing, wrong or expired signature."),
            404: OpenApiResponse(_Error, description="The number is not the signing line's."),
            413: OpenApiResponse(_Error, description="The body is over 256 KiB."),
            429: OpenApiResponse(_Error, description="Too many refused requests from this address."),
            503: OpenApiResponse(_Error, description="Temporarily unavailable; send again later."),
        },
        tags=["phone"],
    )
    def post(self, request: Request) -> Response:
        body = request._request.read(BODY_MAX_BYTES + 1)
        answer = event_receive(
            body=body, signature=request.headers.get(SIGNATURE_HEADER, ""), client=_client(request.META)
        )
        return Response(answer.data, status=answer.status, headers=answer.headers)


def _client(meta: dict[str, Any]) -> str:
    return str(meta.get("REMOTE_ADDR") or "unknown")


@dataclass(frozen=True)
class Answer:
    """What the webhook answers: a status, a JSON object, extra headers."""

    status: int
    data: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def event_receive(*, body: bytes, signature: str, client: str, limits: bool = True) -> Answer:
    """One generic CTI event, from the raw body, its signature header and the client's address.

    The whole webhook, for ``CtiEventView`` and for the web server's direct
    route (``phone/asgi.py``), which answer the same for the same request:
    refused addresses and the rate limit first, then the body's size, the
    signature (which names the line), the JSON and its fields, the line's
    number; then the event is stored in one statement and its call folded
    soon. ``body`` is read up to one byte over the limit. ``limits``: False
    when the caller applied the refusals and the rate limit already.
    """
    retry_after = (
        REFUSALS.blocked_client(client, limit=settings.SERVICEDESK["PHONE_REFUSED_PER_MINUTE"]) if limits else None
    )
    if retry_after is not None:
        # Too many wrong signatures from this address: answered before the body is looked at.
        return refused_too_often(retry_after)
    wait = PHONE_EVENTS_LIMIT.wait(client) if limits else None
    if wait is not None:
        return throttled(wait)
    if len(body) > BODY_MAX_BYTES:
        return Answer(413, {"detail": f"An event is at most {BODY_MAX_BYTES} bytes."})
    try:
        line = signing_line(body, signature)
    except (OperationalError, InterfaceError):
        return unavailable()
    if line is None:
        REFUSALS.count_client(client)
        return Answer(401, {"detail": "Missing, invalid or expired signature."})
    received_at = timezone.now()
    event = event_parse(body, received_at)
    if isinstance(event, Answer):
        return event
    try:
        if not line_takes(line, event):
            return Answer(404, {"detail": "No such line."})
        stored = call_event_store(line=line, event=event, received_at=received_at)
    except (OperationalError, InterfaceError):
        return unavailable()
    if stored:
        try:
            call_fold_soon(line_id=line.pk, call_key=event.call_id)
        except (OperationalError, InterfaceError):
            # The event is kept: the pending-events sweep folds its call when the database is back.
            log.warning("Call %s of line %s stored, not folded yet", event.call_id, line.pk, exc_info=True)
    return Answer(200, {"outcome": "stored" if stored else "duplicate"})


def throttled(wait: int) -> Answer:
    """Over the rate limit of signed events: 429, as the API's throttles answer."""
    return Answer(
        429,
        {
            "detail": f"Request was throttled. Expected available in {wait} seconds.",
            "reason": "throttled",
            "retry_after": wait,
        },
        {"Retry-After": str(wait)},
    )


def refused_too_often(retry_after: int) -> Answer:
    """Too many refused signatures from the address this minute: 429 until the minute ends."""
    return Answer(429, {"detail": "Too many refused requests, try again later."}, {"Retry-After": str(retry_after)})


def unavailable() -> Answer:
    """The database is unreachable: 503, to be sent again later (the event is not stored)."""
    return Answer(503, {"detail": "Temporarily unavailable, try again later."}, {"Retry-After": "5"})
