"""Changes to business calendars."""

from collections.abc import Iterable

from django.db import transaction
from django.utils.translation import gettext as _

from servicedesk.core.errors import ApplicationError
from servicedesk.sla.models import BusinessCalendar, Holiday


class UnknownHolidayRegion(ApplicationError):
    pass


def calendar_holidays_seed(
    *,
    calendar: BusinessCalendar,
    country: str,
    years: Iterable[int],
    subdivision: str | None = None,
) -> int:
    """Add the public holidays of ``country`` (and ``subdivision``) in ``years`` to ``calendar``.

    Returns how many dates were added. Idempotent on (calendar, date): a date
    the calendar already holds keeps its row and its (possibly edited) name,
    so seeding twice adds nothing. Raises UnknownHolidayRegion for a country
    or subdivision the ``holidays`` package does not know; nothing is added then.
    """
    # Imported here: its country tables are loaded by nothing else, and the
    # admin imports this module in every process Django starts.
    import holidays as holiday_data

    year_list = sorted(set(years))
    try:
        region = holiday_data.country_holidays(country.upper(), subdiv=subdivision or None, years=year_list)
    except NotImplementedError as exc:
        region_name = f"{country}-{subdivision}" if subdivision else country
        raise UnknownHolidayRegion(_("No holiday data for %(region)s.") % {"region": region_name}) from exc
    rows = [
        Holiday(calendar=calendar, date=day, name=str(name)[:200])
        for day, name in sorted(region.items())
        if day.year in year_list
    ]
    with transaction.atomic():
        before = Holiday.objects.filter(calendar=calendar).count()
        Holiday.objects.bulk_create(rows, ignore_conflicts=True)
        return Holiday.objects.filter(calendar=calendar).count() - before
