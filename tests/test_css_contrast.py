"""Every badge is readable: its text against its background has a WCAG 2 contrast of at least 4.5:1.

The colours of badges (ticket status, priority, SLA state, tags, tiers) are
custom properties in pairs, ``--badge-<name>-bg`` and ``--badge-<name>-fg``,
in ``servicedesk/static/css/app.css``. This test reads them, computes the
contrast of each pair, and checks that every badge rule in the style sheets
takes both colours from one such pair, so no literal colour slips past.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_CSS = ROOT / "servicedesk" / "static" / "css" / "app.css"
STYLE_SHEETS = [APP_CSS, ROOT / "servicedesk" / "desk" / "static" / "desk" / "sla.css"]
# Selectors that draw a badge: a coloured pill with text.
BADGE_SELECTOR = re.compile(r"\.(badge|status-|priority-|sla-(?!panel|none|cell))")


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rgb or #rrggbb colour."""
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def badge_pairs() -> dict[str, tuple[str, str]]:
    text = APP_CSS.read_text()
    colours = dict(re.findall(r"--(badge-[a-z]+-(?:bg|fg))\s*:\s*(#[0-9a-fA-F]{3,6})\s*;", text))
    names = sorted({key[len("badge-") : -len("-bg")] for key in colours if key.endswith("-bg")})
    return {name: (colours[f"badge-{name}-bg"], colours[f"badge-{name}-fg"]) for name in names}


def badge_rules() -> list[tuple[str, str]]:
    """(selector, declarations) of every rule that colours a badge, in every style sheet."""
    rules = []
    for sheet in STYLE_SHEETS:
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text(), flags=re.S)
        for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
            selector = selector.strip()
            if BADGE_SELECTOR.search(selector) and re.search(r"(^|;)\s*(background|color)\s*:", body):
                rules.append((selector, body))
    return rules


def test_the_contrast_formula_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    # The open badge before this fix: orange on cream.
    assert contrast("#e65100", "#fff3e0") == pytest.approx(3.46, abs=0.01)


def test_every_badge_pair_has_a_contrast_of_at_least_4_5():
    pairs = badge_pairs()
    assert {"plain", "new", "open", "pending", "hold", "done", "urgent", "high", "tag"} <= set(pairs)
    low = {name: round(contrast(bg, fg), 2) for name, (bg, fg) in pairs.items() if contrast(bg, fg) < 4.5}
    assert low == {}


def test_every_badge_rule_takes_its_colours_from_one_pair():
    rules = badge_rules()
    assert len(rules) >= 10
    pairs = badge_pairs()
    for selector, body in rules:
        background = re.search(r"background\s*:\s*([^;]+)", body)
        colour = re.search(r"(?:^|;)\s*color\s*:\s*([^;]+)", body)
        assert background and colour, selector
        bg = re.fullmatch(r"var\(--badge-([a-z]+)-bg\)", background.group(1).strip())
        fg = re.fullmatch(r"var\(--badge-([a-z]+)-fg\)", colour.group(1).strip())
        assert bg and fg and bg.group(1) == fg.group(1) and bg.group(1) in pairs, selector
