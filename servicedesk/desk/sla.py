"""SLA targets as agents read them: a countdown, its urgency, and the measured time.

The engine (``servicedesk.tickets.services.sla``) keeps each target's due
instant; here it becomes "due in 2 h 05 min" or "overdue by 12 min" with an
urgency class, measured against one ``now`` per page:

- ``overdue``: past the due instant (a measured value equal to its target is
  still achieved, so the due instant itself is not overdue);
- ``warning``: a quarter of the target or less is left, counted in the
  target's own hours (business or calendar), or an hour or less of real time;
- ``ok``: otherwise.

A target whose clock does not run reads ``paused``, ``achieved in ...``,
``breached, took ...`` or ``cancelled``; the measured time is the one the
engine stored. The page carries each running target's due instant and the
instant it turns amber, so ``desk/sla.js`` can refresh the text without a
request; the server-rendered text is right without it. See docs/sla.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from servicedesk.core.datetimes import viewer_time_zone
from servicedesk.sla.calendars import CalendarSpec, business_microseconds, due_instant
from servicedesk.sla.models import Holiday, OpeningWindow, TargetHours
from servicedesk.tickets.models import TargetState, Ticket, TicketTarget

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Amber when this much real time or less is left before the due instant ...
SOON = timedelta(hours=1)
# ... or this share of the target or less, in the target's own hours.
LOW_SHARE_DIVISOR = 4

OK = "ok"
WARNING = "warning"
OVERDUE = "overdue"
PAUSED = "paused"
ACHIEVED = "achieved"
BREACHED = "breached"
CANCELLED = "cancelled"

# The formats the page and desk/sla.js share, so both read the same in every language.
FORMATS: dict[str, StrOrPromise] = {
    "due": _("due in %(time)s"),
    "overdue": _("overdue by %(time)s"),
    # Compact durations: "2 d 3 h", "2 h 05 min", "12 min".
    "days": _("%(days)d d %(hours)d h"),
    "hours": _("%(hours)d h %(minutes)02d min"),
    "minutes": _("%(minutes)d min"),
}


def now() -> datetime:
    """The instant a page measures every countdown against."""
    return timezone.now()


def duration_text(minutes: int) -> str:
    """Whole minutes in the compact format: "12 min", "2 h 05 min", "3 d 4 h"."""
    minutes = max(0, minutes)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return str(FORMATS["days"]) % {"days": days, "hours": hours}
    if hours:
        return str(FORMATS["hours"]) % {"hours": hours, "minutes": mins}
    return str(FORMATS["minutes"]) % {"minutes": mins}


def _ceil_minutes(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds() / 60)


def agent_time_zone(user: Any) -> tzinfo:
    """The agent's own time zone, else the site's (settings.TIME_ZONE): ``core.datetimes.viewer_time_zone``."""
    return viewer_time_zone(user)


def iso(instant: datetime) -> str:
    """An instant as ISO 8601 in UTC to the second, as the browser parses it."""
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def specs_for(targets: Iterable[TicketTarget]) -> dict[int, CalendarSpec]:
    """The calendars of the running business-hours targets, in two queries whatever their number."""
    calendars = {
        target.calendar_id: target.calendar
        for target in targets
        if target.is_running and target.hours == TargetHours.BUSINESS
    }
    if not calendars:
        return {}
    windows: dict[int, dict[int, list[tuple[int, int]]]] = {pk: {} for pk in calendars}
    for calendar_id, weekday, start, end in OpeningWindow.objects.filter(calendar_id__in=calendars).values_list(
        "calendar_id", "weekday", "start_minute", "end_minute"
    ):
        windows[calendar_id].setdefault(weekday, []).append((start, end))
    holidays: dict[int, set[Any]] = {pk: set() for pk in calendars}
    for calendar_id, day in Holiday.objects.filter(calendar_id__in=calendars).values_list("calendar_id", "date"):
        holidays[calendar_id].add(day)
    return {
        pk: CalendarSpec(
            time_zone=calendar.time_zone,
            windows={day: tuple(spans) for day, spans in windows[pk].items()},
            holidays=frozenset(holidays[pk]),
        )
        for pk, calendar in calendars.items()
    }


@dataclass(frozen=True)
class TargetView:
    """One target at ``now``: its text, urgency and, while its clock runs, the instants the page refreshes from."""

    target: TicketTarget
    text: str
    urgency: str
    elapsed_seconds: float
    due_iso: str = ""
    warning_iso: str = ""

    @property
    def css(self) -> str:
        return f"sla-{self.urgency}"

    @property
    def running(self) -> bool:
        return bool(self.due_iso)

    @property
    def state_label(self) -> StrOrPromise:
        """The state as of ``now``: a running target past its due instant is breached."""
        if self.urgency == OVERDUE:
            return TargetState.BREACHED.label
        return TargetState(self.target.state).label

    @property
    def hours_label(self) -> StrOrPromise:
        try:
            return TargetHours(self.target.hours).label
        except ValueError:
            return self.target.hours

    @property
    def target_text(self) -> str:
        return duration_text(self.target.minutes)

    @property
    def elapsed_text(self) -> str:
        return duration_text(int(self.elapsed_seconds // 60))


def target_view(target: TicketTarget, at: datetime, specs: dict[int, CalendarSpec]) -> TargetView:
    """``target`` as it stands at ``at``; ``specs`` holds its calendar when it runs on business hours."""
    if target.is_running and target.due_at is not None:
        return _running_view(target, target.due_at, at, specs.get(target.calendar_id))
    measured = duration_text(int(target.elapsed_seconds // 60))
    if target.state == TargetState.CANCELLED:
        text, urgency = str(_("cancelled")), CANCELLED
    elif target.fulfilled_at is not None and target.state == TargetState.BREACHED:
        text, urgency = str(_("breached, took %(time)s") % {"time": measured}), BREACHED
    elif target.fulfilled_at is not None:
        text, urgency = str(_("achieved in %(time)s") % {"time": measured}), ACHIEVED
    elif target.state == TargetState.BREACHED:
        # Breached, and the clock stopped (the ticket waits on the customer).
        text, urgency = str(_("breached, paused")), BREACHED
    else:
        text, urgency = str(_("paused")), PAUSED
    return TargetView(target=target, text=text, urgency=urgency, elapsed_seconds=target.elapsed_seconds)


def _running_view(target: TicketTarget, due: datetime, at: datetime, spec: CalendarSpec | None) -> TargetView:
    if target.hours != TargetHours.BUSINESS:
        spec = None

    def measure(start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        if spec is not None:
            return business_microseconds(spec, start, end) / 1_000_000
        return (end - start).total_seconds()

    target_seconds = target.minutes * 60
    if at > due:
        return TargetView(
            target=target,
            text=str(FORMATS["overdue"]) % {"time": duration_text(_ceil_minutes(at - due))},
            urgency=OVERDUE,
            elapsed_seconds=target_seconds + measure(due, at),
            due_iso=iso(due),
            warning_iso=iso(at),
        )
    left = measure(at, due)
    low = target_seconds / LOW_SHARE_DIVISOR
    if left <= low:
        low_at = at
    elif spec is not None:
        low_at = due_instant(spec, at, left - low)
    else:
        low_at = at + timedelta(seconds=left - low)
    warning_at = min(low_at, due - SOON)
    return TargetView(
        target=target,
        text=str(FORMATS["due"]) % {"time": duration_text(_ceil_minutes(due - at))},
        urgency=WARNING if at >= warning_at else OK,
        elapsed_seconds=max(0.0, target_seconds - left),
        due_iso=iso(due),
        warning_iso=iso(warning_at),
    )


def headline(views: list[TargetView]) -> TargetView | None:
    """The one target a list row shows: the next due running one, else a paused one, else the
    outcome (a breached one first, else the last fulfilled); nothing when all are cancelled."""
    running = [view for view in views if view.running]
    if running:
        return min(running, key=lambda view: (view.target.due_at, view.target.kind))
    paused = [view for view in views if view.urgency in (PAUSED, BREACHED) and view.target.fulfilled_at is None]
    if paused:
        return paused[0]
    fulfilled = [view for view in views if view.target.fulfilled_at is not None]
    breached = [view for view in fulfilled if view.urgency == BREACHED]
    if breached:
        return breached[0]
    if fulfilled:
        return max(fulfilled, key=lambda view: (view.target.fulfilled_at, view.target.kind))
    return None


class SlaBoard:
    """The SLA views of one page's tickets at one instant; targets must be prefetched (``sla_targets``)."""

    def __init__(self, tickets: Iterable[Ticket], at: datetime) -> None:
        self.now = at
        by_ticket = {ticket.pk: list(ticket.sla_targets.all()) for ticket in tickets}
        specs = specs_for(target for targets in by_ticket.values() for target in targets)
        self._views = {pk: [target_view(target, at, specs) for target in targets] for pk, targets in by_ticket.items()}

    def targets(self, ticket: Ticket) -> list[TargetView]:
        return self._views.get(ticket.pk, [])

    def headline(self, ticket: Ticket) -> TargetView | None:
        return headline(self.targets(ticket))


def script_formats() -> dict[str, str]:
    """The formats for desk/sla.js, in the page's language."""
    return {name: str(text) for name, text in FORMATS.items()}
