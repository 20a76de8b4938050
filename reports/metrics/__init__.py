"""Ticket metrics by database aggregation (docs/metrics.md#ticket-metrics and #sla).

``facts`` writes one row per ticket of the cohort; ``tickets`` and ``sla``
aggregate them for the whole cohort and per breakdown. The helpers here turn
the exact integers the database returns into the report's numbers: rates as
fractions with four decimals, minutes with two, ``None`` without data.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_MINUTE_US = 60_000_000


def rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded half up to four decimals; None when the denominator is 0."""
    if not denominator:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def minutes(microseconds: int | Decimal, count: int = 1) -> float | None:
    """(microseconds / count) in minutes rounded half up to two decimals; None when count is 0."""
    if not count:
        return None
    value = Decimal(microseconds) / Decimal(count) / _MINUTE_US
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def group_key(value: object) -> str:
    """A breakdown key as text (NULL as "")."""
    return "" if value is None else str(value)
