"""API error shape: JSON with a ``detail`` and, for field errors, one list per field.

A throttled request (429) also says ``reason: throttled`` and ``retry_after`` (seconds,
as its ``Retry-After`` header); a database outage is answered by ``core.outage`` (503).
"""

import math
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from servicedesk.core.errors import ApplicationError
from servicedesk.core.input import too_big_message


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML 400.
        return Response({"detail": too_big_message()}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            exc = exceptions.ValidationError(exc.message_dict)
        else:
            exc = exceptions.ValidationError({"detail": exc.messages})
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.field:
            body[exc.field] = [exc.message]
        body.update(exc.extra)
        return Response(body, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = {"detail": response.data}
    if response is None:
        return None
    if response.status_code == status.HTTP_400_BAD_REQUEST and "detail" not in response.data:
        response.data = {"detail": "Invalid input.", **response.data}
    if isinstance(exc, exceptions.Throttled):
        # Retry-After is set by DRF from the same wait; the body says it too.
        wait = getattr(exc, "wait", None)
        retry_after = max(1, math.ceil(wait or 1))
        response.data = {"detail": response.data["detail"], "reason": "throttled", "retry_after": retry_after}
        response["Retry-After"] = str(retry_after)
    return response
