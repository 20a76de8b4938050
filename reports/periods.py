"""A report's period: local dates of a calendar's zone turned into UTC instants.

docs/metrics.md#in-scope: the cohort is the tickets created in [period start,
period end), the dates taken in the calendar's zone; ``end`` is exclusive.
Local midnight follows the edge rules of ``servicedesk.sla.calendars`` (a
skipped midnight is the instant the clock jumps over it, a repeated one its
first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.utils.translation import gettext as _

from servicedesk.core.epoch import from_epoch_us
from servicedesk.core.errors import ApplicationError
from servicedesk.sla.calendars import CalendarSpec, always_open, calendar_spec, local_to_epoch_us
from servicedesk.sla.models import BusinessCalendar

UTC_CALENDAR_LABEL = "24x7 UTC"
# The longest period the dashboard, the API and the exports compute at once.
MAX_PERIOD_DAYS = 366
# Dates a report may cover: well inside what Python's datetime and the
# database hold in every time zone, with room for the week and month
# boundaries the computation adds.
FIRST_REPORT_DATE = date(1900, 1, 1)
LAST_REPORT_DATE = date(9998, 12, 31)


class PeriodRefused(ApplicationError):
    """A period the reports cannot compute: refused when asked for, never a failed job."""


def local_midnight_utc(day: date, time_zone: str) -> datetime:
    """The UTC instant of 00:00 local time on ``day`` in ``time_zone``."""
    spec = CalendarSpec(time_zone=time_zone)
    return from_epoch_us(local_to_epoch_us(spec.tz, datetime.combine(day, time())))


def period_check(*, start: date, end: date, time_zone: str = "UTC") -> None:
    """Raise PeriodRefused (with the field) unless [start, end) is a period the reports can compute:
    it ends after it starts, lasts at most MAX_PERIOD_DAYS days, lies between FIRST_REPORT_DATE and
    LAST_REPORT_DATE, and both its midnights exist as instants in ``time_zone``."""
    if end <= start:
        raise PeriodRefused(_("The period must end after it starts."), field="end")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise PeriodRefused(_("A period is at most one year."), field="end")
    for name, day in (("start", start), ("end", end)):
        if not FIRST_REPORT_DATE <= day <= LAST_REPORT_DATE:
            raise PeriodRefused(
                _("Choose a date between %(first)s and %(last)s.")
                % {"first": FIRST_REPORT_DATE.isoformat(), "last": LAST_REPORT_DATE.isoformat()},
                field=name,
            )
        try:
            local_midnight_utc(day, time_zone)
        except (OverflowError, ValueError):
            raise PeriodRefused(_("This date cannot be reported on in the calendar's time zone."), field=name) from None


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
