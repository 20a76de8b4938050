"""The staffing forecast's week grid (docs/metrics.md#staffing), across a DST change."""

from datetime import UTC, datetime, timedelta

import pytest

from reports.staffing import staffing_forecast
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Session
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db

# Dublin: summer time (UTC+1) until 2025-10-26 01:00 UTC, then UTC+0. Two weeks of local dates,
# 2025-10-20 (Mon) to 2025-11-03 (Mon, exclusive).
START = datetime(2025, 10, 19, 23, 0, tzinfo=UTC)
END = datetime(2025, 11, 3, 0, 0, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0, second: float = 0) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


@pytest.fixture
def history():
    customer, agent = CustomerFactory(), AgentFactory()
    rows = []

    def answered(requested, handle_seconds, channel="chat"):
        answered_at = requested + timedelta(seconds=10)
        rows.append(
            Session(
                channel=channel,
                customer=customer,
                agent=agent,
                requested_at=requested,
                answered_at=answered_at,
                ended_at=answered_at + timedelta(seconds=handle_seconds - 60),
                after_work_seconds=60,
            )
        )

    def abandoned(requested, wait):
        rows.append(
            Session(
                channel="chat",
                customer=customer,
                requested_at=requested,
                abandoned_at=requested + timedelta(seconds=wait),
            )
        )

    # Monday 09:00-10:00 local: 08:xx UTC in week 1 (summer time), 09:xx UTC in week 2.
    for i in range(24):
        answered(utc(20, 8, 2 * i), 300)
    for i in range(23):
        answered(utc(27, 9, 2 * i), 300)
    abandoned(utc(27, 9, 50), 5)  # waited 5 s: not short, an arrival
    abandoned(utc(27, 9, 52), 4.999)  # short abandon: left out
    answered(utc(27, 9, 54), 120, channel="phone")  # another channel
    # Monday 08:59:59 local in week 2 (08:59:59 UTC): hour 8, not 9.
    answered(utc(27, 8, 59, 59), 600)
    # Sunday 01:30 local twice (the hour repeats when the clocks go back): 00:30 and 01:30 UTC.
    abandoned(utc(26, 0, 30), 60)
    abandoned(utc(26, 1, 30), 60)
    # Outside the range: Sunday 2025-10-19 23:59 local (22:59 UTC) and Monday 2025-11-03 00:00.
    answered(utc(19, 22, 59), 300)
    answered(datetime(2025, 11, 3, tzinfo=UTC), 300)
    Session.objects.bulk_create(rows)


def test_week_grid(history):
    calendar = BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin")
    grid = staffing_forecast(
        start_utc=START,
        end_utc=END,
        calendar=calendar,
        channel="chat",
        target_sl=0.8,
        threshold_seconds=20,
        shrinkage=0.3,
        weeks=2,
    )
    assert (grid["time_zone"], grid["weeks"], len(grid["days"])) == ("Europe/Dublin", 2, 7)
    assert [len(day["hours"]) for day in grid["days"]] == [24] * 7
    # Handled in the range: 47 x 300 s + 600 s = 14,700 s over 48 sessions.
    assert grid["aht_seconds"] == 306.25
    monday = grid["days"][0]["hours"]
    # 47 answered + 1 abandoned at 5 s = 48 arrivals in 2 weeks: 24 an hour; AHT 300 s -> A = 2.
    assert monday[9] == {
        "hour": 9,
        "arrivals_per_hour": 24.0,
        "aht_seconds": 300.0,
        "load": 2.0,
        "agents": 4,
        "scheduled": 6,
        "service_level": 0.8478,
        "asa_seconds": 26.09,
        "occupancy": 0.5,  # ASA = 4/23 x 300 / 2
    }
    # 1 arrival in 2 weeks, AHT 600 s: A = 1/12; 1 agent, C = A, SL = 1 - A exp(-(1 - A) 20 / 600).
    assert monday[8] == {
        "hour": 8,
        "arrivals_per_hour": 0.5,
        "aht_seconds": 600.0,
        "load": 0.0833,
        "agents": 1,
        "scheduled": 2,
        "service_level": 0.9192,
        "asa_seconds": 54.55,
        "occupancy": 0.0833,
    }
    # Sunday 01h: 2 arrivals, none handled: the range's AHT (306.25 s), A = 0.0851.
    assert grid["days"][6]["hours"][1] == {
        "hour": 1,
        "arrivals_per_hour": 1.0,
        "aht_seconds": None,
        "load": 0.0851,
        "agents": 1,
        "scheduled": 2,
        "service_level": 0.9199,
        "asa_seconds": 28.47,
        "occupancy": 0.0851,
    }
    busy = {
        (day["weekday"], cell["hour"]) for day in grid["days"] for cell in day["hours"] if cell["arrivals_per_hour"]
    }
    assert busy == {(0, 8), (0, 9), (6, 1)}
    assert grid["days"][2]["hours"][12] == {
        "hour": 12,
        "arrivals_per_hour": 0.0,
        "aht_seconds": None,
        "load": None,
        "agents": 0,
        "scheduled": 0,
        "service_level": None,
        "asa_seconds": None,
        "occupancy": None,
    }


def test_maximum_occupancy_and_utc_grid(history):
    # Without a calendar the grid is in UTC: week 1's Monday sessions fall in 08h, week 2's in 09h.
    grid = staffing_forecast(
        start_utc=START,
        end_utc=END,
        calendar=None,
        channel="chat",
        target_sl=0.8,
        threshold_seconds=20,
        shrinkage=0.0,
        max_occupancy=0.3,
        weeks=2,
    )
    monday = grid["days"][0]["hours"]
    # 08h: 24 + 1 arrivals -> 12.5 an hour; 09h: 23 + 1 -> 12 an hour.
    assert (monday[8]["arrivals_per_hour"], monday[9]["arrivals_per_hour"]) == (12.5, 12.0)
    # 08h AHT (24 x 300 + 600) / 25 = 312 s, A = 12.5 x 312 / 3600 = 1.0833; 09h A = 12 x 300 / 3600 = 1.
    assert (monday[8]["aht_seconds"], monday[9]["aht_seconds"]) == (312.0, 300.0)
    # The service level alone needs 3 agents each; at most 30 % occupancy needs
    # ceil(1.0833 / 0.3) = 4 and ceil(1 / 0.3) = 4.
    assert (monday[8]["agents"], monday[9]["agents"]) == (4, 4)
    assert (monday[8]["occupancy"], monday[9]["occupancy"]) == (0.2708, 0.25)
    assert grid["days"][6]["hours"][0]["arrivals_per_hour"] == 0.5
    assert grid["days"][6]["hours"][1]["arrivals_per_hour"] == 0.5


def test_weeks_must_be_positive():
    with pytest.raises(ValueError):
        staffing_forecast(
            start_utc=START,
            end_utc=END,
            calendar=None,
            channel="chat",
            target_sl=0.8,
            threshold_seconds=20,
            shrinkage=0.0,
            weeks=0,
        )
