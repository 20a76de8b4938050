"""How one SLA target of one ticket stands at an instant: pure functions of the timeline.

docs/metrics.md#sla, for a single ticket:

* first reply: the clock runs from creation, without pauses, to the first
  ``public_agent`` message. Replied: achieved when FRT <= target, else
  breached. Not replied and solved: cancelled. Not replied and unsolved:
  breached once ``now`` is past the due instant, else active.
* resolution: the clock is the requester wait time, which counts while the
  status is ``new``, ``open`` or ``on_hold`` and stops while ``pending`` and
  between a solve and a reopen. Solved: judged at the last solve. Unsolved:
  breached when RWT > target, else active (paused while pending). A reopen
  makes a fulfilled target active again.

A measured value equal to its target is achieved. Durations are whole
microseconds, in business time on the policy's calendar or in calendar time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from servicedesk.sla.calendars import CalendarSpec, business_microseconds, due_instant

ACTIVE = "active"
PAUSED = "paused"
ACHIEVED = "achieved"
BREACHED = "breached"
CANCELLED = "cancelled"

# Statuses in which the requester waits (docs/metrics.md#requester-wait).
WAITING_STATUSES = frozenset({"new", "open", "on_hold"})
SOLVED_STATUSES = frozenset({"solved", "closed"})


@dataclass(frozen=True)
class Clock:
    """Business time on ``spec``, or calendar time when ``spec`` is None."""

    spec: CalendarSpec | None

    def measure_us(self, start: datetime, end: datetime) -> int:
        if end <= start:
            return 0
        if self.spec is None:
            return (end - start) // timedelta(microseconds=1)
        return business_microseconds(self.spec, start, end)

    def reach(self, start: datetime, us: int) -> datetime:
        """The instant at which ``us`` microseconds have elapsed since ``start``."""
        if self.spec is None:
            return (start + timedelta(microseconds=us)).astimezone(UTC)
        return due_instant(self.spec, start, us / 1_000_000)


@dataclass(frozen=True)
class Outcome:
    """A target at ``now``; see the module docstring for the rules."""

    state: str
    elapsed_us: int
    due_at: datetime | None  # on the running clock; None while paused, cancelled or fulfilled
    warning_at: datetime | None  # same clock, at the warning share
    fulfilled_at: datetime | None
    breached_at: datetime | None  # the instant the measured value passed the target
    # While the clock runs and the target is not yet breached: the first instant
    # at which it will count as breached. That is the due instant plus one
    # microsecond, or the next opening when the due instant ends a window.
    breaches_at: datetime | None = None

    @property
    def elapsed_seconds(self) -> float:
        return self.elapsed_us / 1_000_000


def _share_us(target_us: int, percent: int) -> int:
    return target_us * percent // 100


def first_reply_outcome(
    clock: Clock,
    *,
    target_us: int,
    warning_percent: int,
    created_at: datetime,
    first_reply_at: datetime | None,
    solved: bool,
    now: datetime,
) -> Outcome:
    """The first-reply target at ``now``; ``solved`` is whether the ticket is solved or closed at ``now``."""
    due = clock.reach(created_at, target_us)
    if first_reply_at is not None:
        elapsed = clock.measure_us(created_at, first_reply_at)
        breached = elapsed > target_us
        return Outcome(
            state=BREACHED if breached else ACHIEVED,
            elapsed_us=elapsed,
            due_at=None,
            warning_at=None,
            fulfilled_at=first_reply_at,
            breached_at=due if breached else None,
        )
    elapsed = clock.measure_us(created_at, now)
    if solved:
        return Outcome(CANCELLED, elapsed, None, None, None, None)
    breached = now > due
    return Outcome(
        state=BREACHED if breached else ACTIVE,
        elapsed_us=elapsed,
        due_at=due,
        warning_at=clock.reach(created_at, _share_us(target_us, warning_percent)),
        fulfilled_at=None,
        breached_at=due if breached else None,
        breaches_at=None if breached else due + timedelta(microseconds=1),
    )


def _waiting_segments(history: Sequence[tuple[datetime, str]], now: datetime) -> list[tuple[datetime, datetime | None]]:
    """Intervals spent in a waiting status up to ``now``; the last is open (None) when it still runs."""
    segments: list[tuple[datetime, datetime | None]] = []
    for index, (at, status) in enumerate(history):
        if at > now:
            break
        if status not in WAITING_STATUSES:
            continue
        following = history[index + 1][0] if index + 1 < len(history) else None
        if following is not None and following <= now:
            if following > at:
                segments.append((at, following))
        else:
            segments.append((at, None))
    return segments


def _reach_over(
    clock: Clock, segments: list[tuple[datetime, datetime | None]], us: int, now: datetime
) -> datetime | None:
    """Where the clock over ``segments`` reaches ``us``: past, inside a closed segment, or ahead on the open one."""
    remaining = us
    for index, (start, end) in enumerate(segments):
        if end is None:
            return clock.reach(start, remaining)
        length = clock.measure_us(start, end)
        # Reached exactly at the end of a stretch: when the clock runs again it
        # resumes at the target, so the later instant is the one that matters.
        if remaining < length or (remaining == length and index == len(segments) - 1):
            return clock.reach(start, remaining)
        remaining -= length
    return None


def resolution_outcome(
    clock: Clock,
    *,
    target_us: int,
    warning_percent: int,
    history: Sequence[tuple[datetime, str]],
    now: datetime,
) -> Outcome:
    """The resolution target at ``now`` from the status ``history`` (instant, status), oldest first.

    The first entry is the creation with its status; entries after ``now`` are ignored.
    """
    segments = _waiting_segments(history, now)
    elapsed = sum(clock.measure_us(start, end if end is not None else now) for start, end in segments)
    past = [status for at, status in history if at <= now]
    current = past[-1] if past else "new"
    running = bool(segments) and segments[-1][1] is None
    breached = elapsed > target_us
    breached_at = _reach_over(clock, segments, target_us, now) if breached else None
    if current in SOLVED_STATUSES:
        last_solve = _last_solve(history, now)
        return Outcome(
            state=BREACHED if breached else ACHIEVED,
            elapsed_us=elapsed,
            due_at=None,
            warning_at=None,
            fulfilled_at=last_solve,
            breached_at=breached_at,
        )
    if not running:
        return Outcome(BREACHED if breached else PAUSED, elapsed, None, None, None, breached_at)
    return Outcome(
        state=BREACHED if breached else ACTIVE,
        elapsed_us=elapsed,
        due_at=_reach_over(clock, segments, target_us, now),
        warning_at=_reach_over(clock, segments, _share_us(target_us, warning_percent), now),
        fulfilled_at=None,
        breached_at=breached_at,
        breaches_at=None if breached else _reach_over(clock, segments, target_us + 1, now),
    )


def _last_solve(history: Sequence[tuple[datetime, str]], now: datetime) -> datetime | None:
    last = None
    previous = None
    for at, status in history:
        if at > now:
            break
        if status in SOLVED_STATUSES and (previous is None or previous not in SOLVED_STATUSES):
            last = at
        previous = status
    return last
