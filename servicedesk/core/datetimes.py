"""One way to show an instant to people, on every page, mail and notification.

An aware datetime is shown in the viewer's time zone (their profile's, else
the desk's ``TIME_ZONE``) as ``2026-12-06 14:05 CET``: ISO order, whatever
the language, so nobody wonders whether 06/12 is June or December, and the
zone named. A zone whose abbreviation is only an offset ("+08") is named by
its offset, ``UTC+08:00``. Machines get ISO 8601 in the ``datetime``
attribute of ``<time>`` (``instant_time``), people get this text.

Pages: ``base.html`` activates the signed-in user's zone around the page
(``core.context_processors.viewer_time_zone``), and the template filters
``instant``/``instant_time``/``day`` (``{% load datetimes %}``) format in the
active zone. Mail and notifications pass the zone of their
reader to ``format_instant``.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.utils import timezone

NO_VALUE = "\u2014"


def zone_named(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The zone called ``name``; None for an empty or unknown name."""
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def desk_time_zone() -> zoneinfo.ZoneInfo:
    """The desk's own zone, ``settings.TIME_ZONE``."""
    return zone_named(settings.TIME_ZONE) or zoneinfo.ZoneInfo("UTC")


def viewer_time_zone(user: Any) -> zoneinfo.ZoneInfo:
    """The zone ``user`` reads times in: their profile's ``time_zone`` if valid, else the desk's."""
    return zone_named(getattr(user, "time_zone", "") or "") or desk_time_zone()


def zone_abbreviation(local: datetime) -> str:
    """The zone's short name at ``local`` ("CET", "CEST", "UTC"); its offset when the zone has no letters."""
    name = local.tzname() or ""
    if name and name[0].isalpha():
        return name
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def localized(value: datetime, zone: tzinfo | None = None) -> datetime:
    """``value`` in ``zone`` (default: the active zone); a naive value is taken as UTC."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, zoneinfo.ZoneInfo("UTC"))
    return value.astimezone(zone or timezone.get_current_timezone())


def format_instant(value: datetime | None, zone: tzinfo | None = None) -> str:
    """``2026-12-06 14:05 CET``: ``value`` in ``zone`` (default: the active zone) with the zone named."""
    if value is None:
        return NO_VALUE
    local = localized(value, zone)
    return f"{local:%Y-%m-%d %H:%M} {zone_abbreviation(local)}"


def format_day(value: date | datetime | None, zone: tzinfo | None = None) -> str:
    """``2026-12-06``: a date, or the local date of an instant in ``zone`` (default: the active zone)."""
    if value is None:
        return NO_VALUE
    if isinstance(value, datetime):
        value = localized(value, zone).date()
    return value.isoformat()


def zone_title(value: datetime, zone: tzinfo | None = None) -> str:
    """The zone's full name and offset, for a tooltip: ``Europe/Dublin, UTC+00:00``."""
    local = localized(value, zone)
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{getattr(local.tzinfo, 'key', local.tzname())}, UTC{sign}{hours:02d}:{minutes:02d}"
