"""How report figures are shown to people: one function per kind, used by pages, mails, charts and exports.

The report JSON keeps raw fractions and minutes (docs/metrics.md#report-json); only what
a person reads is rounded, half away from zero, so 5/9 shows as 55.56 %, not
55.55 % (Django's ``number_format`` cuts digits off instead of rounding).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils.formats import number_format

NO_DATA = "\u2014"
# Rates in spreadsheets and CSV keep four decimals of the fraction: two of the percentage.
RATE_DECIMALS = 4


def rounded(value: Any, places: int) -> Decimal:
    """``value`` rounded half away from zero to ``places`` decimals."""
    return Decimal(str(float(value))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _empty(value: Any) -> bool:
    return value is None or value == ""


def format_rate(value: Any, *, localize: bool = True) -> str:
    """A fraction as a percentage with two decimals: 5/9 -> "55.56 %"; a dash without data."""
    if _empty(value):
        return NO_DATA
    percent = rounded(Decimal(str(float(value))) * 100, 2)
    return f"{number_format(percent, 2) if localize else percent} %"


def format_number(value: Any, places: int = 2) -> str:
    """A number with ``places`` decimals, rounded: 61.995 -> "62.00"; a dash without data."""
    if _empty(value):
        return NO_DATA
    return number_format(rounded(value, places), places)


def format_minutes(value: Any) -> str:
    """Minutes with two decimals, rounded: 61.995 -> "62.00"; a dash without data."""
    return format_number(value, 2)


def format_count(value: Any) -> str:
    return NO_DATA if _empty(value) else str(value)


def format_figure(value: Any, kind: str = "count") -> str:
    """A headline value by kind: ``rate``, ``minutes``, ``seconds`` or ``count``."""
    if kind == "rate":
        return format_rate(value)
    if kind in ("minutes", "seconds"):
        return format_number(value, 1 if kind == "seconds" else 2)
    return format_count(value)


def is_rate_path(path: str) -> bool:
    """Whether a figure path (``sla.first_reply.rate``, ``live.chat.abandonment_rate``) names a fraction."""
    last = path.rsplit(".", 1)[-1]
    return last == "rate" or last.endswith("_rate") or path.startswith("occupancy.")


def export_value(path: str, value: Any) -> Any:
    """A figure as written to CSV and XLSX: rates rounded to four decimals of the fraction, the rest unchanged."""
    if is_rate_path(path) and isinstance(value, float | int) and not isinstance(value, bool):
        return float(rounded(value, RATE_DECIMALS))
    return value
