"""The per-target clock: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from servicedesk.sla.calendars import CalendarSpec
from servicedesk.sla.clock import Clock, first_reply_outcome, resolution_outcome

START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)  # Friday before the European clock change
HOUR_US = 3_600_000_000
CALENDAR = Clock(spec=None)
OFFICE = Clock(spec=CalendarSpec("Europe/Berlin", windows={d: ((9 * 60, 17 * 60),) for d in range(5)}))


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_first_reply_states():
    common = dict(target_us=HOUR_US, warning_percent=75, created_at=START)
    active = first_reply_outcome(CALENDAR, first_reply_at=None, solved=False, now=at(0.5), **common)
    assert (active.state, active.due_at, active.warning_at) == ("active", at(1), at(0.75))
    assert active.breaches_at == at(1) + timedelta(microseconds=1)
    exact = first_reply_outcome(CALENDAR, first_reply_at=at(1), solved=False, now=at(5), **common)
    assert (exact.state, exact.elapsed_us, exact.breached_at) == ("achieved", HOUR_US, None)
    at_due = first_reply_outcome(CALENDAR, first_reply_at=None, solved=False, now=at(1), **common)
    assert at_due.state == "active"
    past_due = first_reply_outcome(
        CALENDAR, first_reply_at=None, solved=False, now=at(1) + timedelta(microseconds=1), **common
    )
    assert (past_due.state, past_due.breached_at) == ("breached", at(1))
    cancelled = first_reply_outcome(CALENDAR, first_reply_at=None, solved=True, now=at(3), **common)
    assert (cancelled.state, cancelled.due_at) == ("cancelled", None)


def test_resolution_counts_new_open_on_hold_only():
    history = [(at(0), "new"), (at(1), "pending"), (at(3), "on_hold"), (at(4), "solved"), (at(10), "open")]
    # new 1 h + on_hold 1 h + open since the reopen.
    outcome = resolution_outcome(CALENDAR, target_us=3 * HOUR_US, warning_percent=50, history=history, now=at(10.5))
    assert (outcome.state, outcome.elapsed_us) == ("active", 2.5 * HOUR_US)
    assert outcome.due_at == at(11)
    assert outcome.breaches_at == at(11) + timedelta(microseconds=1)
    # 1.5 h is reached inside the on_hold stretch, in the past.
    assert outcome.warning_at == at(3.5)
    paused = resolution_outcome(CALENDAR, target_us=3 * HOUR_US, warning_percent=75, history=history, now=at(2))
    assert (paused.state, paused.due_at, paused.elapsed_us) == ("paused", None, HOUR_US)
    solved = resolution_outcome(CALENDAR, target_us=2 * HOUR_US, warning_percent=75, history=history, now=at(5))
    assert (solved.state, solved.fulfilled_at) == ("achieved", at(4))
    late = resolution_outcome(CALENDAR, target_us=HOUR_US, warning_percent=75, history=history, now=at(5))
    # One hour is reached as the ticket goes pending; it is passed once on_hold starts the clock again.
    assert (late.state, late.breached_at) == ("breached", at(3))
    # Pending past the target stays breached, paused or not.
    over = resolution_outcome(CALENDAR, target_us=HOUR_US // 2, warning_percent=75, history=history, now=at(2))
    assert (over.state, over.breached_at) == ("breached", at(0.5))


STATUSES = st.sampled_from(["new", "open", "pending", "on_hold", "solved", "closed"])


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(min_value=1, max_value=72 * 60), STATUSES), max_size=8),
    target_minutes=st.integers(min_value=1, max_value=40 * 60),
    business=st.booleans(),
)
def test_the_due_instant_is_where_the_wait_reaches_the_target(steps, target_minutes, business):
    clock = OFFICE if business else CALENDAR
    history = [(START, "new")]
    for minutes, status in steps:
        history.append((history[-1][0] + timedelta(minutes=minutes), status))
    target_us = target_minutes * 60_000_000
    now = history[-1][0]
    outcome = resolution_outcome(clock, target_us=target_us, warning_percent=75, history=history, now=now)
    if outcome.state != "active":
        return
    assert outcome.due_at is not None and outcome.due_at >= now
    at_due = resolution_outcome(clock, target_us=target_us, warning_percent=75, history=history, now=outcome.due_at)
    assert (at_due.state, at_due.elapsed_us) == ("active", target_us)
    assert outcome.breaches_at is not None and outcome.breaches_at > outcome.due_at
    before = resolution_outcome(
        clock,
        target_us=target_us,
        warning_percent=75,
        history=history,
        now=outcome.breaches_at - timedelta(microseconds=1),
    )
    assert before.state == "active"
    after = resolution_outcome(clock, target_us=target_us, warning_percent=75, history=history, now=outcome.breaches_at)
    assert after.state == "breached"
    assert after.breached_at == outcome.due_at


def test_a_target_due_at_closing_time_breaches_at_the_next_opening():
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # 16:00 in Berlin, one business hour before closing
    outcome = resolution_outcome(OFFICE, target_us=HOUR_US, warning_percent=75, history=[(friday, "new")], now=friday)
    assert outcome.due_at == datetime(2026, 3, 27, 16, 0, tzinfo=UTC)
    # Closed over the weekend; Monday 09:00 is summer time (UTC+2).
    assert outcome.breaches_at == datetime(2026, 3, 30, 7, 0, 0, 1, tzinfo=UTC)
    saturday = resolution_outcome(
        OFFICE,
        target_us=HOUR_US,
        warning_percent=75,
        history=[(friday, "new")],
        now=datetime(2026, 3, 28, 12, tzinfo=UTC),
    )
    assert (saturday.state, saturday.elapsed_us) == ("active", HOUR_US)
