"""Deflection: articles suggested while a customer writes a request, and whether the request was needed.

While a customer types the subject of the contact form, or the first message
in the chat widget's pre-chat form, the help centre suggests the three best
articles (``suggest``). Per browser session it records each article shown,
each suggested article opened, and each request sent after suggestions
(``DeflectionEvent``). A session is the visitor's Django session on the help
centre's own pages, and a key the chat widget keeps in the visitor's browser
(``chat:<id>``) on other sites, where the desk's cookies do not travel. A
session **deflected** opened a suggested article and sent no request within 24
hours after; the **deflection rate** is deflected sessions / sessions shown
suggestions (docs/metrics.md#deflection, ``figures.py``).
"""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone

from .models import Article, DeflectionEvent, DeflectionKind
from .search import Hit, kb_search
from .services import articles_visible_to

SUGGESTIONS = 3
SOURCES = ("contact", "chat")
CHAT_KEY = re.compile(r"chat:[A-Za-z0-9-]{8,64}")


def session_key_of(session: Any) -> str:
    """The help centre's own pages: the visitor's Django session (made when needed)."""
    if not session.session_key:
        session.save()
    return str(session.session_key or "")


def chat_key(visitor_key: str) -> str | None:
    """The widget's key for a visitor's browser, as a deflection session; None when malformed."""
    key = f"chat:{visitor_key}"
    return key if CHAT_KEY.fullmatch(key) else None


def suggest(*, user: Any, key: str, query: str, language: str, source: str = "contact") -> list[Hit]:
    """The best three articles for what the customer is typing; the ones not shown before are recorded."""
    hits = kb_search(articles_visible_to(user), query, language=language, limit=SUGGESTIONS, record="suggest")
    if not hits or not key:
        return hits
    ids = [hit.article.pk for hit in hits]
    shown = set(
        DeflectionEvent.objects.filter(session_key=key, kind=DeflectionKind.SHOWN, article_id__in=ids).values_list(
            "article_id", flat=True
        )
    )
    now = timezone.now()
    DeflectionEvent.objects.bulk_create(
        DeflectionEvent(session_key=key, kind=DeflectionKind.SHOWN, article_id=pk, source=source, at=now)
        for pk in ids
        if pk not in shown
    )
    return hits


def suggested_opened(*, key: str, article: Article) -> bool:
    """A suggested article was opened (only an article this session was shown counts)."""
    if (
        not key
        or not DeflectionEvent.objects.filter(session_key=key, kind=DeflectionKind.SHOWN, article=article).exists()
    ):
        return False
    DeflectionEvent.objects.create(session_key=key, kind=DeflectionKind.OPENED, article=article, at=timezone.now())
    return True


def request_submitted(*, key: str, source: str = "contact") -> bool:
    """The customer sent a request after seeing suggestions (nothing is recorded for a session shown none)."""
    if not key or not DeflectionEvent.objects.filter(session_key=key, kind=DeflectionKind.SHOWN).exists():
        return False
    DeflectionEvent.objects.create(session_key=key, kind=DeflectionKind.SUBMITTED, source=source, at=timezone.now())
    return True
