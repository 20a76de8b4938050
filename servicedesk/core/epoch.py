"""Instants as integer microseconds since 1970-01-01 00:00 UTC.

Business time, SLA due instants and every report figure are computed on these
integers, never on floating-point seconds, so Python and both databases agree
to the microsecond (``reports/sql.py`` has the same conversion in SQL). The
one place these helpers live; import them, do not write another.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND = 1_000_000
_NAIVE_EPOCH = EPOCH.replace(tzinfo=None)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(instant: datetime) -> int:
    """Microseconds since 1970 UTC of an aware instant; ValueError for a naive one."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; an aware datetime is required")
    return (instant - EPOCH) // _MICROSECOND


def naive_utc_epoch_us(utc_wall_time: datetime) -> int:
    """Microseconds since 1970 of a naive datetime that is a UTC wall-clock time (calendar arithmetic)."""
    if utc_wall_time.tzinfo is not None:
        raise ValueError(f"{utc_wall_time!r} is aware; a naive UTC wall-clock time is required")
    return (utc_wall_time - _NAIVE_EPOCH) // _MICROSECOND


def from_epoch_us(us: int) -> datetime:
    """The aware UTC instant ``us`` microseconds after 1970."""
    return EPOCH + timedelta(microseconds=us)
