"""Erlang C staffing arithmetic (docs/metrics.md#erlang-c). Pure functions, no database.

Load A = arrival rate x AHT (in Erlangs). With N agents:

- Erlang B by the recursion B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1)),
  stable for any size (no factorials);
- probability of waiting C = N B(N) / (N - A (1 - B(N))), for N > A;
- service level SL(t) = 1 - C exp(-(N - A) t / AHT);
- average speed of answer ASA = C AHT / (N - A); occupancy A / N.

Agents needed = the smallest N > A with SL(t) >= target, raised until
A / N <= the maximum occupancy when one is set; scheduled agents =
ceil(N / (1 - shrinkage)). Without load (no arrivals) no agent is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Comparisons of a computed service level or occupancy with its target allow
# for the rounding of floating point: a value equal to its target is achieved.
_EPSILON = 1e-12


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability B(N) for N servers and load A (Erlangs)."""
    if servers < 0 or load < 0:
        raise ValueError("servers and load must not be negative")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def _erlang_c_from_b(servers: int, load: float, blocking: float) -> float:
    if servers <= load:
        return 1.0
    return servers * blocking / (servers - load * (1 - blocking))


def erlang_c(servers: int, load: float) -> float:
    """Probability that a contact waits, C(N, A); 1 when N <= A (the queue grows without end)."""
    return _erlang_c_from_b(servers, load, erlang_b(servers, load))


def service_level(servers: int, load: float, aht_seconds: float, threshold_seconds: float) -> float:
    """Fraction answered within ``threshold_seconds``: SL(t) = 1 - C exp(-(N - A) t / AHT); 0 when N <= A."""
    if servers <= load:
        return 0.0
    waits = erlang_c(servers, load)
    return 1 - waits * math.exp(-(servers - load) * threshold_seconds / aht_seconds)


def average_speed_of_answer(servers: int, load: float, aht_seconds: float) -> float:
    """ASA = C AHT / (N - A), in seconds; infinite when N <= A."""
    if servers <= load:
        return math.inf
    return erlang_c(servers, load) * aht_seconds / (servers - load)


def occupancy(servers: int, load: float) -> float:
    """A / N (0 without agents)."""
    return load / servers if servers else 0.0


def scheduled_agents(agents: int, shrinkage: float) -> int:
    """Agents to schedule so ``agents`` are available after shrinkage: ceil(N / (1 - shrinkage))."""
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage must be at least 0 and below 1")
    return math.ceil(agents / (1 - shrinkage) - _EPSILON)


@dataclass(frozen=True)
class Staffing:
    load: float
    agents: int
    scheduled: int
    service_level: float | None
    asa_seconds: float | None
    occupancy: float | None
    probability_wait: float | None


def agents_needed(
    *,
    arrivals_per_hour: float,
    aht_seconds: float,
    target_sl: float,
    threshold_seconds: float,
    shrinkage: float = 0.0,
    max_occupancy: float | None = None,
) -> Staffing:
    """The agents an interval needs for ``target_sl`` (a fraction) within ``threshold_seconds``.

    Errors: ValueError for a target outside (0, 1), a maximum occupancy outside
    (0, 1], a negative rate, or a load without a positive AHT.
    """
    if not 0 < target_sl < 1:
        raise ValueError("the target service level must be above 0 and below 1")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError("the maximum occupancy must be above 0 and at most 1")
    if arrivals_per_hour < 0 or aht_seconds < 0 or threshold_seconds < 0:
        raise ValueError("arrivals, AHT and threshold must not be negative")
    load = arrivals_per_hour * aht_seconds / 3600
    if load == 0:
        return Staffing(
            load=0.0, agents=0, scheduled=0, service_level=None, asa_seconds=None, occupancy=None, probability_wait=None
        )
    servers = math.floor(load)
    blocking = erlang_b(servers, load)
    while True:
        servers += 1
        blocking = load * blocking / (servers + load * blocking)
        if servers <= load:
            continue
        waits = _erlang_c_from_b(servers, load, blocking)
        level = 1 - waits * math.exp(-(servers - load) * threshold_seconds / aht_seconds)
        if level >= target_sl - _EPSILON:
            break
    if max_occupancy is not None:
        servers = max(servers, math.ceil(load / max_occupancy - _EPSILON))
    waits = erlang_c(servers, load)
    return Staffing(
        load=load,
        agents=servers,
        scheduled=scheduled_agents(servers, shrinkage),
        service_level=service_level(servers, load, aht_seconds, threshold_seconds),
        asa_seconds=waits * aht_seconds / (servers - load),
        occupancy=load / servers,
        probability_wait=waits,
    )
