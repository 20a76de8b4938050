"""The community figures of a period (docs/metrics.md#community), from the forum's own records.

Over the questions asked in [start, end) (topics of kind question, published:
not waiting for a moderator), as they stand at ``as_of``: how many; the share
with a first reply by someone other than the asker within 24 hours, among
those whose 24 hours have passed; the share with an accepted answer; the
median time to that first reply; and the topics moved to a ticket in the
period (by an agent or by the escalation target). A few grouped statements
over indexed columns (``forum_topic_created``); the dashboard reads them live.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q

from .models import Kind, State, Topic

ANSWERED_WITHIN = timedelta(hours=24)


def _rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded half up to four decimals, as the reports' rates; None without a denominator."""
    if not denominator:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _median_minutes(questions: Any) -> float | None:
    """The median of first reply minus asking, in minutes (the database's percentile on PostgreSQL)."""
    replied = questions.filter(first_reply_at__isnull=False)
    if connection.vendor == "postgresql":
        sql, params = replied.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            # The ids of the period's replied questions, their waits read back from their rows.
            table = connection.ops.quote_name(Topic._meta.db_table)
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (first_reply_at - created_at)))"  # noqa: S608
                f" FROM {table} WHERE id IN ({sql})",
                params,
            )
            (value,) = cursor.fetchone()
        return None if value is None else round(float(value) / 60, 2)
    waits = replied.annotate(
        wait=ExpressionWrapper(F("first_reply_at") - F("created_at"), output_field=DurationField())
    ).values_list("wait", flat=True)
    seconds = [wait.total_seconds() for wait in waits]
    return round(statistics.median(seconds) / 60, 2) if seconds else None


def community_figures(*, start: datetime, end: datetime, as_of: datetime) -> dict[str, Any]:
    """The community section of the dashboard for [start, end), as of ``as_of``."""
    questions = Topic.objects.filter(
        kind=Kind.QUESTION, created_at__gte=start, created_at__lt=end, created_at__lte=as_of
    ).exclude(state=State.HELD)
    counted = questions.aggregate(
        asked=Count("pk"),
        decided=Count("pk", filter=Q(created_at__lte=as_of - ANSWERED_WITHIN)),
        answered_in_time=Count(
            "pk",
            filter=Q(created_at__lte=as_of - ANSWERED_WITHIN, first_reply_at__lte=F("created_at") + ANSWERED_WITHIN),
        ),
        accepted=Count("pk", filter=Q(accepted_count__gt=0)),
    )
    escalated = Topic.objects.filter(escalated_at__gte=start, escalated_at__lt=end, escalated_at__lte=as_of).count()
    return {
        "questions": counted["asked"],
        "answered_within_24h": {
            "answered": counted["answered_in_time"],
            "decided": counted["decided"],
            "rate": _rate(counted["answered_in_time"], counted["decided"]),
        },
        "accepted": {"count": counted["accepted"], "rate": _rate(counted["accepted"], counted["asked"])},
        "median_first_reply_minutes": _median_minutes(questions),
        "escalations": escalated,
    }
