"""A report's period: local dates of a calendar's zone turned into UTC instants.

METRICS.md section 2: the cohort is the tickets created in [period start,
period end), the dates taken in the calendar's zone; ``end`` is exclusive.
Local midnight follows the edge rules of ``servicedesk.sla.calendars`` (a
skipped midnight is the instant the clock jumps over it, a repeated one its
first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from servicedesk.sla.calendars import CalendarSpec, always_open, calendar_spec, local_to_us
from servicedesk.sla.models import BusinessCalendar

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTC_CALENDAR_LABEL = "24x7 UTC"


def local_midnight_utc(day: date, time_zone: str) -> datetime:
    """The UTC instant of 00:00 local time on ``day`` in ``time_zone``."""
    spec = CalendarSpec(time_zone=time_zone)
    return _EPOCH + timedelta(microseconds=local_to_us(spec.tz, datetime.combine(day, time())))


@dataclass(frozen=True)
class Period:
    """Local dates [start, end) of ``calendar``; None means the 24x7 UTC calendar."""

    start: date
    end: date
    calendar: BusinessCalendar | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a period ends after it starts: {self.start} .. {self.end}")

    @property
    def time_zone(self) -> str:
        return self.calendar.time_zone if self.calendar is not None else "UTC"

    @property
    def start_utc(self) -> datetime:
        return local_midnight_utc(self.start, self.time_zone)

    @property
    def end_utc(self) -> datetime:
        return local_midnight_utc(self.end, self.time_zone)

    @property
    def calendar_label(self) -> str:
        return self.calendar.slug if self.calendar is not None else UTC_CALENDAR_LABEL

    def spec(self) -> CalendarSpec:
        """The calendar's opening hours (always open in UTC without a calendar)."""
        return calendar_spec(self.calendar) if self.calendar is not None else always_open("UTC")


def default_calendar() -> BusinessCalendar | None:
    """The calendar marked default, or None (reports then use 24x7 UTC)."""
    return BusinessCalendar.objects.filter(is_default=True).first()
