"""The call simulator: a seeded day of calls, its events, its true figures, and the report that must equal them.

The pure part (``reports.simulation``) is checked on its own: the same seed
gives the same day, arrivals are Poisson, a caller abandons exactly when
their patience is shorter than their wait, the figures follow the worked
example of docs/metrics.md, and with callers who never give up the queue
behaves as Erlang C says. End to end, ``manage.py simulate_calls`` posts a
day to a real desk (``python -m servicedesk.serve``) and the report a manager
asks for through the API, computed by a real Celery worker, shows exactly the
simulator's figures; a wrong secret stops the command with an error.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.authtoken.models import Token

from channels_app.phone.models import Call, CallEvent
from reports.simulation import (
    DayPlan,
    SimulatedCall,
    call_events,
    calls_draw,
    calls_serve,
    day_figures,
    day_simulate,
    erlang_prediction,
)
from servicedesk.core.epoch import from_epoch_us
from servicedesk.tickets.models import PresenceState, Session, SessionChannel
from servicedesk.tickets.models.sessions import PresenceSource
from servicedesk.tickets.services.sessions import agent_presence_record
from tests.e2e.conftest import REPO_ROOT, WorkerProcess, wait_until
from tests.e2e.test_live_desk import desk_env, serve, stop
from tests.factories import AgentFactory
from tests.reports.delivery_helpers import calendar_make

SECRET = "simulated-pbx-secret"
ZONE = "Asia/Kolkata"  # +05:30: the report's day is bounded at a local midnight that is no UTC hour
AGENTS = ("ann@corp.example", "bob@corp.example")
US = 1_000_000


def plan_of(**changes: Any) -> DayPlan:
    values: dict[str, Any] = {
        "day": date(2026, 3, 2),
        "time_zone": "Europe/Dublin",
        "opens": 8 * 60,
        "closes": 18 * 60,
        "calls_per_hour": 40,
        "aht_seconds": 300,
        "patience_seconds": 60,
        "agents": ("a1@corp.example", "a2@corp.example", "a3@corp.example", "a4@corp.example", "a5@corp.example"),
        "seed": 1,
        "callers": 500,
        "threshold_seconds": 20,
        "short_abandon_seconds": 5,
    }
    values.update(changes)
    return DayPlan(**values)


# --- the generator ----------------------------------------------------------------------


def test_a_seed_gives_the_same_day_and_another_seed_or_date_another():
    plan = plan_of()
    first, again = day_simulate(plan), day_simulate(plan)
    assert first.events == again.events
    assert first.figures == again.figures
    other_seed = day_simulate(replace(plan, seed=2))
    assert other_seed.events != first.events
    next_day = day_simulate(replace(plan, day=date(2026, 3, 3)))
    # Two runs of different days (or seeds) never share a call id.
    ids = {c.call_id for c in first.calls}
    assert ids.isdisjoint(c.call_id for c in next_day.calls)
    assert ids.isdisjoint(c.call_id for c in other_seed.calls)
    assert first.calls[0].call_id == "sim-20260302-1-000000"
    assert len(ids) == len(first.calls)


def test_arrivals_are_a_poisson_process_over_the_opening_hours():
    counts: list[int] = []
    for offset in range(20):
        plan = plan_of(day=date(2026, 1, 5) + timedelta(days=offset), opens=0, closes=24 * 60)
        calls = calls_draw(plan)
        assert all(plan.opens_us <= c.requested_us < plan.closes_us for c in calls)
        assert [c.requested_us for c in calls] == sorted(c.requested_us for c in calls)
        per_hour = Counter((c.requested_us - plan.opens_us) // (3600 * US) for c in calls)
        counts += [per_hour.get(hour, 0) for hour in range(24)]
    mean = sum(counts) / len(counts)
    variance = sum((n - mean) ** 2 for n in counts) / (len(counts) - 1)
    assert len(counts) == 480
    # 40 calls an hour: a Poisson count has its variance equal to its mean.
    assert 39 < mean < 41
    assert 0.85 < variance / mean < 1.15


def test_the_hours_are_local_and_a_day_the_clocks_change_is_an_hour_shorter():
    plan = plan_of(day=date(2026, 3, 29), opens=0, closes=24 * 60)  # Dublin springs forward at 01:00
    assert plan.closes_us - plan.opens_us == 23 * 3600 * US
    assert plan.expected_calls == 40 * 23
    assert from_epoch_us(plan_of().opens_us).astimezone(ZoneInfo("Europe/Dublin")).hour == 8


def test_handle_times_and_patience_are_exponential_with_their_means():
    calls = [c for offset in range(10) for c in calls_draw(plan_of(day=date(2026, 2, 1) + timedelta(days=offset)))]
    handles = [c.handle_us / US for c in calls]
    patience = [c.patience_us / US for c in calls if c.patience_us is not None]
    assert len(calls) > 3500
    assert abs(sum(handles) / len(handles) - 300) < 15
    assert abs(sum(patience) / len(patience) - 60) < 3
    # Exponential: about e^-1 of the values lie above the mean.
    assert abs(sum(1 for h in handles if h > 300) / len(handles) - math.exp(-1)) < 0.03
    assert all(c.handle_us % 1000 == 0 and c.requested_us % 1000 == 0 for c in calls)


def _call(index: int, at: float, *, handle: float, patience: float | None = None) -> SimulatedCall:
    return SimulatedCall(
        index=index,
        call_id=f"c{index}",
        caller=f"+447700900{index:03d}",
        requested_us=round(at * US),
        patience_us=round(patience * US) if patience is not None else None,
        handle_us=round(handle * US),
    )


def test_a_caller_abandons_exactly_when_their_patience_is_shorter_than_their_wait():
    served = calls_serve(
        [
            _call(0, 0, handle=100),
            _call(1, 10, handle=50, patience=89.999),  # would wait 90 s: gives up at 99.999
            _call(2, 20, handle=50, patience=80),  # waits exactly 80 s: answered as the agent frees up
            _call(3, 30, handle=10, patience=200),  # behind call 2 in the queue: answered at 150
            _call(4, 40, handle=10),  # never gives up: answered at 160
        ],
        ("solo@corp.example",),
    )
    outcome = [(c.answered_us, c.abandoned_us, c.ended_us) for c in served]
    assert outcome == [
        (0, None, 100 * US),
        (None, 99_999_000, None),
        (100 * US, None, 150 * US),
        (150 * US, None, 160 * US),
        (160 * US, None, 170 * US),
    ]
    assert {c.agent for c in served if c.answered_us is not None} == {"solo@corp.example"}


def test_on_a_whole_day_a_caller_waits_only_while_every_agent_is_busy():
    plan = plan_of(agents=("a1@corp.example", "a2@corp.example", "a3@corp.example"), calls_per_hour=45)
    calls = day_simulate(plan).calls
    busy = {
        agent: [(c.answered_us, c.ended_us) for c in calls if c.agent == agent and c.ended_us is not None]
        for agent in plan.agents
    }

    def all_busy(start: int, end: int) -> bool:
        """Every agent busy at every instant of [start, end]: their calls follow each other without a gap."""
        for intervals in busy.values():
            reach = start
            for a, e in sorted(intervals):
                if a <= reach < e:
                    reach = e
            if reach <= end:
                return False
        return True

    answered = [c for c in calls if c.answered_us is not None]
    abandoned = [c for c in calls if c.abandoned_us is not None]
    assert len(abandoned) > 20 and sum(1 for c in answered if c.wait_us > 0) > 50
    for call in abandoned:
        assert call.abandoned_us == call.requested_us + call.patience_us
        assert all_busy(call.requested_us, call.abandoned_us), call
    for call in answered:
        assert call.patience_us is None or call.wait_us <= call.patience_us
        if call.wait_us > 0:
            assert all_busy(call.requested_us, call.answered_us - 1), call
            # Answered the instant an agent finished the call before.
            assert any(e == call.answered_us for a, e in busy[call.agent]), call
    # First come, first served: among answered callers the answers follow the rings.
    in_ring_order = sorted(answered, key=lambda c: (c.requested_us, c.index))
    assert [c.answered_us for c in in_ring_order] == sorted(c.answered_us for c in answered)


def test_the_events_of_an_answered_and_of_an_abandoned_call():
    plan = plan_of(agents=("ann@corp.example", "bob@corp.example"), seed=5)
    simulated = day_simulate(plan)
    answered = next(c for c in simulated.calls if c.answered_us is not None and c.wait_us > 0)
    abandoned = next(c for c in simulated.calls if c.abandoned_us is not None)
    numbers = {"direction": "in", "to": "+442079460000"}
    assert call_events(plan, answered) == [
        {
            "event": "newCall",
            "call_id": answered.call_id,
            **numbers,
            "from": answered.caller,
            "user": ["ann@corp.example", "bob@corp.example"],
            "at": plan.instant_text(answered.requested_us),
        },
        {
            "event": "answer",
            "call_id": answered.call_id,
            **numbers,
            "from": answered.caller,
            "user": [answered.agent],
            "answering_user": answered.agent,
            "at": plan.instant_text(answered.answered_us),
        },
        {
            "event": "hangup",
            "call_id": answered.call_id,
            **numbers,
            "from": answered.caller,
            "cause": "normalClearing",
            "at": plan.instant_text(answered.ended_us),
        },
    ]
    assert [(e["event"], e.get("cause")) for e in call_events(plan, abandoned)] == [
        ("newCall", None),
        ("hangup", "cancel"),
    ]
    # ISO 8601 with Dublin's offset (no summer time in March 2 yet), to the millisecond.
    assert call_events(plan, abandoned)[1]["at"].endswith("+00:00")
    assert datetime.fromisoformat(call_events(plan, abandoned)[1]["at"]) == from_epoch_us(abandoned.abandoned_us)
    instants = [datetime.fromisoformat(e["at"]) for e in simulated.events]
    assert instants == sorted(instants)
    assert len(simulated.events) == 3 * len(simulated.calls) - sum(1 for c in simulated.calls if c.abandoned_us)
    assert all(e["from"].startswith("+447700900") for e in simulated.events)


# --- the figures -------------------------------------------------------------------------


def test_the_figures_of_the_worked_example_of_the_metrics_document():
    """docs/metrics.md#example-service-level, on the phone: T = 30 s, S = 5 s, after-call work none."""
    plan = plan_of(threshold_seconds=30, short_abandon_seconds=5, agents=("ann@corp.example",), opens=9 * 60)
    start = plan.opens_us
    calls = []
    for index, wait in enumerate((8, 12, 25, 30, 45, 70)):
        requested = start + index * 1000 * US
        calls.append(
            replace(
                _call(index, 0, handle=100),
                requested_us=requested,
                answered_us=requested + wait * US,
                ended_us=requested + wait * US + 100 * US,
                agent="ann@corp.example",
            )
        )
    for index, wait in enumerate((3, 20, 50, 90), start=6):
        requested = start + index * 1000 * US
        calls.append(replace(_call(index, 0, handle=1), requested_us=requested, abandoned_us=requested + wait * US))
    figures = day_figures(plan, calls)
    assert figures["live"]["phone"] == {
        "offered": 10,
        "answered": 6,
        "abandoned": 4,
        "short_abandoned": 1,
        "service_level": 0.5,
        "service_level_offered": 0.4,
        "service_level_positive": 0.6,
        "service_level_answered": 0.6667,
        "service_level_excluding_short": 0.4444,
        "asa_seconds": 31.67,
        "abandonment_rate": 0.3333,
        "abandonment_rate_raw": 0.4,
        "aht_seconds": 100.0,
        "threshold_seconds": 30,
    }
    # 600 busy seconds in 9 ready hours (09:00-18:00).
    assert figures["occupancy"] == {"team": 0.0185, "by_agent": {"ann@corp.example": 0.0185}}


def test_busy_time_is_cut_at_the_end_of_the_day():
    plan = plan_of(opens=23 * 60, closes=24 * 60, agents=("ann@corp.example",))
    late = replace(
        _call(0, 0, handle=7200),
        requested_us=plan.closes_us - 600 * US,
        answered_us=plan.closes_us - 600 * US,
        ended_us=plan.closes_us + 6600 * US,
        agent="ann@corp.example",
    )
    figures = day_figures(plan, [late])
    assert figures["live"]["phone"]["aht_seconds"] == 7200.0
    assert figures["occupancy"]["team"] == round(600 / 3600, 4)


def test_callers_from_a_pool_of_numbers_call_again():
    figures = day_simulate(plan_of(callers=200)).figures["callers"]
    offered = day_simulate(plan_of(callers=200)).figures["live"]["phone"]["offered"]
    assert figures["numbers"] <= 200
    assert figures["called_again"] > 50
    assert figures["numbers"] + figures["repeat_calls"] == offered


def test_erlang_c_beside_it_is_the_metrics_documents_first_row():
    assert erlang_prediction(calls_per_hour=24, aht_seconds=300, agents=4, threshold_seconds=20) == {
        "load": 2.0,
        "probability_wait": 0.1739,
        "service_level": 0.8478,
        "asa_seconds": 26.09,
        "occupancy": 0.5,
    }
    # More load than agents: everyone waits, without end.
    assert erlang_prediction(calls_per_hour=60, aht_seconds=300, agents=4, threshold_seconds=20)["asa_seconds"] is None


def test_callers_who_never_give_up_meet_erlang_cs_prediction():
    waits = []
    for offset in range(30):
        plan = plan_of(day=date(2026, 1, 1) + timedelta(days=offset), opens=0, closes=24 * 60, patience_seconds=None)
        waits += [c.wait_us / US for c in day_simulate(plan).calls]
    predicted = erlang_prediction(calls_per_hour=40, aht_seconds=300, agents=5, threshold_seconds=20)
    assert len(waits) > 28_000
    assert abs(sum(1 for w in waits if w > 0) / len(waits) - predicted["probability_wait"]) < 0.02
    assert abs(sum(1 for w in waits if w <= 20) / len(waits) - predicted["service_level"]) < 0.02
    assert abs(sum(waits) / len(waits) - predicted["asa_seconds"]) < 6


# --- the command without a desk ------------------------------------------------------------


@pytest.mark.django_db
def test_a_dry_run_prints_the_figures_of_the_first_active_agents_and_posts_nothing():
    AgentFactory(username="zed", is_active=False)
    AgentFactory(username="max", role="manager")
    AgentFactory(username="ann")
    AgentFactory(username="bob")
    AgentFactory(username="cid")
    calendar_make("kolkata", ZONE)
    out = io.StringIO()
    call_command(
        "simulate_calls",
        "--date=2026-03-02",
        "--hours=09:00-12:00",
        "--calls-per-hour=12",
        "--aht=300",
        "--agents=2",
        "--patience=60",
        "--dry-run",
        "--json",
        "--url=http://127.0.0.1:9/",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    expected = day_simulate(
        DayPlan(
            day=date(2026, 3, 2),
            time_zone=ZONE,
            opens=9 * 60,
            closes=12 * 60,
            calls_per_hour=12,
            aht_seconds=300,
            patience_seconds=60,
            agents=AGENTS,
            seed=1,
            callers=72,
            threshold_seconds=20,
            short_abandon_seconds=5,
        )
    )
    assert printed["agents"] == list(AGENTS)
    assert printed["time_zone"] == ZONE
    assert printed["posted"] is None
    assert printed["events"] == len(expected.events)
    assert {key: printed[key] for key in expected.figures} == expected.figures
    assert Call.objects.count() == 0

    human = io.StringIO()
    call_command(
        "simulate_calls",
        "--date=2026-03-02",
        "--hours=09:00-12:00",
        "--calls-per-hour=12",
        "--aht=300",
        "--agents=2",
        "--patience=60",
        "--dry-run",
        stdout=human,
    )
    text = human.getvalue()
    phone = expected.figures["live"]["phone"]
    assert f"Calls offered: {phone['offered']}\n" in text
    assert f"Average speed of answer: {phone['asa_seconds']:.2f} s\n" in text
    assert "Erlang C for the same load (1 erlangs; its callers never give up):" in text
    assert "  Probability of waiting: 33.33 %\n" in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--agents=3"], "has 2 active agents with an email address, fewer than --agents 3"),
        (["--agent-emails=a@x.example,A@x.example"], "names an agent twice"),
        (["--agents=3", "--agent-emails=a@x.example"], "--agents 3 but --agent-emails names 1 agents"),
        (["--agents=2", "--hours=18:00-08:00"], "--hours must be two times of the day"),
        (["--agents=2", "--time-zone=Mars/Olympus"], "--time-zone must be an IANA zone"),
        (["--agents=2", "--url=ftp://desk.example"], "--url must be the desk's http or https address"),
        (["--agents=2", "--secret="], "Give --secret, or set SD_PHONE_WEBHOOK_SECRET"),
        (["--agents=2", "--date=2099-01-01", "--secret=s"], "after now: choose a date whose calls are all over"),
    ],
)
def test_the_command_refuses_what_it_cannot_simulate(arguments, message, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": ""}
    AgentFactory(username="ann")
    AgentFactory(username="bob")
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command(
            "simulate_calls",
            "--date=2026-03-02",
            "--calls-per-hour=12",
            "--aht=300",
            "--patience=60",
            "--url=http://127.0.0.1:9",
            *arguments,
            stdout=io.StringIO(),
        )
    assert Call.objects.count() == 0


# --- end to end: a running desk, its webhook, its worker, its report ------------------------


@dataclass
class Desk:
    url: str
    env: dict[str, str]
    log: Path
    worker: WorkerProcess | None = None

    def simulate(self, arguments: list[str]) -> dict[str, Any]:
        """``simulate_calls`` with ``arguments`` and ``--json``: its figures; a refusal fails with the desk's log."""
        out = io.StringIO()
        try:
            call_command("simulate_calls", *arguments, "--json", stdout=out)
        except CommandError as exc:
            pytest.fail(f"{exc}\nThe desk's log:\n{self.log.read_text(errors='replace')[-4000:]}")
        return json.loads(out.getvalue())


DESK_SETTINGS = {"SD_PHONE_WEBHOOK_SECRET": SECRET, "CELERY_TASK_ALWAYS_EAGER": "false"}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """``python -m servicedesk.serve`` on a free port, serving the test database; its broker and cache
    files of its own (no Redis): nothing else sees its tasks."""
    env = desk_env(tmp_path, redis_url=None, **DESK_SETTINGS)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "channel_layer", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    server, port, log = serve(tmp_path, "desk", redis_url=None, **DESK_SETTINGS)
    try:
        yield Desk(url=f"http://127.0.0.1:{port}", env=env, log=log)
    finally:
        stop(server)


@pytest.fixture
def desk_with_worker(desk: Desk, tmp_path: Path) -> Iterator[Desk]:
    """The desk and a Celery worker sharing its broker (files in the desk's folder)."""
    worker = WorkerProcess(env=desk.env, queue="celery", log_path=tmp_path / "worker.log")
    try:
        worker.wait_for_log(" ready.", timeout=60)
        desk.worker = worker
        yield desk
    finally:
        worker.stop()


def _api(desk: Desk, token: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        path if path.startswith("http") else desk.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _covers_every_case(plan: DayPlan) -> bool:
    """Answers within and after the threshold; short abandons, abandons within and after it; a caller twice."""
    simulated = day_simulate(plan)
    t, s = plan.threshold_seconds * US, plan.short_abandon_seconds * US
    answered = [c.wait_us for c in simulated.calls if c.answered_us is not None]
    abandoned = [c.wait_us for c in simulated.calls if c.abandoned_us is not None]
    return (
        any(w <= t for w in answered)
        and any(w > t for w in answered)
        and any(w < s for w in abandoned)
        and any(s <= w <= t for w in abandoned)
        and any(w > t for w in abandoned)
        and simulated.figures["callers"]["called_again"] > 0
        and {c.agent for c in simulated.calls} >= set(plan.agents)
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_report_of_the_simulated_day_equals_the_simulators_figures(desk_with_worker: Desk):
    desk = desk_with_worker
    AgentFactory(username="zed", is_active=False)
    manager = AgentFactory(username="max", role="manager")
    agents = [AgentFactory(username="ann"), AgentFactory(username="bob")]
    AgentFactory(username="cid")
    calendar_make("kolkata", ZONE)
    token = Token.objects.create(user=manager).key
    # A recent day (the desk takes events up to 400 days old), in the calendar's zone.
    day = timezone.now().astimezone(ZoneInfo(ZONE)).date() - timedelta(days=3)
    base = DayPlan(
        day=day,
        time_zone=ZONE,
        opens=3 * 60,
        closes=6 * 60,
        calls_per_hour=12,
        aht_seconds=300,
        patience_seconds=60,
        agents=AGENTS,
        seed=1,
        callers=72,
        threshold_seconds=20,
        short_abandon_seconds=5,
    )
    # 03:00-06:00 in Kolkata is 21:30-00:30 UTC: the calls of one local date ring on two UTC dates.
    plan = next(replace(base, seed=seed) for seed in range(1, 500) if _covers_every_case(replace(base, seed=seed)))
    # The agents are ready over the opening hours, as the simulator's occupancy takes them.
    for agent in agents:
        for at, state in ((plan.opens_us, PresenceState.READY), (plan.closes_us, PresenceState.OFFLINE)):
            agent_presence_record(agent=agent, at=from_epoch_us(at), state=state, source=PresenceSource.IMPORT)
    arguments = [
        f"--date={day.isoformat()}",
        "--hours=03:00-06:00",
        "--calls-per-hour=12",
        "--aht=300",
        "--agents=2",
        "--patience=60",
        f"--seed={plan.seed}",
        f"--url={desk.url}",
        f"--secret={SECRET}",
    ]
    simulated = desk.simulate(arguments)
    assert simulated["time_zone"] == ZONE
    assert simulated["agents"] == list(AGENTS)
    assert {key: simulated[key] for key in ("live", "occupancy", "callers")} == day_simulate(plan).figures
    assert simulated["posted"] == {"stored": simulated["events"], "duplicate": 0}
    assert CallEvent.objects.count() == simulated["events"]
    # Every call folded from its events (in the request here; by a worker where the desk has Redis).
    wait_until(lambda: not CallEvent.objects.filter(call__isnull=True).exists(), timeout=60, what="every call folded")
    assert Session.objects.filter(channel=SessionChannel.PHONE).count() == simulated["live"]["phone"]["offered"]

    job = _api(
        desk, token, "/api/v1/reports/", {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
    )

    def finished() -> dict[str, Any] | None:
        found = _api(desk, token, job["url"])
        return found if found["status"] in ("done", "failed") else None

    done = wait_until(finished, timeout=120, what=f"report job {job['id']}")
    assert done["status"] == "done", f"{done['error']}\n{desk.worker.log[-4000:] if desk.worker else ''}"
    report = done["result"]
    assert report["period"]["timezone"] == ZONE
    assert report["live"]["phone"] == simulated["live"]["phone"]
    assert report["occupancy"] == simulated["occupancy"]
    assert report["live"]["chat"]["offered"] == 0

    # The same day posted again is the same events: nothing changes.
    assert desk.simulate(arguments)["posted"] == {"stored": 0, "duplicate": simulated["events"]}
    assert CallEvent.objects.count() == simulated["events"]
    assert Session.objects.filter(channel=SessionChannel.PHONE).count() == simulated["live"]["phone"]["offered"]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_wrong_secret_stops_the_command_with_the_desks_answer_and_a_non_zero_exit(desk: Desk):
    day = timezone.now().date() - timedelta(days=3)
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "simulate_calls",
            f"--date={day.isoformat()}",
            "--hours=09:00-10:00",
            "--time-zone=UTC",
            "--calls-per-hour=30",
            "--aht=300",
            "--patience=60",
            "--agent-emails=ann@corp.example",
            f"--url={desk.url}",
            "--secret=not-the-lines-secret",
        ],
        cwd=REPO_ROOT,
        env=desk.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "The desk refused the newCall event of call sim-" in stderr
    assert "HTTP 401" in stderr
    assert "Check --secret" in stderr
    assert "were posted before the run stopped." in stderr
    assert done.stdout == b""
    assert Call.objects.count() == 0
    assert CallEvent.objects.count() == 0
