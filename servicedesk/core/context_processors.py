"""Template context every page gets."""

from __future__ import annotations

import zoneinfo

from django.http import HttpRequest

from servicedesk.core.datetimes import desk_time_zone
from servicedesk.core.datetimes import viewer_time_zone as zone_of


def viewer_time_zone(request: HttpRequest) -> dict[str, zoneinfo.ZoneInfo]:
    """``viewer_time_zone``: the signed-in user's zone, else the desk's. ``base.html`` shows every page's
    instants in it (``{% timezone %}``); the API and other output keep their own zone."""
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {"viewer_time_zone": zone_of(user) if signed_in else desk_time_zone()}
