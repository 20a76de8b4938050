"""Business time on DST nights, holidays, weekends and several windows a day (no database)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from servicedesk.sla.calendars import (
    CalendarSpec,
    always_open,
    business_seconds,
    calendar_seconds,
    due_instant,
)

HOUR = 3600.0
DUBLIN = "Europe/Dublin"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def every_day(*windows: tuple[int, int], time_zone: str, holidays: frozenset[date] = frozenset()) -> CalendarSpec:
    return CalendarSpec(time_zone=time_zone, windows={day: windows for day in range(7)}, holidays=holidays)


def office_hours(time_zone: str = DUBLIN, holidays: frozenset[date] = frozenset()) -> CalendarSpec:
    """Monday to Friday 09:00-17:00."""
    return CalendarSpec(time_zone=time_zone, windows={day: ((540, 1020),) for day in range(5)}, holidays=holidays)


def test_irish_winter_time_is_a_negative_dst_offset():
    # The premise of the Dublin cases: dst() disagrees with the clock change, utcoffset() does not.
    winter = datetime(2025, 1, 15, 12, tzinfo=ZoneInfo(DUBLIN))
    summer = datetime(2025, 7, 15, 12, tzinfo=ZoneInfo(DUBLIN))
    assert winter.dst() == timedelta(hours=-1)
    assert summer.dst() == timedelta(0)
    assert summer.utcoffset() - winter.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("time_zone", "local_day", "day_hours", "night_hours"),
    [
        (DUBLIN, date(2025, 3, 30), 23, 1),  # 01:00 GMT becomes 02:00 IST
        (DUBLIN, date(2025, 10, 26), 25, 3),  # 02:00 IST becomes 01:00 GMT
        (NEW_YORK, date(2025, 3, 9), 23, 1),  # 02:00 EST becomes 03:00 EDT
        (NEW_YORK, date(2025, 11, 2), 25, 3),  # 02:00 EDT becomes 01:00 EST
    ],
)
def test_dst_nights_count_real_elapsed_time(time_zone, local_day, day_hours, night_hours):
    tz = ZoneInfo(time_zone)
    midnight = datetime.combine(local_day, datetime.min.time(), tzinfo=tz)
    next_midnight = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    whole_day = every_day((0, 1440), time_zone=time_zone)
    assert business_seconds(whole_day, midnight, next_midnight) == day_hours * HOUR
    assert calendar_seconds(midnight, next_midnight) == day_hours * HOUR

    night = every_day((60, 180), time_zone=time_zone)
    assert business_seconds(night, midnight, next_midnight) == night_hours * HOUR
    # Measured over a wider interval the other days add their plain two hours.
    assert (
        business_seconds(night, midnight - timedelta(days=1), next_midnight + timedelta(days=1))
        == (night_hours + 4) * HOUR
    )


def test_dublin_spring_forward_exact_instants():
    night = every_day((60, 180), time_zone=DUBLIN)
    # 01:00 GMT = 01:00 UTC; 03:00 IST = 02:00 UTC.
    assert business_seconds(night, utc(2025, 3, 30, 0), utc(2025, 3, 30, 1, 30)) == 0.5 * HOUR
    assert business_seconds(night, utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 5)) == 0.5 * HOUR
    assert due_instant(night, utc(2025, 3, 30, 0), HOUR) == utc(2025, 3, 30, 2)
    assert due_instant(night, utc(2025, 3, 30, 0), HOUR + 1) == utc(2025, 3, 31, 0, 0, 1)


def test_new_york_fall_back_counts_the_repeated_hour():
    night = every_day((60, 180), time_zone=NEW_YORK)
    # 01:00 EDT = 05:00 UTC (first occurrence); 03:00 EST = 08:00 UTC.
    assert business_seconds(night, utc(2025, 11, 2, 0), utc(2025, 11, 2, 12)) == 3 * HOUR
    assert business_seconds(night, utc(2025, 11, 2, 6), utc(2025, 11, 2, 7)) == HOUR
    assert due_instant(night, utc(2025, 11, 2, 4), 3 * HOUR) == utc(2025, 11, 2, 8)


def test_window_edge_skipped_by_the_clock_ends_at_the_jump():
    # New York 2025-03-09: 02:00 EST (07:00 UTC) becomes 03:00 EDT; 02:30 never shows.
    spec = every_day((60, 150), (180, 240), time_zone=NEW_YORK)
    # 01:00-02:30 is 06:00-07:00 UTC, 03:00-04:00 is 07:00-08:00 UTC: no instant counted twice.
    assert business_seconds(spec, utc(2025, 3, 9, 5), utc(2025, 3, 9, 9)) == 2 * HOUR
    skipped_only = every_day((135, 165), time_zone=NEW_YORK)
    assert business_seconds(skipped_only, utc(2025, 3, 9, 0), utc(2025, 3, 10, 0)) == 0


def test_office_hours_across_the_dublin_fall_back_weekend():
    spec = office_hours()
    # Friday 24 Oct 16:00 IST (15:00 UTC) to Monday 27 Oct 10:00 GMT (10:00 UTC), no holidays.
    assert business_seconds(spec, utc(2025, 10, 24, 15), utc(2025, 10, 27, 10)) == 2 * HOUR
    assert due_instant(spec, utc(2025, 10, 24, 15), 2 * HOUR) == utc(2025, 10, 27, 10)
    # With the October bank holiday on Monday the clock resumes on Tuesday 09:00 GMT.
    holiday = office_hours(holidays=frozenset({date(2025, 10, 27)}))
    assert business_seconds(holiday, utc(2025, 10, 24, 15), utc(2025, 10, 27, 23)) == HOUR
    assert due_instant(holiday, utc(2025, 10, 24, 15), 2 * HOUR) == utc(2025, 10, 28, 10)


def test_holiday_closes_the_whole_local_day():
    spec = every_day((0, 1440), time_zone=NEW_YORK, holidays=frozenset({date(2025, 7, 4)}))
    # Local 4 July is 04:00 UTC on the 4th to 04:00 UTC on the 5th.
    assert business_seconds(spec, utc(2025, 7, 4, 0), utc(2025, 7, 5, 12)) == 4 * HOUR + 8 * HOUR
    assert due_instant(spec, utc(2025, 7, 4, 3), HOUR) == utc(2025, 7, 4, 4)
    assert due_instant(spec, utc(2025, 7, 4, 3), HOUR + 1) == utc(2025, 7, 5, 4, 0, 1)


def test_several_windows_a_day_and_a_weekend():
    # Monday to Friday 09:00-12:30 and 13:30-17:00 in New York (EDT, UTC-4).
    spec = CalendarSpec(time_zone=NEW_YORK, windows={day: ((540, 750), (810, 1020)) for day in range(5)})
    monday_morning = utc(2025, 10, 20, 12)  # 08:00 local
    assert business_seconds(spec, monday_morning, utc(2025, 10, 20, 22)) == 7 * HOUR
    assert due_instant(spec, monday_morning, 3.5 * HOUR) == utc(2025, 10, 20, 16, 30)
    assert due_instant(spec, monday_morning, 3.5 * HOUR + 1) == utc(2025, 10, 20, 17, 30, 1)
    # Friday 16:00 to Monday 10:00: one hour on Friday, one on Monday.
    assert business_seconds(spec, utc(2025, 10, 24, 20), utc(2025, 10, 27, 14)) == 2 * HOUR


def test_overlapping_windows_count_once():
    spec = every_day((540, 720), (600, 780), (780, 800), time_zone="UTC")
    assert spec.windows[0] == ((540, 800),)
    assert business_seconds(spec, utc(2025, 1, 6, 0), utc(2025, 1, 7, 0)) == 260 * 60


def test_ticket_created_and_answered_while_closed_takes_no_business_time():
    spec = office_hours()
    saturday_morning, saturday_evening = utc(2025, 10, 25, 9), utc(2025, 10, 25, 18)
    assert business_seconds(spec, saturday_morning, saturday_evening) == 0
    assert calendar_seconds(saturday_morning, saturday_evening) == 9 * HOUR


def test_reaching_a_target_and_zero_targets():
    spec = office_hours()
    saturday = utc(2025, 10, 25, 9)
    assert due_instant(spec, saturday, 0) == saturday
    # Exactly at the window end is due at that end, not at the next opening.
    assert due_instant(spec, utc(2025, 10, 24, 8), 8 * HOUR) == utc(2025, 10, 24, 16)
    assert due_instant(always_open("Europe/Dublin"), utc(2025, 3, 30, 0), 5 * HOUR) == utc(2025, 3, 30, 5)


def test_refusals():
    naive = datetime(2025, 1, 1, 12)
    with pytest.raises(ValueError, match="naive"):
        business_seconds(office_hours(), naive, utc(2025, 1, 2))
    with pytest.raises(ValueError, match="naive"):
        due_instant(office_hours(), naive, 60)
    with pytest.raises(ValueError, match="negative"):
        due_instant(office_hours(), utc(2025, 1, 1), -1)
    with pytest.raises(ValueError, match="no opening"):
        due_instant(CalendarSpec(time_zone=DUBLIN), utc(2025, 1, 1), 60)
    all_holidays = frozenset(date(2025, 1, 1) + timedelta(days=n) for n in range(4000))
    with pytest.raises(ValueError, match="ten years"):
        due_instant(every_day((0, 1440), time_zone=DUBLIN, holidays=all_holidays), utc(2025, 1, 2), 60)
    # Open on 1 January only: reached after 5 years, however sparse.
    new_year = frozenset(date(2025, 1, 1) + timedelta(days=n) for n in range(4000)) - {
        date(year, 1, 1) for year in range(2026, 2031)
    }
    sparse = every_day((0, 1), time_zone="UTC", holidays=new_year)
    assert due_instant(sparse, utc(2025, 1, 2), 300) == utc(2030, 1, 1, 0, 1)
    with pytest.raises(ValueError, match="time zone"):
        CalendarSpec(time_zone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="window"):
        CalendarSpec(time_zone=DUBLIN, windows={0: ((600, 600),)})
    with pytest.raises(ValueError, match="weekday"):
        CalendarSpec(time_zone=DUBLIN, windows={7: ((0, 60),)})


def test_start_after_end_is_zero():
    assert business_seconds(always_open(), utc(2025, 1, 2), utc(2025, 1, 1)) == 0
    assert business_seconds(always_open(), utc(2025, 1, 1), utc(2025, 1, 1)) == 0
