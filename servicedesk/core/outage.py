"""Answers while the database is unreachable: 503 with ``Retry-After``, never a 500.

API paths (``/api/``) get JSON, like every other API error; pages get a plain
page in the visitor's language, rendered without a request so that nothing
(sessions, the signed-in user) touches the database again. The middleware
catches what views raise; ``server_error`` (the site's ``handler500``)
catches what a middleware raises. See docs/architecture.md, "Limits and outages".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.defaults import server_error as default_server_error

log = logging.getLogger(__name__)

#: Raised by Django when the database cannot be reached or the connection broke.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def retry_after_seconds() -> int:
    return int(settings.SERVICEDESK["OUTAGE_RETRY_AFTER_SECONDS"])


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 for ``request`` while the database is down (logged once per request, without a trace)."""
    log.warning("Database unavailable for %s %s: %s", request.method, request.path, exc)
    response: HttpResponse
    if is_api_path(request.path):
        response = JsonResponse({"detail": _("Temporarily unavailable, try again later.")}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(retry_after_seconds())
    return response


class DatabaseOutageMiddleware:
    """Turns a database that cannot be reached into a 503 (JSON on the API, a page elsewhere)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return unavailable_response(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a database outage raised outside a view is a 503 too; anything else the 500 page."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return unavailable_response(request, exc)
    if is_api_path(request.path):
        return JsonResponse({"detail": _("Server error.")}, status=500)
    return default_server_error(request)
