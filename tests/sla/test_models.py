"""Stored calendars: constraints, the value built from them, holiday seeding."""

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from servicedesk.sla.calendars import CalendarSpec, business_seconds, calendar_spec
from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow
from servicedesk.sla.services import UnknownHolidayRegion, calendar_holidays_seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def dublin():
    return BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin", is_default=True)


def test_only_one_default_calendar(dublin):
    BusinessCalendar.objects.create(slug="ny", name="New York", time_zone="America/New_York")
    with pytest.raises(IntegrityError), transaction.atomic():
        BusinessCalendar.objects.create(slug="cork", name="Cork", time_zone="Europe/Dublin", is_default=True)
    assert list(BusinessCalendar.objects.filter(is_default=True)) == [dublin]
    with pytest.raises(ValidationError):
        BusinessCalendar(slug="cork", name="Cork", time_zone="Europe/Dublin", is_default=True).full_clean()


def test_time_zone_must_be_iana(dublin):
    with pytest.raises(ValidationError) as refused:
        BusinessCalendar(slug="x", name="X", time_zone="Europe/Atlantis").full_clean()
    assert "time_zone" in refused.value.message_dict
    dublin.full_clean()


@pytest.mark.parametrize(("start", "end"), [(600, 600), (700, 600), (0, 1441)])
def test_window_must_close_after_it_opens_within_the_day(dublin, start, end):
    with pytest.raises(IntegrityError), transaction.atomic():
        OpeningWindow.objects.create(calendar=dublin, weekday=0, start_minute=start, end_minute=end)
    assert not OpeningWindow.objects.exists()


def test_window_weekday_range(dublin):
    with pytest.raises(IntegrityError), transaction.atomic():
        OpeningWindow.objects.create(calendar=dublin, weekday=7, start_minute=0, end_minute=60)


def test_holiday_unique_per_calendar_and_date(dublin):
    Holiday.objects.create(calendar=dublin, date=date(2025, 12, 25), name="Christmas Day")
    with pytest.raises(IntegrityError), transaction.atomic():
        Holiday.objects.create(calendar=dublin, date=date(2025, 12, 25), name="Again")
    other = BusinessCalendar.objects.create(slug="ny", name="New York", time_zone="America/New_York")
    Holiday.objects.create(calendar=other, date=date(2025, 12, 25))


def test_calendar_spec_from_models(dublin):
    OpeningWindow.objects.create(calendar=dublin, weekday=0, start_minute=540, end_minute=750)
    OpeningWindow.objects.create(calendar=dublin, weekday=0, start_minute=810, end_minute=1020)
    OpeningWindow.objects.create(calendar=dublin, weekday=5, start_minute=1200, end_minute=1440)
    Holiday.objects.create(calendar=dublin, date=date(2025, 10, 27), name="October Bank Holiday")
    spec = calendar_spec(dublin)
    assert spec == CalendarSpec(
        time_zone="Europe/Dublin",
        windows={0: ((540, 750), (810, 1020)), 5: ((1200, 1440),)},
        holidays=frozenset({date(2025, 10, 27)}),
    )
    # Monday 3 Nov (GMT): 7 hours; the bank holiday Monday before counts nothing.
    week = (datetime(2025, 10, 27, tzinfo=UTC), datetime(2025, 11, 4, tzinfo=UTC))
    assert business_seconds(spec, *week) == 4 * 3600 + 7 * 3600


def test_holiday_seeding_is_idempotent_and_keeps_edits(dublin):
    added = calendar_holidays_seed(calendar=dublin, country="IE", years=[2025])
    assert added == 10
    october = Holiday.objects.get(calendar=dublin, date=date(2025, 10, 27))
    assert october.name == "October Bank Holiday"
    october.name = "Lá Saoire Dheireadh Fómhair"
    october.save()
    assert calendar_holidays_seed(calendar=dublin, country="ie", years=range(2025, 2027)) == 10
    assert calendar_holidays_seed(calendar=dublin, country="IE", years=range(2025, 2027)) == 0
    assert Holiday.objects.filter(calendar=dublin).count() == 20
    assert Holiday.objects.get(calendar=dublin, date=date(2025, 10, 27)).name == "Lá Saoire Dheireadh Fómhair"


def test_holiday_seeding_with_subdivision(dublin):
    assert calendar_holidays_seed(calendar=dublin, country="US", subdivision="NY", years=[2025]) > 0
    assert Holiday.objects.filter(calendar=dublin, date=date(2025, 7, 4)).exists()


@pytest.mark.parametrize(("country", "subdivision"), [("XX", None), ("IE", "ZZ")])
def test_holiday_seeding_refuses_unknown_regions(dublin, country, subdivision):
    with pytest.raises(UnknownHolidayRegion):
        calendar_holidays_seed(calendar=dublin, country=country, subdivision=subdivision, years=[2025])
    assert not Holiday.objects.exists()
