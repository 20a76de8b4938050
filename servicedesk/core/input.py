"""What every request must satisfy before a view reads it (docs/conventions.md, "Input").

PostgreSQL cannot store or compare a NUL character in text, so a NUL anywhere a
view might read text from (the path, the query string, headers, form fields, JSON
strings) is refused with 400 here, once, instead of failing as a 500 deep in a
query. JSON bodies are also limited in size (413) and in nesting (400).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

# Deeper than any body the API accepts (a ticket or a report request is two levels).
JSON_MAX_DEPTH = 32
API_PREFIX = "/api/"


def has_nul(values: Iterable[str]) -> bool:
    return any("\x00" in value for value in values)


def _query_has_nul(request: HttpRequest) -> bool:
    return has_nul(request.GET.keys()) or has_nul(v for values in request.GET.lists() for v in values[1])


def _headers_have_nul(request: HttpRequest) -> bool:
    return has_nul(value for key, value in request.META.items() if key.startswith("HTTP_") and isinstance(value, str))


def _form_has_nul(request: HttpRequest) -> bool:
    if request.method != "POST" or request.content_type not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return False
    return has_nul(request.POST.keys()) or has_nul(v for values in request.POST.lists() for v in values[1])


def nul_message() -> str:
    return _("The request contains a NUL character, which is not allowed in text.")


def too_big_message() -> str:
    return _("The request body is larger than %(n)d bytes.") % {"n": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}


def _refusal(request: HttpRequest, message: str, status_code: int) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=status_code)
    page = render_to_string("400.html", {"reason": message}, request=request)
    response = HttpResponseBadRequest(page)
    response.status_code = status_code
    return response


class RequestInputMiddleware:
    """Refuse a NUL in the path, query string, headers or form fields (400) and a body
    over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413), as JSON under ``/api/``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            if (
                "\x00" in request.path
                or _query_has_nul(request)
                or _headers_have_nul(request)
                or _form_has_nul(request)
            ):
                return _refusal(request, nul_message(), status.HTTP_400_BAD_REQUEST)
        except RequestDataTooBig:
            return _refusal(request, too_big_message(), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return self.get_response(request)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def json_depth_and_nul(value: Any) -> tuple[int, bool]:
    """The nesting depth of a parsed JSON value and whether any key or string holds a NUL (iterative)."""
    depth, nul = 0, False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            nul = nul or "\x00" in item
        elif isinstance(item, dict):
            depth = max(depth, level)
            nul = nul or has_nul(item.keys())
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in item)
    return depth, nul


class GuardedJSONParser(JSONParser):
    """JSON bodies within the upload size limit (413), nested at most
    ``JSON_MAX_DEPTH`` deep, without NUL characters (400 with the reason)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = b"" if stream is None else stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(too_big_message())
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=strict_constant)
        except RecursionError:
            raise exceptions.ParseError(_deep_message()) from None
        except ValueError as exc:
            raise exceptions.ParseError(_("JSON parse error - %(error)s") % {"error": exc}) from None
        depth, nul = json_depth_and_nul(data)
        if depth > JSON_MAX_DEPTH:
            raise exceptions.ParseError(_deep_message())
        if nul:
            raise exceptions.ParseError(nul_message())
        return data


def _deep_message() -> str:
    return _("The JSON body is nested deeper than %(n)d levels.") % {"n": JSON_MAX_DEPTH}
