"""Answers from elsewhere beside the knowledge base's articles: a registry the help centre's search reads.

The knowledge base knows no channel; an app whose records answer customers'
questions (the community's answered questions, ``channels_app/forum/search.py``)
registers a source when Django starts. The search page lists what the sources
find under the articles, and the contact form's suggestions add their best
few. A source applies its own access rule to the request's reader: it
returns only what that reader may open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OtherAnswer:
    """One answer found elsewhere: plain text (the pages escape it) and its address."""

    title: str
    snippet: str
    url: str
    source: str  # what it is, for the reader: "community"


AnswerSource = Callable[[HttpRequest, str, int], list[OtherAnswer]]
_sources: list[AnswerSource] = []


def answer_source_register(source: AnswerSource) -> None:
    """Add ``source`` (registering the same function again has no effect)."""
    if source not in _sources:
        _sources.append(source)


def other_answers(request: HttpRequest, query: str, *, limit: int) -> list[OtherAnswer]:
    """What the registered sources find for ``query`` and the request's reader, at most ``limit``.

    A source that fails is logged and left out: the articles are answered all the same.
    """
    found: list[OtherAnswer] = []
    for source in _sources:
        try:
            found.extend(source(request, query, limit - len(found)))
        except Exception:
            log.exception("Answer source %s failed for a search", getattr(source, "__qualname__", source))
        if len(found) >= limit:
            break
    return found[:limit]
