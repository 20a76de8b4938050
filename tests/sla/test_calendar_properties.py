"""Properties of business time, over random instants around DST changes in several zones."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from servicedesk.sla.calendars import (
    CalendarSpec,
    always_open,
    business_microseconds,
    business_seconds,
    calendar_seconds,
    due_instant,
)

# Irish negative DST, US rules, a half-hour shift, transitions at midnight, a skipped day (Apia 2011).
ZONES = ["Europe/Dublin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Pacific/Apia", "UTC"]
# Instants near the DST changes of 2011 and 2025 plus anywhere in between.
CHANGES = [
    datetime(2025, 3, 9, 7, tzinfo=UTC),
    datetime(2025, 3, 30, 1, tzinfo=UTC),
    datetime(2025, 10, 26, 1, tzinfo=UTC),
    datetime(2025, 11, 2, 6, tzinfo=UTC),
    datetime(2025, 4, 5, 15, tzinfo=UTC),
    datetime(2025, 9, 7, 4, tzinfo=UTC),
    datetime(2011, 12, 30, 10, tzinfo=UTC),
]

near_change = st.builds(
    lambda base, offset: base + timedelta(microseconds=offset),
    st.sampled_from(CHANGES),
    st.integers(min_value=-3 * 86_400_000_000, max_value=3 * 86_400_000_000),
)
anywhere = st.datetimes(
    min_value=datetime(2010, 1, 1),
    max_value=datetime(2030, 1, 1),
    timezones=st.just(UTC),
)
instants = st.one_of(near_change, anywhere)

window = st.tuples(st.integers(0, 1439), st.integers(1, 1440)).filter(lambda w: w[0] < w[1])
specs = st.builds(
    lambda time_zone, windows, holidays: CalendarSpec(time_zone=time_zone, windows=windows, holidays=holidays),
    st.sampled_from(ZONES),
    st.dictionaries(st.integers(0, 6), st.lists(window, min_size=1, max_size=3).map(tuple), min_size=1),
    st.frozensets(st.dates(min_value=date(2011, 12, 20), max_value=date(2012, 1, 10)), max_size=3)
    | st.frozensets(st.dates(min_value=date(2025, 3, 1), max_value=date(2025, 11, 10)), max_size=5),
)

TOLERANCE = 1e-6


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), instants, instants)
def test_always_open_equals_calendar_time(time_zone, a, b):
    start, end = min(a, b), max(a, b)
    assert business_microseconds(always_open(time_zone), start, end) == (end - start) // timedelta(microseconds=1)
    assert business_seconds(always_open(time_zone), start, end) == calendar_seconds(start, end)


@settings(max_examples=300, deadline=None)
@given(specs, instants, instants, instants)
def test_durations_add_up_over_split_intervals(spec, a, b, c):
    start, middle, end = sorted((a, b, c))
    whole = business_microseconds(spec, start, end)
    assert business_microseconds(spec, start, middle) + business_microseconds(spec, middle, end) == whole
    assert 0 <= whole <= (end - start) // timedelta(microseconds=1)


@settings(max_examples=300, deadline=None)
@given(specs, instants, st.floats(min_value=0, max_value=40 * 86_400, allow_nan=False))
def test_due_instant_is_where_the_target_is_reached(spec, start, target):
    due = due_instant(spec, start, target)
    assert due >= start
    assert abs(business_seconds(spec, start, due) - target) <= TOLERANCE
    if due > start:
        assert business_seconds(spec, start, due - timedelta(microseconds=1)) < target
