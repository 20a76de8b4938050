"""Choosing the SLA policy of a ticket and its targets for a priority.

Policies are tried by rank, lowest first, and the first whose conditions all
hold wins. A condition names a ticket fact (priority, channel, customer tier,
queue, initiator) and a value or a list of values, any of which matches; a
policy without conditions matches every ticket. A fact the ticket lacks (a
customer without an organization has no tier) matches no condition on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.db.models import Prefetch

from servicedesk.core.process_cache import ProcessCached
from servicedesk.sla.calendars import CalendarSpec, calendar_spec
from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget


def policy_matches(match: Mapping[str, Any], facts: Mapping[str, str | None]) -> bool:
    """Whether every condition of ``match`` holds for the ticket ``facts``."""
    for key, wanted in match.items():
        allowed = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        value = facts.get(key)
        if value is None or value not in allowed:
            return False
    return True


def policies_ranked() -> list[SlaPolicy]:
    """Every policy, lowest rank first, with its calendar and targets (two queries)."""
    return list(
        SlaPolicy.objects.select_related("calendar")
        .prefetch_related(Prefetch("targets", queryset=SlaTarget.objects.order_by("priority")))
        .order_by("rank")
    )


def policy_for(
    *,
    priority: str,
    channel: str,
    tier: str | None,
    queue: str | None,
    initiator: str,
    policies: list[SlaPolicy] | None = None,
) -> SlaPolicy | None:
    """The policy for a ticket with these facts, or None when no policy matches.

    ``tier`` is the customer organization's tier and ``queue`` the queue's
    slug. ``policies`` is the result of ``policies_ranked()`` when the caller
    holds it already (a run over many tickets); otherwise two queries whatever
    the number of policies. The returned policy carries its targets for
    ``targets_for``.
    """
    facts = {"priority": priority, "channel": channel, "tier": tier, "queue": queue, "initiator": initiator}
    for policy in policies if policies is not None else policies_ranked():
        if policy_matches(policy.match or {}, facts):
            return policy
    return None


def targets_for(policy: SlaPolicy, priority: str) -> SlaTarget | None:
    """The policy's targets for ``priority``, or None when it sets none for it."""
    for target in policy.targets.all():
        if target.priority == priority:
            return target
    return None


def _specs_load() -> dict[int, CalendarSpec]:
    windows: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for calendar_id, weekday, start, end in OpeningWindow.objects.values_list(
        "calendar_id", "weekday", "start_minute", "end_minute"
    ):
        windows.setdefault(calendar_id, {}).setdefault(weekday, []).append((start, end))
    holidays: dict[int, set[date]] = {}
    for calendar_id, day in Holiday.objects.values_list("calendar_id", "date"):
        holidays.setdefault(calendar_id, set()).add(day)
    return {
        pk: CalendarSpec(
            time_zone=time_zone,
            windows={day: tuple(day_windows) for day, day_windows in windows.get(pk, {}).items()},
            holidays=frozenset(holidays.get(pk, ())),
        )
        for pk, time_zone in BusinessCalendar.objects.values_list("pk", "time_zone")
    }


_policies = ProcessCached("sla.policies", policies_ranked, depends_on=[SlaPolicy, SlaTarget, BusinessCalendar])
_specs = ProcessCached("sla.calendar_specs", _specs_load, depends_on=[BusinessCalendar, OpeningWindow, Holiday])


def policies_cached() -> list[SlaPolicy]:
    """``policies_ranked()``, read once per process and again when a policy, its targets or a calendar changes."""
    return _policies.get()


def calendar_spec_cached(calendar: BusinessCalendar) -> CalendarSpec:
    """The calendar's ``CalendarSpec``, read once per process and again when a calendar changes."""
    spec = _specs.get().get(calendar.pk)
    return spec if spec is not None else calendar_spec(calendar)
