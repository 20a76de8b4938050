"""The surveys' response rate (docs/metrics.md#csat): rated / surveyed.

Counted over the satisfaction surveys of the report's in-scope tickets sent
by ``as_of`` (``servicedesk.tickets.models.Survey``), and broken down by the
survey's own agent (the assignee when it was sent), queue and channel, as the
help centre recorded them, not by the ticket's keys at ``as_of``. A survey is
rated when its answer (its current rating) was given by ``as_of``. One
grouped statement; the sums reach Python, which divides them.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from reports.metrics import rate
from reports.metrics.facts import Facts
from servicedesk.accounts.models import User
from servicedesk.tickets.models import Queue, Rating, Survey

# Breakdown name -> column of the grouped rows (their order in the SELECT).
SURVEY_DIMENSIONS = {"agent": 0, "queue": 1, "channel": 2}


def survey_result(surveyed: int, rated: int) -> dict[str, Any]:
    return {"surveyed": surveyed, "rated": rated, "response_rate": rate(rated, surveyed)}


def survey_figures(facts: Facts) -> dict[str | None, dict[str, dict[str, Any]]]:
    """{breakdown: {key: {"surveyed", "rated", "response_rate"}}}; breakdown None is the whole cohort (key "")."""
    s, u, q, r = Survey._meta.db_table, User._meta.db_table, Queue._meta.db_table, Rating._meta.db_table
    connection = connections["default"]
    as_of = connection.ops.adapt_datetimefield_value(facts.as_of)
    sql = f"""
SELECT COALESCE(u.email, '') AS agent_key, COALESCE(q.slug, '') AS queue_key, s.channel,
       COUNT(*) AS surveyed,
       COALESCE(SUM(CASE WHEN r.id IS NOT NULL AND r.at <= %(as_of)s THEN 1 ELSE 0 END), 0) AS rated
FROM {s} s
JOIN {facts.table} f ON f.id = s.ticket_id AND f.scope = 'in'
LEFT JOIN {u} u ON u.id = s.agent_id
LEFT JOIN {q} q ON q.id = s.queue_id
LEFT JOIN {r} r ON r.id = s.rating_id
WHERE s.sent_at <= %(as_of)s
GROUP BY COALESCE(u.email, ''), COALESCE(q.slug, ''), s.channel
"""  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"as_of": as_of})
        rows = cursor.fetchall()
    sums: dict[str | None, dict[str, list[int]]] = {None: {"": [0, 0]}, **{name: {} for name in SURVEY_DIMENSIONS}}
    for row in rows:
        surveyed, rated = int(row[3]), int(row[4])
        groups: list[tuple[str | None, str]] = [(None, "")]
        groups += [(name, str(row[column])) for name, column in SURVEY_DIMENSIONS.items()]
        for name, key in groups:
            total = sums[name].setdefault(key, [0, 0])
            total[0] += surveyed
            total[1] += rated
    return {name: {key: survey_result(*total) for key, total in groups.items()} for name, groups in sums.items()}
