"""Template filters for the one date convention (``servicedesk.core.datetimes``)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from servicedesk.core.datetimes import (
    NO_VALUE,
    desk_time_zone,
    format_day,
    format_instant,
    localized,
    zone_named,
    zone_title,
)

register = template.Library()


@register.filter
def instant(value: datetime | None) -> str:
    """``{{ when|instant }}`` -> ``2026-12-06 14:05 CET`` in the viewer's zone."""
    return format_instant(value)


@register.filter
def day(value: date | datetime | None) -> str:
    """``{{ when|day }}`` -> ``2026-12-06`` (an instant's local date in the viewer's zone)."""
    return format_day(value)


@register.filter
def instant_time(value: datetime | None) -> SafeString | str:
    """``{{ when|instant_time }}`` -> ``<time datetime="ISO" title="zone">2026-12-06 14:05 CET</time>``."""
    if value is None:
        return NO_VALUE
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        localized(value).isoformat(timespec="seconds"),
        zone_title(value),
        format_instant(value),
    )


@register.filter
def or_desk_zone(zone: tzinfo | str | None) -> tzinfo:
    """``zone``, or the desk's when a page renders without it (an error page has no request context)."""
    if isinstance(zone, tzinfo):
        return zone
    return zone_named(zone or "") or desk_time_zone()
