"""Erlang C (docs/metrics.md#erlang-c): the worked values, and properties."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.erlang import (
    agents_needed,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    occupancy,
    scheduled_agents,
    service_level,
)


def test_worked_value_24_per_hour_aht_300():
    # A = 24 / 3600 x 300 = 2 Erlangs. B(1) = 2/3, B(2) = 2/5, B(3) = 4/19, B(4) = 2/21.
    assert erlang_b(4, 2.0) == pytest.approx(2 / 21)
    # C(4) = 4 (2/21) / (4 - 2 (19/21)) = (8/21) / (46/21) = 4/23.
    assert erlang_c(4, 2.0) == pytest.approx(4 / 23)
    # SL(20) = 1 - 4/23 exp(-2 x 20 / 300) = 0.8478. With 3 agents: C = 3 (4/19) / (3 - 2 (15/19))
    # = 12/27 = 4/9, SL = 1 - 4/9 exp(-20 / 300) = 0.5842 < 0.8, so 3 are too few.
    assert service_level(4, 2.0, 300, 20) == pytest.approx(1 - 4 / 23 * math.exp(-40 / 300))
    assert service_level(3, 2.0, 300, 20) == pytest.approx(1 - 4 / 9 * math.exp(-20 / 300))
    result = agents_needed(arrivals_per_hour=24, aht_seconds=300, target_sl=0.8, threshold_seconds=20, shrinkage=0.3)
    assert result.agents == 4
    assert result.service_level is not None
    assert round(result.service_level, 4) == 0.8478
    assert result.scheduled == 6  # ceil(4 / 0.7) = ceil(5.71)
    assert result.occupancy == 0.5
    assert result.asa_seconds == pytest.approx(4 / 23 * 300 / 2)  # C AHT / (N - A) = 26.09 s
    assert average_speed_of_answer(4, 2.0, 300) == pytest.approx(result.asa_seconds)


def test_worked_value_48_erlangs():
    # A = 48, AHT 240 s: 720 contacts per hour.
    result = agents_needed(arrivals_per_hour=720, aht_seconds=240, target_sl=0.8, threshold_seconds=15)
    assert result.load == 48
    assert result.agents == 55
    assert result.service_level is not None
    assert round(result.service_level, 4) == 0.8459
    assert service_level(54, 48.0, 240, 15) < 0.8
    assert result.scheduled == 55


def test_maximum_occupancy_raises_the_agents():
    # 4 agents reach the service level at occupancy 2/4 = 0.5; at most 0.4 needs 5 (2/5).
    result = agents_needed(
        arrivals_per_hour=24, aht_seconds=300, target_sl=0.8, threshold_seconds=20, max_occupancy=0.4
    )
    assert (result.agents, result.occupancy) == (5, 0.4)
    # A maximum above what the service level gives changes nothing.
    assert (
        agents_needed(
            arrivals_per_hour=24, aht_seconds=300, target_sl=0.8, threshold_seconds=20, max_occupancy=0.9
        ).agents
        == 4
    )


def test_no_load_needs_no_agent():
    result = agents_needed(arrivals_per_hour=0, aht_seconds=300, target_sl=0.8, threshold_seconds=20, shrinkage=0.3)
    assert (result.agents, result.scheduled, result.service_level) == (0, 0, None)


def test_scheduled_agents_and_edges():
    assert scheduled_agents(4, 0.0) == 4
    assert scheduled_agents(7, 0.3) == 10  # 7 / 0.7 = 10 exactly, not 11
    assert occupancy(4, 2.0) == 0.5
    assert erlang_c(2, 2.0) == 1.0
    assert service_level(2, 2.0, 300, 20) == 0.0
    with pytest.raises(ValueError):
        scheduled_agents(4, 1.0)
    with pytest.raises(ValueError):
        agents_needed(arrivals_per_hour=24, aht_seconds=300, target_sl=1.0, threshold_seconds=20)


loads = st.floats(min_value=0.01, max_value=200, allow_nan=False)


@given(
    load=loads,
    extra=st.integers(min_value=1, max_value=60),
    aht=st.floats(min_value=10, max_value=3600),
    t=st.floats(min_value=0, max_value=600),
)
def test_service_level_increases_with_agents(load, extra, aht, t):
    servers = math.floor(load) + extra
    assert service_level(servers + 1, load, aht, t) >= service_level(servers, load, aht, t) - 1e-12


@given(load=loads, servers=st.integers(min_value=0, max_value=300))
def test_probability_of_waiting_is_a_probability(load, servers):
    assert 0 <= erlang_c(servers, load) <= 1
    assert 0 <= erlang_b(servers, load) <= 1


@given(
    rate=st.floats(min_value=0.1, max_value=2000),
    aht=st.floats(min_value=10, max_value=1800),
    target=st.floats(min_value=0.05, max_value=0.99),
    t=st.floats(min_value=0, max_value=300),
)
def test_agents_needed_is_the_smallest_meeting_the_target(rate, aht, target, t):
    result = agents_needed(arrivals_per_hour=rate, aht_seconds=aht, target_sl=target, threshold_seconds=t)
    assert result.agents > result.load
    assert result.service_level >= target - 1e-9
    if result.agents - 1 > result.load:
        assert service_level(result.agents - 1, result.load, aht, t) < target + 1e-9
