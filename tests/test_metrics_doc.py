"""The metric definitions live in docs/metrics.md, every citation of them points at a section that exists, and its worked numbers are the code's.

Code, templates, docs and tests cite a definition by its section, ``docs/metrics.md#first-reply``
(several sections as ``docs/metrics.md#reopen, #fcr and #csat``); the
dashboard links each figure to the entry of the same name on its definitions
page. A renamed or missing section fails here, and so does a reference to a
definitions file outside the repository.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reports import views
from reports.erlang import agents_needed, service_level
from servicedesk.sla.calendars import CalendarSpec, business_seconds, calendar_seconds, due_instant

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"
SKIPPED_DIRS = {".git", ".venv", "var", "node_modules", "__pycache__", "out", "staticfiles"}
SUFFIXES = {".py", ".html", ".md", ".txt", ".js", ".toml", ".yml", ".yaml", ".cfg", ".sh", ".po"}
# A citation and the anchors listed after it: "docs/metrics.md#reopen, #fcr and #csat".
CITATION = re.compile(r"metrics\.md#([a-z0-9-]+)((?:\s*(?:,|and|to)\s*#[a-z0-9-]+)*)")
MORE = re.compile(r"#([a-z0-9-]+)")
TEMPLATE_LINK = re.compile(r"\{% url 'reports:definitions' %\}#([a-z0-9-]+)")
DEFINITION_ID = re.compile(r'<dt id="([a-z0-9-]+)"')
# The definitions as a file of their own beside the code (upper case, or under shared/), written so
# that this line does not match itself.
OUTSIDE = re.compile("METRICS" r"\.md|shared/(?:METRICS|metrics)")


def _project_files() -> list[Path]:
    found = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_DIRS]
        found += [Path(folder) / name for name in names if Path(name).suffix in SUFFIXES]
    return found


def _anchors() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))


def _citations() -> dict[str, set[str]]:
    """Anchor -> the files (relative paths) that cite it."""
    cited: dict[str, set[str]] = {}
    for path in _project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            for anchor in [match.group(1), *MORE.findall(match.group(2))]:
                cited.setdefault(anchor, set()).add(str(path.relative_to(ROOT)))
    return cited


def test_the_document_has_the_sections_the_reports_are_built_on():
    anchors = _anchors()
    for anchor in (
        "time",
        "business-time",
        "statuses",
        "replies",
        "in-scope",
        "first-reply",
        "requester-wait",
        "resolution",
        "reopen",
        "sla",
        "sla-outcomes",
        "one-touch",
        "fcr",
        "repeat-contact",
        "csat",
        "live",
        "service-level",
        "occupancy",
        "cost-per-contact",
        "staffing",
        "erlang-c",
        "report-json",
        "worked-example",
    ):
        assert anchor in anchors, anchor


def test_every_cited_anchor_exists():
    cited = _citations()
    # The code cites the definitions in many places; a scan that found none would prove nothing.
    assert len(cited) >= 15
    assert sum(len(files) for files in cited.values()) >= 40
    missing = {anchor: sorted(files) for anchor, files in cited.items() if anchor not in _anchors()}
    assert missing == {}


def test_no_file_cites_a_definitions_file_outside_the_repository():
    offenders = []
    for path in _project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if OUTSIDE.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_documents_own_links_resolve():
    text = DOC.read_text(encoding="utf-8")
    local = set(re.findall(r"\]\(#([a-z0-9-]+)\)", text))
    assert local
    assert local - _anchors() == set()


def test_every_figure_on_screen_links_to_an_entry_that_the_document_defines():
    templates = ROOT / "reports" / "templates" / "reports"
    page = (templates / "definitions.html").read_text(encoding="utf-8")
    entries = set(DEFINITION_ID.findall(page))
    linked = set()
    for template in templates.rglob("*.html"):
        linked |= set(TEMPLATE_LINK.findall(template.read_text(encoding="utf-8")))
    linked |= {anchor for anchor, _label, _path, _kind in views.TILES}
    one_day = views.Choice(calendar=None, start=date(2026, 1, 12), end=date(2026, 1, 13), preset="custom")  # type: ignore[arg-type]
    charts = {chart["anchor"] for chart in views._trends(one_day, [])}
    assert charts == {"volume", "first-reply", "sla", "fcr", "backlog"}
    linked |= charts
    assert {"in-scope", "first-reply", "sla", "fcr", "csat", "staffing", "abandonment"} <= linked
    assert linked - entries == set()
    # The definitions page and this document name their entries alike.
    assert entries - _anchors() == set()


# The worked example's numbers, recomputed by the code that computes them in the product.

DUBLIN_OFFICE = CalendarSpec("Europe/Dublin", {weekday: ((9 * 60, 17 * 60),) for weekday in range(5)})


def _at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=ZoneInfo("Europe/Dublin"))


@pytest.mark.parametrize(
    ("start", "end", "calendar_minutes", "business_minutes"),
    [
        ((12, 16, 30), (13, 9, 20), 1010, 50),  # FRT; also the time in "new"
        ((13, 9, 20), (13, 11, 0), 100, 100),  # pending
        ((13, 11, 0), (13, 11, 30), 30, 30),  # open, before the first solve
        ((14, 10, 0), (14, 10, 45), 45, 45),  # open, after the reopen
        ((12, 16, 30), (13, 11, 30), 1140, 180),  # first resolution
        ((12, 16, 30), (14, 10, 45), 2535, 615),  # full resolution
        ((13, 11, 30), (14, 10, 0), 1350, 390),  # solved, until the reopen: not requester wait
    ],
)
def test_the_worked_examples_durations(start, end, calendar_minutes, business_minutes):
    assert calendar_seconds(_at(*start), _at(*end)) == calendar_minutes * 60
    assert business_seconds(DUBLIN_OFFICE, _at(*start), _at(*end)) == business_minutes * 60


def test_the_worked_examples_first_reply_due_instant():
    assert due_instant(DUBLIN_OFFICE, _at(12, 16, 30), 3600) == _at(13, 9, 30)


def test_the_erlang_c_table_of_the_document():
    text = DOC.read_text(encoding="utf-8")
    small = agents_needed(arrivals_per_hour=24, aht_seconds=300, target_sl=0.8, threshold_seconds=20, shrinkage=0.3)
    assert (small.load, small.agents, small.scheduled) == (2.0, 4, 6)
    assert (round(small.probability_wait, 4), round(small.service_level * 100, 2)) == (0.1739, 84.78)
    assert (round(small.asa_seconds, 2), small.occupancy) == (26.09, 0.5)
    assert round(service_level(3, 2.0, 300, 20) * 100, 2) == 58.42
    large = agents_needed(arrivals_per_hour=720, aht_seconds=240, target_sl=0.8, threshold_seconds=15)
    assert (large.load, large.agents, large.scheduled) == (48.0, 55, 55)
    assert (round(large.probability_wait, 4), round(large.service_level * 100, 2)) == (0.2387, 84.59)
    assert (round(large.asa_seconds, 2), round(large.occupancy * 100, 2)) == (8.18, 87.27)
    assert round(service_level(54, 48.0, 240, 15) * 100, 2) == 79.29
    capped = agents_needed(
        arrivals_per_hour=24, aht_seconds=300, target_sl=0.8, threshold_seconds=20, max_occupancy=0.4
    )
    assert (capped.agents, round(capped.service_level * 100, 2)) == (5, 95.11)
    for shown in ("84.78 %", "84.59 %", "58.42 %", "79.29 %", "95.11 %", "26.09 s", "8.18 s", "87.27 %"):
        assert shown in text, shown
