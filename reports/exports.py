"""A report as CSV and XLSX: one row per figure path, then one table per breakdown.

The figure path names a value inside the report object (docs/metrics.md#report-json), e.g. ``sla.first_reply.rate``; a figure without data is empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from django.utils.translation import gettext as _

from reports.formatting import export_value, is_rate_path

PERCENT_FORMAT = "0.00%"
# Names the keys of a breakdown for people: (breakdown, keys) -> {key: label with .text} (reports.labels).
Labeller = Callable[[str, list[str]], dict[str, Any]]
BREAKDOWNS = ("by_channel", "by_queue", "by_agent", "by_priority", "by_tier")
# Spreadsheet programs run a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def figure_rows(
    figures: dict[str, Any], prefix: str = "", *, skip: tuple[str, ...] = BREAKDOWNS
) -> Iterator[tuple[str, Any]]:
    """(path, value) for every leaf of ``figures`` in its key order; lists are kept whole."""
    for key, value in figures.items():
        if not prefix and key in skip:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from figure_rows(value, f"{path}.", skip=skip)
        else:
            yield path, value


def breakdown_table(
    figures: dict[str, Any], name: str, labels: Labeller | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Columns (the key, its label when ``labels`` names the keys, then every figure path seen) and one row
    per key of breakdown ``name``."""
    groups = figures.get(name) or {}
    columns: list[str] = []
    flat: list[tuple[str, dict[str, Any]]] = []
    for key, inner in groups.items():
        values = dict(figure_rows(inner if isinstance(inner, dict) else {"value": inner}, skip=()))
        for path in values:
            if path not in columns:
                columns.append(path)
        flat.append((str(key), values))
    if labels is None:
        rows = [[key, *(values.get(path) for path in columns)] for key, values in flat]
        return [_("key"), *columns], rows
    names = labels(name, [key for key, _values in flat])
    rows = [[key, names[key].text, *(values.get(path) for path in columns)] for key, values in flat]
    return [_("key"), _("label"), *columns], rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _row_cells(columns: list[str], row: list[Any]) -> list[Any]:
    """A breakdown row as written: the key, then each figure with rates rounded."""
    return [
        _cell(row[0]),
        *(_cell(export_value(path, value)) for path, value in zip(columns[1:], row[1:], strict=True)),
    ]


def report_csv(figures: dict[str, Any], *, labels: Labeller | None = None) -> str:
    """The report as CSV text: a figure/value section, then one section per breakdown.

    Rates are fractions rounded to four decimals (0.5556 for 5/9), so a
    spreadsheet shows the same percentage as the dashboard. With ``labels``
    each breakdown row also carries the key's name (queue name, agent name,
    channel label) after the key.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("figure"), _("value")])
    for path, value in figure_rows(figures):
        writer.writerow([path, _cell(export_value(path, value))])
    for name in BREAKDOWNS:
        if name not in figures:
            continue
        columns, rows = breakdown_table(figures, name, labels)
        writer.writerow([])
        writer.writerow([name])
        writer.writerow(columns)
        for row in rows:
            writer.writerow(_row_cells(columns, row))
    return out.getvalue()


def report_xlsx(figures: dict[str, Any], *, labels: Labeller | None = None) -> bytes:
    """The report as an XLSX workbook: sheet "figures", then one sheet per breakdown.

    Rate cells hold the fraction rounded to four decimals, formatted as a
    percentage with two decimals (55.56 %).
    """
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "figures"
    sheet.append([_("figure"), _("value")])
    for path, value in figure_rows(figures):
        sheet.append([path, _cell(export_value(path, value))])
        if is_rate_path(path):
            sheet.cell(row=sheet.max_row, column=2).number_format = PERCENT_FORMAT
    for name in BREAKDOWNS:
        if name not in figures:
            continue
        columns, rows = breakdown_table(figures, name, labels)
        extra = book.create_sheet(title=name)
        extra.append(columns)
        for row in rows:
            extra.append(_row_cells(columns, row))
            for number, path in enumerate(columns, start=1):
                if is_rate_path(path):
                    extra.cell(row=extra.max_row, column=number).number_format = PERCENT_FORMAT
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
