"""Figures people read are rounded, never cut off: 5/9 is 55.56 %, on every surface; the JSON keeps fractions."""

from __future__ import annotations

import csv
import io

import pytest
from django.template import Context, Template
from django.utils import translation
from openpyxl import load_workbook

from reports.charts import Series, line_chart
from reports.exports import report_csv, report_xlsx
from reports.formatting import export_value, format_figure, format_minutes, format_rate

FIVE_NINTHS = 5 / 9


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (FIVE_NINTHS, "55.56 %"),
        (2 / 3, "66.67 %"),
        (1 / 3, "33.33 %"),
        (0.12345, "12.35 %"),
        (1, "100.00 %"),
        (0, "0.00 %"),
        (None, "\u2014"),
    ],
)
def test_a_rate_is_rounded_half_up_to_two_decimals_of_the_percentage(value, shown):
    assert format_rate(value) == shown
    with translation.override("zh-hans"):
        assert format_rate(value) == shown


def test_minutes_are_rounded_too():
    assert format_minutes(61.995) == "62.00"
    assert format_minutes(0.004) == "0.00"
    assert format_figure(62, "minutes") == "62.00"
    assert format_figure(3, "count") == "3"


def test_the_template_filters_round():
    template = Template('{% load reports_tags %}{{ v|rate }}|{{ v|figure:"rate" }}|{{ m|minutes }}')
    assert template.render(Context({"v": FIVE_NINTHS, "m": 12.345})) == "55.56 %|55.56 %|12.35"


def test_exports_write_rates_rounded_to_four_decimals_and_keep_counts():
    figures = {
        "tickets": {"in_scope": 9},
        "fcr": {"rate": FIVE_NINTHS},
        "live": {"chat": {"abandonment_rate": 2 / 3, "asa_seconds": 12.3456}},
        "by_queue": {"support": {"fcr": {"rate": FIVE_NINTHS}}},
    }
    rows = list(csv.reader(io.StringIO(report_csv(figures))))
    assert ["fcr.rate", "0.5556"] in rows
    assert ["live.chat.abandonment_rate", "0.6667"] in rows
    assert ["live.chat.asa_seconds", "12.3456"] in rows
    assert ["support", "0.5556"] in rows
    book = load_workbook(io.BytesIO(report_xlsx(figures)))
    cells = {row[0].value: row[1] for row in book["figures"].iter_rows()}
    assert (cells["fcr.rate"].value, cells["fcr.rate"].number_format) == (0.5556, "0.00%")
    assert cells["tickets.in_scope"].number_format == "General"
    queue_row = list(book["by_queue"].iter_rows())[1]
    assert (queue_row[1].value, queue_row[1].number_format) == (0.5556, "0.00%")
    assert export_value("tickets.in_scope", 9) == 9


def test_chart_points_show_the_rounded_rate():
    from datetime import date

    svg = line_chart(title="FCR", days=[date(2026, 12, 1)], series=[Series("FCR", [FIVE_NINTHS])], percent=True)
    assert "2026-12-01: 55.56 %</title>" in svg
