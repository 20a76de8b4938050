"""Deflection: articles suggested while a customer writes a request, and whether the request was needed.

While a customer types the subject of the contact form, the help centre
suggests the three best articles (``suggest``). Per browser session it
records each article shown, each suggested article opened, and each request
submitted (``DeflectionEvent``). A session **deflected** opened a suggested
article and submitted no request within 24 hours after; the **deflection
rate** is deflected sessions / sessions shown suggestions
(docs/metrics.md#deflection, ``servicedesk/kb/figures.py``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .models import Article, DeflectionEvent, DeflectionKind
from .search import Hit, kb_search
from .services import articles_visible_to

SHOWN_KEY = "kb.suggested"
SUGGESTIONS = 3
SOURCES = ("contact", "chat")


def _session_key(session: Any) -> str:
    if not session.session_key:
        session.save()
    return str(session.session_key or "")


def suggest(*, user: Any, session: Any, query: str, language: str, source: str = "contact") -> list[Hit]:
    """The best three articles for what the customer is typing; the new ones shown are recorded."""
    hits = kb_search(articles_visible_to(user), query, language=language, limit=SUGGESTIONS, record="suggest")
    if not hits:
        return hits
    shown: list[int] = list(session.get(SHOWN_KEY, []))
    fresh = [hit.article for hit in hits if hit.article.pk not in shown]
    if fresh:
        key = _session_key(session)
        now = timezone.now()
        DeflectionEvent.objects.bulk_create(
            DeflectionEvent(session_key=key, kind=DeflectionKind.SHOWN, article=article, source=source, at=now)
            for article in fresh
        )
        session[SHOWN_KEY] = (shown + [article.pk for article in fresh])[-200:]
    return hits


def suggested_opened(*, session: Any, article: Article) -> bool:
    """A suggested article was opened (only one this session was shown counts)."""
    if article.pk not in session.get(SHOWN_KEY, []):
        return False
    DeflectionEvent.objects.create(
        session_key=_session_key(session), kind=DeflectionKind.OPENED, article=article, at=timezone.now()
    )
    return True


def request_submitted(*, session: Any, source: str = "contact") -> bool:
    """The customer sent a request after seeing suggestions (nothing is recorded for a session shown none)."""
    if not session.get(SHOWN_KEY):
        return False
    DeflectionEvent.objects.create(
        session_key=_session_key(session), kind=DeflectionKind.SUBMITTED, source=source, at=timezone.now()
    )
    return True
