"""Formatting of report figures in templates; the rules live in ``reports.formatting``."""

from __future__ import annotations

from typing import Any

from django import template

from reports.formatting import format_figure, format_minutes, format_rate

register = template.Library()


@register.filter
def rate(value: Any) -> str:
    """0.5555… -> "55.56 %" (rounded, not cut off)."""
    return format_rate(value)


@register.filter
def minutes(value: Any) -> str:
    return format_minutes(value)


@register.filter
def figure(value: Any, kind: str = "count") -> str:
    """A headline value by kind: rate, minutes or count."""
    return format_figure(value, kind)


@register.filter
def lookup(mapping: Any, key: str) -> Any:
    """``mapping[key]`` for dicts in templates; None when absent."""
    return mapping.get(key) if isinstance(mapping, dict) else None
