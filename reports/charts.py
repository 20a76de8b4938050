"""Trend charts drawn on the server as inline SVG: no script, no external library.

A chart is a few lines over the days of a period; a day without data breaks
the line. Colours come from the stylesheet by series index (``series-N``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from reports.formatting import format_rate, rounded

WIDTH = 640
HEIGHT = 180
PAD_LEFT = 48
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 28


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | int | None]


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 < value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _n(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float, percent: bool) -> str:
    if percent:
        return format_rate(value)
    return f"{float(rounded(value, 2)):g}"


def line_chart(*, title: str, days: Sequence[date], series: Sequence[Series], percent: bool = False) -> SafeString:
    """An SVG line chart of ``series`` over ``days`` (one value per day, None for no data)."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    known = [float(v) for s in series for v in s.values if v is not None]
    top = 1.0 if percent else _nice_max(max(known, default=0.0))
    step = plot_w / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return PAD_LEFT + index * step if len(days) > 1 else PAD_LEFT + plot_w / 2

    def y(value: float) -> float:
        return PAD_TOP + plot_h - (value / top) * plot_h

    parts: list[str] = [
        format_html(
            '<svg class="report-chart" viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}" '
            'xmlns="http://www.w3.org/2000/svg"><title>{}</title>',
            WIDTH,
            HEIGHT,
            title,
            title,
        )
    ]
    for fraction in (0, 0.5, 1):
        gy = y(top * fraction)
        parts.append(
            format_html(
                '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                PAD_LEFT,
                _n(gy),
                WIDTH - PAD_RIGHT,
                _n(gy),
                PAD_LEFT - 4,
                _n(gy + 4),
                _label(top * fraction, percent),
            )
        )
    if days:
        parts.append(
            format_html('<text class="axis" x="{}" y="{}">{}</text>', PAD_LEFT, HEIGHT - 8, days[0].isoformat())
        )
        if len(days) > 1:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                    WIDTH - PAD_RIGHT,
                    HEIGHT - 8,
                    days[-1].isoformat(),
                )
            )
    for number, one in enumerate(series):
        segments: list[list[str]] = [[]]
        for index, value in enumerate(one.values):
            if value is None:
                segments.append([])
                continue
            segments[-1].append(f"{x(index):.1f},{y(float(value)):.1f}")
            parts.append(
                format_html(
                    '<circle class="series-{}" cx="{}" cy="{}" r="2.5"><title>{} {}: {}</title></circle>',
                    number,
                    _n(x(index)),
                    _n(y(float(value))),
                    one.label,
                    days[index].isoformat(),
                    _label(float(value), percent),
                )
            )
        for points in segments:
            if len(points) > 1:
                parts.append(format_html('<polyline class="series-{}" points="{}"/>', number, " ".join(points)))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every piece above is escaped by format_html


def legend(series: Sequence[Series]) -> SafeString:
    """The series' names with their colours, as HTML."""
    items = [
        format_html('<li><span class="swatch series-{}"></span>{}</li>', number, one.label)
        for number, one in enumerate(series)
    ]
    return mark_safe('<ul class="report-legend">' + "".join(items) + "</ul>") if items else mark_safe("")  # noqa: S308


__all__ = ["Series", "legend", "line_chart"]
