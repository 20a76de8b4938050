"""What the forum tests share: writing as a member, and the XSS corpus."""

from __future__ import annotations

from html.parser import HTMLParser

from channels_app.forum.models import Category, Member, Post, Topic
from channels_app.forum.services import post_create, topic_create

# Hostile input for titles, bodies and names: each must come out as text, never as markup or script.
XSS_CORPUS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    '"><script>alert(1)</script>',
    "</script><script>alert(1)</script>",
    '<iframe src="https://evil.example"></iframe>',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](https://evil.example/pixel.png)",
    "<style>body{display:none}</style>",
    "<!--<script>alert(1)</script>-->",
    "' onmouseover='alert(1)",
    "<details open ontoggle=alert(1)>",
]


class _Markup(HTMLParser):
    """Collects what a page would run: script elements (other than data blocks), event-handler
    attributes, ``javascript:`` addresses, frames, embedded SVG and style sheets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        # Data blocks (structured data, json_script) are not run.
        if tag == "script" and values.get("type") not in ("application/ld+json", "application/json"):
            self.found.append(f"<script {values}>")
        if tag in ("iframe", "svg", "style", "object", "embed", "details"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}={value}")


def active_markup(page: str) -> list[str]:
    """What in ``page`` would run in a browser (empty for a safe page)."""
    parser = _Markup()
    parser.feed(page)
    return parser.found


def topic_make(
    member: Member, category: Category, title: str = "Printer on fire", body: str = "It burns.", **kwargs
) -> Topic:  # type: ignore[no-untyped-def]
    return topic_create(member=member, category=category, kind=kwargs.pop("kind", "question"), title=title, body=body)


def reply_make(member: Member, topic: Topic, body: str = "Try turning it off.") -> Post:
    return post_create(member=member, topic=topic, body=body)
