"""Formatting of report figures: rates as percentages, minutes with two decimals, a dash without data."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.formats import number_format

register = template.Library()

NO_DATA = "\u2014"


@register.filter
def rate(value: Any) -> str:
    """0.7273 -> "72.73 %"."""
    if value is None or value == "":
        return NO_DATA
    return f"{number_format(float(value) * 100, 2)} %"


@register.filter
def minutes(value: Any) -> str:
    if value is None or value == "":
        return NO_DATA
    return number_format(float(value), 2)


@register.filter
def figure(value: Any, kind: str = "count") -> str:
    """A headline value by kind: rate, minutes or count."""
    if kind == "rate":
        return rate(value)
    if kind == "minutes":
        return minutes(value)
    return NO_DATA if value is None or value == "" else str(value)


@register.filter
def lookup(mapping: Any, key: str) -> Any:
    """``mapping[key]`` for dicts in templates; None when absent."""
    return mapping.get(key) if isinstance(mapping, dict) else None
