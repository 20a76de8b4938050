"""Knowledge-base search in English and Simplified Chinese, ranked, with highlighted snippets.

Each article's search document (``Article.search_text``, made on save by
``services.search_terms``) holds its title twice and its text, as lower-case
words and, for Chinese, which has no spaces, overlapping pairs of characters.
A query is turned into the same terms. The articles that hold every term come
first; only when none does, any term matches (a word misspelt or not in any
article does not empty the answer). The last term also matches as a prefix
(the reader is still typing):

- On PostgreSQL: full-text search on ``search_vector``
  (``to_tsvector('english', search_text)``, kept by a trigger, with a GIN
  index ``kb_article_search``: migration 0004), so English words match
  across their forms ("printers", "printing") and Chinese pairs match
  exactly; ranked by ``ts_rank_cd`` on the stored vectors, then by views.
- Elsewhere (the SQLite default): each term is looked for in the document and
  the matches are ranked by how many terms each holds; simpler, slower, the
  same results for whole words.

Snippets are cut from the article's text around the first term found, with
the terms marked (``<mark>``); everything else in them is escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import Article, SearchQuery
from .services import search_terms

SNIPPET_CHARS = 160
QUERY_MAX = 200
TERMS_MAX = 12
_TSQUERY_UNSAFE = re.compile(r"[^\w]", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    article: Article
    title: SafeString
    snippet: SafeString


def _terms(query: str) -> list[str]:
    seen: list[str] = []
    for term in search_terms(query[:QUERY_MAX]):
        if term not in seen:
            seen.append(term)
    return seen[:TERMS_MAX]


def _postgres(visible: QuerySet[Article], terms: list[str], limit: int) -> list[Article]:
    words = [_TSQUERY_UNSAFE.sub("", term) for term in terms]
    words = [word for word in words if word]
    if not words:
        return []
    table = Article._meta.db_table
    sql, params = visible.values("pk").query.sql_with_params()
    order: list[int] = []
    # Every term first; any term only when no article has them all. The last one also as a prefix.
    for operator in ("&", "|") if len(words) > 1 else ("|",):
        tsquery = f" {operator} ".join([*words[:-1], f"{words[-1]}:*"])
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
SELECT a.id FROM {table} a, to_tsquery('english', %s) q
WHERE a.search_vector @@ q
  AND a.id IN ({sql})
ORDER BY ts_rank_cd(a.search_vector, q) DESC, a.views DESC, a.id
LIMIT %s
""",  # noqa: S608
                [tsquery, *params, limit],
            )
            order = [row[0] for row in cursor.fetchall()]
        if order:
            break
    found = {a.pk: a for a in visible.filter(pk__in=order).select_related("category")}
    return [found[pk] for pk in order if pk in found]


def _portable(visible: QuerySet[Article], terms: list[str], limit: int) -> list[Article]:
    match = Q()
    for term in terms:
        match |= Q(search_text__contains=term)
    candidates = list(visible.filter(match).select_related("category")[:500])

    def score(article: Article) -> tuple[int, int]:
        words = article.search_text.split()
        hits = sum(1 for term in terms if any(word.startswith(term) for word in words))
        return (-hits, -article.views)

    candidates = [a for a in candidates if score(a)[0] < 0]
    candidates.sort(key=score)
    return candidates[:limit]


def _highlight(text: str, terms: list[str]) -> SafeString:
    if not terms:
        return mark_safe(escape(text))  # noqa: S308
    pattern = re.compile("|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    out: list[str] = []
    last = 0
    for found in pattern.finditer(text):
        out.append(escape(text[last : found.start()]))
        out.append(f"<mark>{escape(found.group(0))}</mark>")
        last = found.end()
    out.append(escape(text[last:]))
    # Every piece of the text was escaped; only the <mark> tags are ours.
    return mark_safe("".join(out))  # noqa: S308


def _snippet(text: str, terms: list[str]) -> SafeString:
    lowered = text.lower()
    positions = [p for p in (lowered.find(term) for term in terms) if p >= 0]
    start = max(0, min(positions) - SNIPPET_CHARS // 3) if positions else 0
    piece = text[start : start + SNIPPET_CHARS]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + SNIPPET_CHARS < len(text) else ""
    return mark_safe(escape(prefix) + _highlight(piece, terms) + escape(suffix))  # noqa: S308


def kb_search(
    visible: QuerySet[Article],
    query: str,
    *,
    language: str = "",
    limit: int = 10,
    record: str | None = "search",
    now: datetime | None = None,
) -> list[Hit]:
    """The articles of ``visible`` that match ``query``, best first (see the module).

    ``record``: the search is counted under that source (``SearchQuery``), so
    searches that find nothing show as content gaps; None records nothing.
    """
    terms = _terms(query or "")
    articles: list[Article] = []
    if terms:
        finder = _postgres if connection.vendor == "postgresql" else _portable
        articles = finder(visible, terms, limit)
    if record and terms:
        SearchQuery.objects.create(
            term=" ".join((query or "").split())[:200].lower(),
            language=language[:10],
            results=len(articles),
            source=record,
            at=now or timezone.now(),
        )
    return [Hit(article=a, title=_highlight(a.title, terms), snippet=_snippet(a.body_text, terms)) for a in articles]


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.article.pk,
        "title": hit.article.title,
        "language": hit.article.language,
        "url": f"/help/kb/articles/{hit.article.pk}/",
        "title_html": str(hit.title),
        "snippet_html": str(hit.snippet),
    }
