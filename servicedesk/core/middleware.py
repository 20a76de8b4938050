"""Request middleware without business meaning."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from servicedesk.core.datetimes import desk_time_zone, viewer_time_zone


class ViewerTimeZoneMiddleware:
    """Activates the signed-in user's zone (else the desk's) for the request, so pages show their times."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        zone = viewer_time_zone(user) if user is not None and user.is_authenticated else desk_time_zone()
        with timezone.override(zone):
            return self.get_response(request)
