"""Markdown written by people (knowledge-base articles, forum posts) rendered to sanitised HTML.

CommonMark with tables; raw HTML in the source is text, not markup. The
result goes through the same allowlist as customer mail (``core/html.py``)
without inline styles, links get ``rel="noopener noreferrer nofollow"``, and
images load only from the caller's own upload path: a remote image would
tell a third party who read the page, and when.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

from servicedesk.core.html import ALLOWED_ATTRIBUTES, ALLOWED_CSS_PROPERTIES, ALLOWED_TAGS

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_ATTRIBUTES = {**ALLOWED_ATTRIBUTES, "*": set()}
_URL_SCHEMES = {"http", "https", "mailto"}


def markdown_html(source: str, *, image_prefix: str) -> str:
    """``source`` rendered and sanitised: no scripts, event handlers, iframes, ``javascript:`` links,
    and no images but those whose address starts with ``image_prefix``."""

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src" and not value.startswith(image_prefix):
            return None
        return value

    return nh3.clean(
        _MARKDOWN.render(source or ""),
        tags=ALLOWED_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=ALLOWED_CSS_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=attribute_filter,
    )
