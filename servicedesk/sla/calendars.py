"""Business time: how long an interval lasts in opening hours, and when a target is reached.

A calendar is an IANA time zone, weekly opening windows in local wall-clock
time and holiday dates (a holiday closes the whole local day). The rules are
those of docs/metrics.md#time:

* every window edge of every working local date becomes a UTC instant, and
  business time is the real elapsed time of the overlap with the interval, so
  a 24x7 calendar yields exactly the calendar duration across DST changes;
* local times are never subtracted and ``tzinfo.dst()`` is never consulted
  (Irish winter time is a negative DST offset, only ``utcoffset()`` is sound).

Window edges that the clock does not show as a single instant:

* a repeated local time (clocks go back) is its first occurrence, zoneinfo's
  ``fold=0``;
* a skipped local time (clocks go forward) is the instant the clock jumps
  over it, so the local-to-UTC mapping stays monotonic and two windows never
  count the same instant twice. A window 01:00-02:30 on a night when 02:00
  becomes 03:00 ends at the jump: one real hour.

All arithmetic is in integer microseconds of UTC; results are seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servicedesk.core.epoch import US_PER_SECOND, epoch_us, from_epoch_us, naive_utc_epoch_us

if TYPE_CHECKING:
    from servicedesk.sla.models import BusinessCalendar

MINUTES_PER_DAY = 24 * 60
# A calendar without any opening for this long counts as never open again.
DUE_SEARCH_DAYS = 3653
DUE_SEARCH_CHUNK_DAYS = 100


Window = tuple[int, int]


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone named ``name``; ValueError when it is not an IANA zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _merge(windows: Iterable[Window]) -> tuple[Window, ...]:
    merged: list[list[int]] = []
    for start, end in sorted(windows):
        if not 0 <= start < end <= MINUTES_PER_DAY:
            raise ValueError(f"window {start}-{end} is not within 0 <= start < end <= {MINUTES_PER_DAY}")
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


@dataclass(frozen=True)
class CalendarSpec:
    """A business calendar as a plain value.

    ``windows`` maps a weekday (0 = Monday .. 6 = Sunday) to opening windows
    in minutes since local midnight, ``(start, end)`` with
    ``0 <= start < end <= 1440``; 1440 is 24:00, the next day's midnight.
    Overlapping or touching windows of a day are merged; a weekday without
    windows is closed. ``holidays`` are local dates closed all day.
    """

    time_zone: str
    windows: Mapping[int, tuple[Window, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        zone(self.time_zone)
        normalised: dict[int, tuple[Window, ...]] = {}
        for weekday, day_windows in self.windows.items():
            if weekday not in range(7):
                raise ValueError(f"weekday {weekday} is not 0 (Monday) .. 6 (Sunday)")
            merged = _merge(day_windows)
            if merged:
                normalised[weekday] = merged
        object.__setattr__(self, "windows", normalised)
        object.__setattr__(self, "holidays", frozenset(self.holidays))

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.time_zone)

    def is_ever_open(self) -> bool:
        return bool(self.windows)


def always_open(time_zone: str = "UTC") -> CalendarSpec:
    """A 24x7 calendar without holidays: business time equals calendar time."""
    return CalendarSpec(time_zone=time_zone, windows={day: ((0, MINUTES_PER_DAY),) for day in range(7)})


def calendar_spec(calendar: BusinessCalendar) -> CalendarSpec:
    """The value of a stored calendar, its windows and holidays (two queries)."""
    windows: dict[int, list[Window]] = {}
    for weekday, start, end in calendar.windows.values_list("weekday", "start_minute", "end_minute"):
        windows.setdefault(weekday, []).append((start, end))
    return CalendarSpec(
        time_zone=calendar.time_zone,
        windows={day: tuple(day_windows) for day, day_windows in windows.items()},
        holidays=frozenset(calendar.holidays.values_list("date", flat=True)),
    )


@functools.lru_cache(maxsize=65536)
def local_to_epoch_us(tz: ZoneInfo, local: datetime) -> int:
    """The UTC instant, in microseconds since the epoch, of a naive local time in ``tz``.

    By the edge rules of the module docstring (a skipped local time is the
    instant the clock jumps; a repeated one is its first occurrence). Public:
    the reports' periods start at local midnights computed this way.
    """
    before = local.replace(tzinfo=tz, fold=0).utcoffset()
    after = local.replace(tzinfo=tz, fold=1).utcoffset()
    assert before is not None and after is not None
    earliest = local - before
    if before == after or after < before:
        # A single instant, or a repeated local time whose first occurrence is fold=0.
        return naive_utc_epoch_us(earliest)
    # A skipped local time: the clock jumps at a whole second in (local - after, local - before].
    low = naive_utc_epoch_us(local - after) // US_PER_SECOND
    high = naive_utc_epoch_us(earliest) // US_PER_SECOND
    while high - low > 1:
        middle = (low + high) // 2
        if from_epoch_us(middle * US_PER_SECOND).astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high * US_PER_SECOND


def window_intervals(spec: CalendarSpec, first: date, last: date) -> Iterator[tuple[int, int]]:
    """UTC intervals [a, b) in microseconds of every opening window of local dates first..last, in order.

    Holidays have none; a window that a clock change empties is left out.
    Public: the reports store these intervals to measure business time in SQL.
    """
    tz = spec.tz
    day = first
    while day <= last:
        day_windows = spec.windows.get(day.weekday())
        if day_windows and day not in spec.holidays:
            midnight = datetime.combine(day, time())
            for start, end in day_windows:
                a = local_to_epoch_us(tz, midnight + timedelta(minutes=start))
                b = local_to_epoch_us(tz, midnight + timedelta(minutes=end))
                if b > a:
                    yield a, b
        day += timedelta(days=1)


def _local_date(spec: CalendarSpec, us: int) -> date:
    return from_epoch_us(us).astimezone(spec.tz).date()


def business_microseconds(spec: CalendarSpec, start: datetime, end: datetime) -> int:
    """Business time of [start, end) in whole microseconds; 0 when start >= end."""
    s, e = epoch_us(start), epoch_us(end)
    if s >= e or not spec.is_ever_open():
        return 0
    # A margin of two days covers any local date whose windows may reach into the interval.
    first = _local_date(spec, s) - timedelta(days=2)
    last = _local_date(spec, e) + timedelta(days=2)
    total = 0
    for a, b in window_intervals(spec, first, last):
        if b <= s:
            continue
        if a >= e:
            break
        total += min(b, e) - max(a, s)
    return total


def business_seconds(spec: CalendarSpec, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) inside the calendar's open windows (real elapsed time).

    ``start`` and ``end`` must be aware (ValueError otherwise); start >= end gives 0.
    """
    return business_microseconds(spec, start, end) / 1_000_000


def calendar_seconds(start: datetime, end: datetime) -> float:
    """Elapsed seconds from start to end on UTC instants (negative when end is earlier)."""
    return (epoch_us(end) - epoch_us(start)) / 1_000_000


def due_instant(spec: CalendarSpec, start: datetime, seconds: float) -> datetime:
    """The first instant at which the business time since ``start`` reaches ``seconds``.

    The target is rounded to whole microseconds. A target of 0 is reached at
    ``start`` itself, open or closed. A target reached exactly at a window's
    end is due at that end, not at the next opening. Raises ValueError for a
    naive ``start``, a negative target, or a calendar that stays closed for
    ten years while the target is not yet reached. The result is in UTC.
    """
    s = epoch_us(start)
    remaining = round(seconds * 1_000_000)
    if remaining < 0:
        raise ValueError(f"a target cannot be negative: {seconds}")
    if remaining == 0:
        return from_epoch_us(s)
    if not spec.is_ever_open():
        raise ValueError(f"calendar in {spec.time_zone} has no opening window")
    chunk = _local_date(spec, s) - timedelta(days=2)
    closed_days = 0
    while closed_days < DUE_SEARCH_DAYS:
        chunk_end = chunk + timedelta(days=DUE_SEARCH_CHUNK_DAYS)
        opened = False
        for a, b in window_intervals(spec, chunk, chunk_end - timedelta(days=1)):
            if b <= s:
                continue
            opened = True
            begin = max(a, s)
            if remaining <= b - begin:
                return from_epoch_us(begin + remaining)
            remaining -= b - begin
        closed_days = 0 if opened else closed_days + DUE_SEARCH_CHUNK_DAYS
        chunk = chunk_end
    raise ValueError(f"calendar in {spec.time_zone} has no opening for ten years after {start.isoformat()}")
