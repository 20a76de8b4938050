"""SLA outcomes at ``as_of`` (docs/metrics.md#sla-outcomes), from the facts table.

Each in-scope ticket with a policy snapshot has up to two targets, first
reply and resolution, whose terms are those of the ticket's policy for the
priority in force: at the fulfilment instant (the first reply, the last
solve) for a fulfilled target, at ``as_of`` otherwise. Business time is
measured on the policy's calendar. States, as ``reports.metrics.facts``
derives them per ticket:

* first reply: replied -> achieved when FRT <= target, else breached; not
  replied and solved -> cancelled (left out of rates); otherwise breached
  once ``as_of`` is past the due instant, else active;
* resolution: RWT > target -> breached; else solved -> achieved, pending ->
  paused, otherwise active.

Rates: achieved / (achieved + breached) per kind and pooled; "tickets meeting
every target" = tickets whose counted (achieved or breached) targets are all
achieved / tickets with at least one counted target.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from reports.metrics import group_key, rate
from reports.metrics.facts import DIMENSIONS, Facts, grouped_select

_COUNTED = "('achieved', 'breached')"


def sla_figures(facts: Facts) -> dict[str | None, dict[str, dict[str, Any]]]:
    """{breakdown: {key: {"first_reply", "resolution", "all_targets", "tickets_meeting_all"}}}."""
    counts = [
        f"COUNT(CASE WHEN {column} = '{state}' THEN 1 END)"
        for column, states in (
            ("first_reply_sla_state", ("achieved", "breached", "active", "cancelled")),
            ("resolution_sla_state", ("achieved", "breached", "active", "paused")),
        )
        for state in states
    ]
    counted = f"(first_reply_sla_state IN {_COUNTED} OR resolution_sla_state IN {_COUNTED})"
    met = (
        f"{counted} AND (first_reply_sla_state IS NULL OR first_reply_sla_state <> 'breached')"
        " AND (resolution_sla_state IS NULL OR resolution_sla_state <> 'breached')"
    )
    counts += [f"COUNT(CASE WHEN {met} THEN 1 END)", f"COUNT(CASE WHEN {counted} THEN 1 END)"]
    body = ", ".join(counts)
    result: dict[str | None, dict[str, dict[str, Any]]] = {name: {} for name in DIMENSIONS}
    with connection.cursor() as cursor:
        cursor.execute(grouped_select(facts.table, body, where="scope = 'in'"))
        for dim, key, *numbers in cursor.fetchall():
            (
                reply_achieved,
                reply_breached,
                reply_active,
                reply_cancelled,
                resolution_achieved,
                resolution_breached,
                resolution_active,
                resolution_paused,
                met_n,
                counted_n,
            ) = numbers
            result[dim or None][group_key(key)] = {
                "first_reply": {
                    "achieved": reply_achieved,
                    "breached": reply_breached,
                    "active": reply_active,
                    "cancelled": reply_cancelled,
                    "rate": rate(reply_achieved, reply_achieved + reply_breached),
                },
                "resolution": {
                    "achieved": resolution_achieved,
                    "breached": resolution_breached,
                    "active": resolution_active,
                    "paused": resolution_paused,
                    "rate": rate(resolution_achieved, resolution_achieved + resolution_breached),
                },
                "all_targets": {
                    "achieved": reply_achieved + resolution_achieved,
                    "breached": reply_breached + resolution_breached,
                    "rate": rate(
                        reply_achieved + resolution_achieved,
                        reply_achieved + resolution_achieved + reply_breached + resolution_breached,
                    ),
                },
                "tickets_meeting_all": {"met": met_n, "counted": counted_n, "rate": rate(met_n, counted_n)},
            }
    return result


def sla_empty() -> dict[str, Any]:
    """The SLA figures of a group without in-scope tickets."""
    return {
        "first_reply": {"achieved": 0, "breached": 0, "active": 0, "cancelled": 0, "rate": None},
        "resolution": {"achieved": 0, "breached": 0, "active": 0, "paused": 0, "rate": None},
        "all_targets": {"achieved": 0, "breached": 0, "rate": None},
        "tickets_meeting_all": {"met": 0, "counted": 0, "rate": None},
    }
