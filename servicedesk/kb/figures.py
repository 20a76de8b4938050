"""The self-service figures of a period (docs/metrics.md#self-service), from the knowledge base's own records.

Computed from what happened in [start, end) and by ``as_of``: article views
(per day), helpful votes, the top searches and the searches that found
nothing (the content gaps), and the deflection rate. A handful of grouped
statements over indexed columns; the dashboard reads them live.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Min, Q, Sum

from .models import ArticleDailyViews, ArticleVote, DeflectionEvent, DeflectionKind, SearchQuery

DEFLECTION_WINDOW = timedelta(hours=24)
TOP = 10


def _rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded half up to four decimals, as the reports' rates; None without a denominator."""
    if not denominator:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def deflection_figures(*, start: datetime, end: datetime, as_of: datetime) -> dict[str, Any]:
    """Sessions first shown suggestions in [start, end); deflected ones opened a suggested article and sent no
    request within 24 hours after opening it, those 24 hours having passed by ``as_of``."""
    sessions = (
        DeflectionEvent.objects.filter(kind=DeflectionKind.SHOWN, at__lte=as_of)
        .values("session_key")
        .annotate(first_shown=Min("at"))
        .filter(first_shown__gte=start, first_shown__lt=end)
    )
    keys = [row["session_key"] for row in sessions]
    opened = {
        row["session_key"]: row["first_opened"]
        for row in DeflectionEvent.objects.filter(session_key__in=keys, kind=DeflectionKind.OPENED, at__lte=as_of)
        .values("session_key")
        .annotate(first_opened=Min("at"))
    }
    submitted: dict[str, list[datetime]] = {}
    for key, at in DeflectionEvent.objects.filter(
        session_key__in=list(opened), kind=DeflectionKind.SUBMITTED, at__lte=as_of
    ).values_list("session_key", "at"):
        submitted.setdefault(key, []).append(at)
    deflected = 0
    for key, first_opened in opened.items():
        window_end = first_opened + DEFLECTION_WINDOW
        if window_end > as_of:
            continue  # not decided yet
        if not any(first_opened <= at <= window_end for at in submitted.get(key, [])):
            deflected += 1
    return {
        "sessions_shown": len(keys),
        "sessions_opened": len(opened),
        "deflected": deflected,
        "rate": _rate(deflected, len(keys)),
    }


def self_service_figures(*, start: datetime, end: datetime, as_of: datetime) -> dict[str, Any]:
    period = Q(at__gte=start, at__lt=end, at__lte=as_of)
    last = min(end, as_of) - timedelta(microseconds=1)
    # Views are counted per UTC day: the days the period touches.
    views = (
        ArticleDailyViews.objects.filter(day__gte=start.date(), day__lte=last.date()).aggregate(n=Sum("views"))["n"]
        or 0
    )
    votes = ArticleVote.objects.filter(period).aggregate(
        yes=Count("pk", filter=Q(helpful=True)), no=Count("pk", filter=Q(helpful=False))
    )
    searches = SearchQuery.objects.filter(period)
    top = list(searches.values("term").annotate(count=Count("pk")).order_by("-count", "term")[:TOP])
    gaps = list(searches.filter(results=0).values("term").annotate(count=Count("pk")).order_by("-count", "term")[:TOP])
    return {
        "article_views": int(views),
        "helpful_votes": {
            "yes": votes["yes"],
            "no": votes["no"],
            "rate": _rate(votes["yes"], votes["yes"] + votes["no"]),
        },
        "searches": searches.count(),
        "top_searches": top,
        "searches_without_result": gaps,
        "deflection": deflection_figures(start=start, end=end, as_of=as_of),
    }
