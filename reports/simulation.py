"""A day of phone calls, simulated: its generic CTI events and its true live-channel figures.

``day_simulate`` is pure (no database, no network, no clock): from a
``DayPlan`` and its seed it draws the day's calls and returns them, the
events a telephone system would send for them (docs/phone.md, generic CTI)
and the figures the report of that day must show for them
(docs/metrics.md#live), computed here from the calls themselves.
``manage.py simulate_calls`` posts the events to a running desk and prints
the figures beside Erlang C's prediction (``erlang_prediction``);
docs/phone.md, "Call simulator", says how to run it.

The model: callers arrive as a Poisson process over the opening hours; each
brings an exponential handle time and an exponential patience. One FIFO
queue is served by the plan's agents. A caller is answered by the agent free
longest as soon as one is free, unless their patience runs out first: a
caller abandons exactly when their patience is shorter than the wait they
would have had. A caller who abandons takes no agent's time, so the wait of
everyone behind them is the same either way, and the whole day is one pass
over the arrivals in order.

Instants are whole milliseconds, held as integer microseconds since 1970
like every figure of the reports (``servicedesk/core/epoch.py``), so the
simulator and the database count the same waits and handle times to the
microsecond, and a wait of exactly the threshold is within it here as there.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reports import erlang
from reports.formatting import rounded
from reports.live import mean_seconds, ratio
from reports.periods import local_midnight_utc
from servicedesk.core.epoch import US_PER_SECOND, epoch_us, from_epoch_us
from servicedesk.sla.calendars import local_to_epoch_us

_US_PER_MS = 1_000
# Callers' numbers: Ofcom's range for drama, +44 7700 900000 to 900999, which no real phone has,
# so a simulated day never reaches the record of a real customer.
CALLER_NUMBERS = 1_000
CALLER_PREFIX = "+447700900"
# The line's number by default: from Ofcom's London drama range. The default line takes any
# number no other line has (docs/phone.md, "Lines").
LINE_NUMBER = "+442079460000"
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class DayPlan:
    """What to simulate: one local date's opening hours, the load, the agents and the seed.

    ``opens`` and ``closes`` are minutes after local midnight in ``time_zone``
    (``closes`` 1440 is the next midnight); calls arrive in [opens, closes).
    ``patience_seconds`` None: callers never give up. ``callers``: how many
    numbers the calls come from (at most ``CALLER_NUMBERS``), so some
    callers call more than once.
    """

    day: date
    time_zone: str
    opens: int
    closes: int
    calls_per_hour: float
    aht_seconds: float
    patience_seconds: float | None
    agents: tuple[str, ...]
    seed: int
    callers: int
    threshold_seconds: int
    short_abandon_seconds: int
    line_number: str = LINE_NUMBER

    def __post_init__(self) -> None:
        if not 0 <= self.opens < self.closes <= MINUTES_PER_DAY:
            raise ValueError("the hours must open before they close, within the day")
        if not self.calls_per_hour > 0 or not self.aht_seconds > 0:
            raise ValueError("calls per hour and AHT must be above 0")
        if self.patience_seconds is not None and not self.patience_seconds > 0:
            raise ValueError("the patience must be above 0 (None: callers never give up)")
        if not self.agents or len(set(self.agents)) != len(self.agents):
            raise ValueError("at least one agent, each named once")
        if not 1 <= self.callers <= CALLER_NUMBERS:
            raise ValueError(f"callers must be between 1 and {CALLER_NUMBERS}")
        if self.threshold_seconds < 0 or self.short_abandon_seconds < 0:
            raise ValueError("the threshold and the short-abandon limit must not be negative")
        ZoneInfo(self.time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def local_us(self, minute: int) -> int:
        """The instant of ``minute`` after local midnight of the plan's day (1440: the next midnight).

        By the reports' edge rules: a skipped local time is the instant the
        clock jumps, a repeated one its first occurrence.
        """
        day = self.day + timedelta(days=minute // MINUTES_PER_DAY)
        minute %= MINUTES_PER_DAY
        return local_to_epoch_us(self.zone, datetime.combine(day, time(minute // 60, minute % 60)))

    @property
    def opens_us(self) -> int:
        return self.local_us(self.opens)

    @property
    def closes_us(self) -> int:
        return self.local_us(self.closes)

    @property
    def day_start_us(self) -> int:
        """Local midnight at the start of the day, as the report for that date starts it."""
        return epoch_us(local_midnight_utc(self.day, self.time_zone))

    @property
    def day_end_us(self) -> int:
        return epoch_us(local_midnight_utc(self.day + timedelta(days=1), self.time_zone))

    @property
    def expected_calls(self) -> float:
        """Arrivals a day of these hours brings on average (real time, so a day the clocks change counts it)."""
        return self.calls_per_hour * (self.closes_us - self.opens_us) / (3600 * US_PER_SECOND)

    def call_id(self, index: int) -> str:
        """Unique per date, seed and call: two runs of different days or seeds never share a call."""
        return f"sim-{self.day:%Y%m%d}-{self.seed}-{index:06d}"

    def instant_text(self, us: int) -> str:
        """ISO 8601 with the offset of the plan's zone, to the millisecond."""
        return from_epoch_us(us).astimezone(self.zone).isoformat(timespec="milliseconds")


def default_callers(calls_per_hour: float, hours: float) -> int:
    """Numbers for a day of that load: twice the expected calls (about one call in five is then a
    caller's second or later), within 1 and ``CALLER_NUMBERS``."""
    return max(1, min(CALLER_NUMBERS, math.ceil(2 * calls_per_hour * hours)))


@dataclass(frozen=True)
class SimulatedCall:
    """One call: when it rang, and either when and by whom it was answered and when it ended, or when the
    caller gave up. Instants in microseconds since 1970."""

    index: int
    call_id: str
    caller: str
    requested_us: int
    patience_us: int | None
    handle_us: int
    answered_us: int | None = None
    agent: str | None = None
    ended_us: int | None = None
    abandoned_us: int | None = None

    @property
    def wait_us(self) -> int:
        """From the ring to the answer, or to the hang-up of a caller who gave up."""
        end = self.answered_us if self.answered_us is not None else self.abandoned_us
        assert end is not None
        return end - self.requested_us


@dataclass(frozen=True)
class SimulatedDay:
    plan: DayPlan
    calls: tuple[SimulatedCall, ...]
    # Every event of the day in time order (ring before answer before hang-up at one instant).
    events: tuple[dict[str, Any], ...]
    figures: dict[str, Any]


def calls_draw(plan: DayPlan) -> list[SimulatedCall]:
    """The day's calls, not yet served: arrival, handle time, patience and caller, from the plan's seed.

    One random stream per (seed, date), drawn in a fixed order per call (the
    gap before it, its handle time, its patience, its caller), so a plan
    gives the same calls on every machine and every run.
    """
    rng = random.Random(f"{plan.seed}:{plan.day.isoformat()}")
    rate_per_second = plan.calls_per_hour / 3600
    span_seconds = (plan.closes_us - plan.opens_us) / US_PER_SECOND
    calls: list[SimulatedCall] = []
    elapsed = 0.0
    while True:
        elapsed += rng.expovariate(rate_per_second)
        handle_ms = max(1, round(rng.expovariate(1 / plan.aht_seconds) * 1000))
        patience_ms = (
            round(rng.expovariate(1 / plan.patience_seconds) * 1000) if plan.patience_seconds is not None else None
        )
        caller = rng.randrange(plan.callers)
        if elapsed >= span_seconds:
            return calls
        requested_us = plan.opens_us + math.floor(elapsed * 1000) * _US_PER_MS
        if requested_us >= plan.closes_us:
            return calls
        calls.append(
            SimulatedCall(
                index=len(calls),
                call_id=plan.call_id(len(calls)),
                caller=f"{CALLER_PREFIX}{caller:03d}",
                requested_us=requested_us,
                patience_us=patience_ms * _US_PER_MS if patience_ms is not None else None,
                handle_us=handle_ms * _US_PER_MS,
            )
        )


def calls_serve(calls: list[SimulatedCall], agents: tuple[str, ...]) -> list[SimulatedCall]:
    """The calls as one FIFO queue served by ``agents`` (see the module): each answered or abandoned."""
    # (free from, agent's position): the agent free longest is at the top; the first named wins a tie.
    free: list[tuple[int, int]] = [(0, position) for position in range(len(agents))]
    served = []
    for call in sorted(calls, key=lambda c: (c.requested_us, c.index)):
        free_from, position = free[0]
        answered = max(call.requested_us, free_from)
        if call.patience_us is not None and call.patience_us < answered - call.requested_us:
            served.append(replace(call, abandoned_us=call.requested_us + call.patience_us))
            continue
        heapq.heapreplace(free, (answered + call.handle_us, position))
        served.append(replace(call, answered_us=answered, agent=agents[position], ended_us=answered + call.handle_us))
    return served


_KIND_ORDER = {"newCall": 0, "answer": 1, "hangup": 2}


def call_events(plan: DayPlan, call: SimulatedCall) -> list[dict[str, Any]]:
    """The generic CTI events of one call, in order (docs/phone.md).

    A ring that rings every agent of the queue; then an answer by the agent
    who took it and a normal hang-up after the handle time, or the caller's
    hang-up (``cancel``) when their patience ran out.
    """
    numbers = {"call_id": call.call_id, "direction": "in", "from": call.caller, "to": plan.line_number}
    events: list[dict[str, Any]] = [
        {"event": "newCall", **numbers, "user": list(plan.agents), "at": plan.instant_text(call.requested_us)}
    ]
    if call.answered_us is not None and call.ended_us is not None and call.agent is not None:
        events.append(
            {
                "event": "answer",
                **numbers,
                "user": [call.agent],
                "answering_user": call.agent,
                "at": plan.instant_text(call.answered_us),
            }
        )
        events.append({"event": "hangup", **numbers, "cause": "normalClearing", "at": plan.instant_text(call.ended_us)})
    else:
        assert call.abandoned_us is not None
        events.append({"event": "hangup", **numbers, "cause": "cancel", "at": plan.instant_text(call.abandoned_us)})
    return events


def _union_us(intervals: list[tuple[int, int]]) -> int:
    """The length of the union of [start, end) intervals."""
    total = 0
    reach: int | None = None
    for start, end in sorted(intervals):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += end - start
            reach = end
    return total


def day_figures(plan: DayPlan, calls: list[SimulatedCall]) -> dict[str, Any]:
    """The day's figures as docs/metrics.md#live defines them, once every call has ended.

    ``live.phone`` has the keys of the report's ``live.phone`` and
    ``occupancy`` those of its ``occupancy`` (docs/metrics.md#report-json),
    rounded as the report rounds (``reports.live.ratio`` and
    ``mean_seconds``). The sessions of the day are those requested in its
    local dates' bounds; a call is one session. Occupancy takes each agent as
    ready exactly over the opening hours, and their busy time (answer to
    hang-up, no after-call work) inside the day. ``callers`` says how many
    numbers called and how many of them more than once.
    """
    threshold_us = plan.threshold_seconds * US_PER_SECOND
    short_us = plan.short_abandon_seconds * US_PER_SECOND
    day = [c for c in calls if plan.day_start_us <= c.requested_us < plan.day_end_us]
    answered = [c for c in day if c.answered_us is not None]
    abandoned = [c for c in day if c.abandoned_us is not None]
    offered = len(day)
    short = sum(1 for c in abandoned if c.wait_us < short_us)
    within = sum(1 for c in answered if c.wait_us <= threshold_us)
    abandoned_within = sum(1 for c in abandoned if c.wait_us <= threshold_us)
    abandoned_after = len(abandoned) - abandoned_within
    handle_us = sum(
        c.ended_us - c.answered_us for c in answered if c.ended_us is not None and c.answered_us is not None
    )
    phone = {
        "offered": offered,
        "answered": len(answered),
        "abandoned": len(abandoned),
        "short_abandoned": short,
        "service_level": ratio(within, len(answered) + abandoned_after),
        "service_level_offered": ratio(within, offered),
        "service_level_positive": ratio(within + abandoned_within, offered),
        "service_level_answered": ratio(within, len(answered)),
        "service_level_excluding_short": ratio(within, offered - short),
        "asa_seconds": mean_seconds(sum(c.wait_us for c in answered), len(answered)),
        "abandonment_rate": ratio(len(abandoned) - short, offered - short),
        "abandonment_rate_raw": ratio(len(abandoned), offered),
        "aht_seconds": mean_seconds(handle_us, len(answered)),
        "threshold_seconds": plan.threshold_seconds,
    }
    ready_us = max(0, min(plan.closes_us, plan.day_end_us) - max(plan.opens_us, plan.day_start_us))
    busy: dict[str, int] = {}
    for agent in plan.agents:
        intervals = [
            (max(c.answered_us, plan.day_start_us), min(c.ended_us, plan.day_end_us))
            for c in calls
            if c.agent == agent and c.answered_us is not None and c.ended_us is not None
        ]
        busy[agent] = _union_us(intervals)
    by_caller = Counter(c.caller for c in day)
    return {
        "live": {"phone": phone},
        "occupancy": {
            "team": ratio(sum(busy.values()), ready_us * len(plan.agents)),
            "by_agent": {agent: ratio(busy[agent], ready_us) for agent in sorted(plan.agents)},
        },
        "callers": {
            "numbers": len(by_caller),
            "called_again": sum(1 for n in by_caller.values() if n > 1),
            "repeat_calls": sum(n - 1 for n in by_caller.values()),
        },
    }


def erlang_prediction(
    *, calls_per_hour: float, aht_seconds: float, agents: int, threshold_seconds: float
) -> dict[str, Any]:
    """Erlang C for the same load (docs/metrics.md#erlang-c): callers who never give up.

    Rates to four decimals, ASA to two; with no more agents than the load
    (N <= A) the queue grows without end: every caller waits, the service
    level is 0 and ASA has no value (None).
    """
    load = calls_per_hour * aht_seconds / 3600
    asa = erlang.average_speed_of_answer(agents, load, aht_seconds)
    return {
        "load": _rounded(load, 4),
        "probability_wait": _rounded(erlang.erlang_c(agents, load), 4),
        "service_level": _rounded(erlang.service_level(agents, load, aht_seconds, threshold_seconds), 4),
        "asa_seconds": None if math.isinf(asa) else _rounded(asa, 2),
        "occupancy": _rounded(erlang.occupancy(agents, load), 4),
    }


def _rounded(value: float, places: int) -> float:
    return float(rounded(value, places))


def day_simulate(plan: DayPlan) -> SimulatedDay:
    """The plan's day: its calls, its events in time order, and its true figures (``day_figures``)."""
    calls = calls_serve(calls_draw(plan), plan.agents)
    events = sorted(
        ((event, call.index) for call in calls for event in call_events(plan, call)),
        key=lambda pair: (datetime.fromisoformat(pair[0]["at"]), _KIND_ORDER[pair[0]["event"]], pair[1]),
    )
    return SimulatedDay(
        plan=plan,
        calls=tuple(calls),
        events=tuple(event for event, _index in events),
        figures=day_figures(plan, calls),
    )
