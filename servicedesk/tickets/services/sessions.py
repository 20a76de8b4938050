"""Recording live contacts (sessions), agents' presence and operating costs.

The chat and phone channels and the history import record sessions and costs
through the functions here; agents' presence is written by routing (each
change of availability) and by the history import. None of them touches a
ticket: a session only points at the ticket it became, and the reports read
the rows (docs/metrics.md#live).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from servicedesk.accounts.models import User
from servicedesk.tickets.models import AgentPresence, OperatingCost, Session
from servicedesk.tickets.services.history import rows_insert


def sessions_record(*, sessions: list[Session]) -> None:
    """Store new sessions with one statement.

    Guarantee: all rows or none. Errors: IntegrityError when an ``external_id``
    is already stored (idempotency key: the external id, unique) or a
    reference is missing. Callers skip sessions already stored.
    """
    rows_insert(Session, sessions)


def agent_presence_record_many(*, rows: Iterable[tuple[int, datetime, str]], source: str) -> None:
    """Store presence states (agent id, from instant, state) of one ``source``, one statement.

    Two writers share the history (docs/architecture.md, "Presence"): routing
    records each availability change as a ``desk`` row together with the
    agent's current state, and the history import records ``import`` rows of the
    past. Only routing calls this with ``desk``; the import keeps its rows
    earlier than the agent's latest ``desk`` row, so they never change anyone's
    current state.

    Idempotency key: (agent, at), unique: a row already stored for that agent
    and instant takes the new state and source; repeating a call changes
    nothing. Within one call the last state given for a key wins.
    """
    wanted: dict[tuple[int, datetime], str] = {}
    for agent_id, at, state in rows:
        wanted[(agent_id, at)] = state
    if not wanted:
        return
    AgentPresence.objects.bulk_create(
        [
            AgentPresence(agent_id=agent_id, at=at, state=state, source=source)
            for (agent_id, at), state in sorted(wanted.items())
        ],
        update_conflicts=True,
        unique_fields=["agent", "at"],
        update_fields=["state", "source"],
    )


def agent_presence_record(*, agent: User, at: datetime, state: str, source: str) -> None:
    """An agent is in ``state`` from ``at`` on. Idempotency key: (agent, at); see agent_presence_record_many."""
    agent_presence_record_many(rows=[(agent.pk, at, state)], source=source)


def operating_cost_set(*, period_start: date, period_end: date, amount: Decimal, currency: str) -> None:
    """Set the operating cost of the period [period_start, period_end).

    Idempotency key: the period (unique): setting it again replaces amount and
    currency. Errors: IntegrityError when the period ends before it starts.
    """
    OperatingCost.objects.bulk_create(
        [OperatingCost(period_start=period_start, period_end=period_end, amount=amount, currency=currency)],
        update_conflicts=True,
        unique_fields=["period_start", "period_end"],
        update_fields=["amount", "currency"],
    )
