"""Business calendars: a time zone, weekly opening windows and holidays.

Managers edit them in the admin; ``servicedesk.sla.calendars`` turns one into
a ``CalendarSpec`` value and measures business time with it.
"""

import functools
import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

MINUTES_PER_DAY = 24 * 60


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in _time_zone_names():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value}, code="time_zone")


def minute_label(minute: int) -> str:
    """Minutes since midnight as HH:MM; 1440 is 24:00."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


class BusinessCalendar(models.Model):
    slug = models.SlugField(_("identifier"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    time_zone = models.CharField(_("time zone"), max_length=64, validators=[validate_time_zone])
    # The calendar used when none is named (reports, policies without one).
    is_default = models.BooleanField(_("default"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="sla_calendar_single_default",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.slug


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OpeningWindow(models.Model):
    """Local opening hours on one weekday, in minutes since midnight; an end of 1440 is 24:00."""

    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.CASCADE,
        related_name="windows",
        verbose_name=_("calendar"),
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    start_minute = models.PositiveSmallIntegerField(_("opens (minute of the day)"))
    end_minute = models.PositiveSmallIntegerField(_("closes (minute of the day)"))

    class Meta:
        verbose_name = _("opening window")
        verbose_name_plural = _("opening windows")
        ordering = ["calendar", "weekday", "start_minute"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__gte=0, weekday__lte=6), name="sla_window_weekday_range"),
            models.CheckConstraint(
                condition=Q(
                    start_minute__gte=0, start_minute__lt=models.F("end_minute"), end_minute__lte=MINUTES_PER_DAY
                ),
                name="sla_window_start_before_end",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {minute_label(self.start_minute)}-{minute_label(self.end_minute)}"


class Holiday(models.Model):
    """A local date on which the calendar is closed all day."""

    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.CASCADE,
        related_name="holidays",
        verbose_name=_("calendar"),
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="sla_holiday_calendar_date_unique")]

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.name}".strip()
