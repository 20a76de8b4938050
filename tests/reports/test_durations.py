"""Duration summaries (docs/metrics.md#summaries) from a facts table written by hand.

The table has the columns ``ticket_durations`` reads; the values are chosen so
that n, the middle ranks and the p90 rank ((9 n + 9) / 10) are easy to check:
n = 1, 2, 7, 10 and 70 (0.9 * 70 = 63: p90 is the 63rd value, not the 64th).
The same expectations hold on PostgreSQL (sorted arrays) and SQLite
(ROW_NUMBER); on PostgreSQL both queries also run on one larger table.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection

from reports.metrics import minutes
from reports.metrics.facts import DIMENSIONS, Facts
from reports.metrics.tickets import DURATIONS, _durations_by_arrays, _durations_by_ranks, ticket_durations

pytestmark = pytest.mark.django_db

MINUTE = 60_000_000
KEYS = [column for name, column in DIMENSIONS.items() if name]
METRICS = [column for pair in DURATIONS.values() for column in pair]
# (scope, {key column: value}, {metric column: microseconds or None})
Row = tuple[str, dict[str, str], dict[str, int | None]]


@pytest.fixture
def facts_table() -> Iterator[Callable[[list[Row]], Facts]]:
    """A temporary facts table filled with the given rows; the requester wait columns NUMERIC as in the real one."""
    tables: list[str] = []

    def make(rows: list[Row]) -> Facts:
        table = f"test_facts_{uuid.uuid4().hex[:12]}"
        tables.append(table)
        columns = (
            ["scope TEXT"]
            + [f"{key} TEXT" for key in KEYS]
            + [f"{metric} {'NUMERIC' if metric.startswith('requester_wait') else 'BIGINT'}" for metric in METRICS]
        )
        names = ["scope", *KEYS, *METRICS]
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {table} ({', '.join(columns)})")
            cursor.executemany(
                # Table and column names are the test's own; the values are parameters.
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",  # noqa: S608
                [
                    [scope] + [keys.get(key, "") for key in KEYS] + [values.get(metric) for metric in METRICS]
                    for scope, keys, values in rows
                ],
            )
        return Facts(table=table, as_of=datetime(2026, 1, 1, tzinfo=UTC))

    yield make
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DROP TABLE {table}")


def summary(values: list[int]) -> dict:
    """The definition, in Python: mean, median (mean of the two middle values for even n), ceil(0.9 n)-th value."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return {"n": 0, "mean": None, "median": None, "p90": None}
    low, high = ordered[(n + 1) // 2 - 1], ordered[(n + 2) // 2 - 1]
    median = minutes(low) if n % 2 else minutes(low + high, 2)
    return {"n": n, "mean": minutes(sum(ordered), n), "median": median, "p90": minutes(ordered[(9 * n + 9) // 10 - 1])}


def expected(rows: list[Row]) -> dict:
    """ticket_durations' answer computed row by row: in-scope rows, non-null values, keys with some value."""
    groups: dict[tuple[str | None, str], dict[str, list[int]]] = {}
    for scope, keys, values in rows:
        if scope != "in":
            continue
        for name, column in DIMENSIONS.items():
            key = keys.get(column, "") if name else ""
            for metric in METRICS:
                if values.get(metric) is not None:
                    groups.setdefault((name, key), {}).setdefault(metric, []).append(values[metric])
    result: dict = {name: {} for name in DIMENSIONS}
    for (name, key), by_metric in groups.items():
        result[name][key] = {
            figure: {"business": summary(by_metric.get(b, [])), "calendar": summary(by_metric.get(c, []))}
            for figure, (b, c) in DURATIONS.items()
        }
    return result


def first_reply(channel: str, minute_values: list[int], **keys: str) -> list[Row]:
    """In-scope tickets of a channel replied after the given minutes (business), plus 30 s (calendar)."""
    return [
        (
            "in",
            {"channel": channel, **keys},
            {"first_reply_business_us": m * MINUTE, "first_reply_calendar_us": m * MINUTE + 30_000_000},
        )
        for m in minute_values
    ]


def hand_worked_rows() -> list[Row]:
    shuffled = list(range(1, 71))
    random.Random(7).shuffle(shuffled)
    return [
        *first_reply("email", [7], queue_key="billing"),
        *first_reply("chat", [8, 3], queue_key="billing"),
        *first_reply("web", [10, 1, 9, 2, 8, 3, 7, 4, 6, 5], queue_key="support"),
        *first_reply("phone", shuffled, queue_key="support"),
        *first_reply("forum", [64, 1, 32, 2, 16, 4, 8], queue_key="support"),
        # Not counted: outbound and merged tickets, and a ticket without any duration.
        (
            "outbound",
            {"channel": "email", "queue_key": "billing"},
            {"first_reply_business_us": 1000 * MINUTE, "first_reply_calendar_us": 1000 * MINUTE},
        ),
        (
            "merged",
            {"channel": "sms", "queue_key": "merged"},
            {"first_reply_business_us": MINUTE, "first_reply_calendar_us": MINUTE},
        ),
        ("in", {"channel": "letter", "queue_key": "billing"}, {}),
        # Solved tickets: resolution and requester wait, to the microsecond.
        (
            "in",
            {"channel": "email", "queue_key": "billing"},
            {
                "full_resolution_business_us": 1,
                "full_resolution_calendar_us": 3,
                "requester_wait_business_us": 1,
                "requester_wait_calendar_us": 999_999,
            },
        ),
        (
            "in",
            {"channel": "email", "queue_key": "billing"},
            {
                "full_resolution_business_us": 2,
                "full_resolution_calendar_us": 4,
                "requester_wait_business_us": 2,
                "requester_wait_calendar_us": 1_999_999,
            },
        ),
    ]


def test_median_and_p90_of_even_and_odd_counts_by_hand(facts_table):
    result = ticket_durations(facts_table(hand_worked_rows()))

    def frt(breakdown: str | None, key: str) -> dict:
        return result[breakdown][key]["first_reply_minutes"]

    assert frt("channel", "email")["business"] == {"n": 1, "mean": 7.0, "median": 7.0, "p90": 7.0}
    # n = 2: the median is the mean of both; p90 is the 2nd value ((9 * 2 + 9) / 10 = 2).
    assert frt("channel", "chat")["business"] == {"n": 2, "mean": 5.5, "median": 5.5, "p90": 8.0}
    assert frt("channel", "chat")["calendar"] == {"n": 2, "mean": 6.0, "median": 6.0, "p90": 8.5}
    # n = 10: 5th and 6th values; p90 the 9th.
    assert frt("channel", "web")["business"] == {"n": 10, "mean": 5.5, "median": 5.5, "p90": 9.0}
    # n = 70: 35th and 36th values; p90 the 63rd (ceil(0.9 * 70) = 63, not 64).
    assert frt("channel", "phone")["business"] == {"n": 70, "mean": 35.5, "median": 35.5, "p90": 63.0}
    assert frt("channel", "phone")["calendar"] == {"n": 70, "mean": 36.0, "median": 36.0, "p90": 63.5}
    # n = 7: the 4th value; p90 the 7th ((63 + 9) / 10 = 7); mean 127 / 7 = 18.142...
    assert frt("channel", "forum")["business"] == {"n": 7, "mean": 18.14, "median": 8.0, "p90": 64.0}
    # The queues and the cohort: 3 + 87 and 90 replies (the cohort's median: the 45th and 46th values).
    assert frt("queue", "billing")["business"] == {"n": 3, "mean": 6.0, "median": 7.0, "p90": 8.0}
    assert frt("queue", "support")["business"]["n"] == 87
    assert frt(None, "")["business"]["n"] == 90
    assert frt(None, "")["business"] == summary(
        [values["first_reply_business_us"] for _s, _k, values in hand_worked_rows()[:90]]
    )
    # Sums to the microsecond: (999,999 + 1,999,999) / 2 us is 0.02499... min, rounded to 0.02.
    waits = result["channel"]["email"]["requester_wait_minutes"]
    assert waits["calendar"] == {"n": 2, "mean": 0.02, "median": 0.02, "p90": 0.03}
    assert waits["business"] == {"n": 2, "mean": 0.0, "median": 0.0, "p90": 0.0}
    # A key with in-scope tickets but no duration, or only tickets out of scope, has no entry.
    assert set(result["channel"]) == {"email", "chat", "web", "phone", "forum"}
    assert result == expected(hand_worked_rows())


def test_every_group_matches_the_definition_with_ties_nulls_and_remainders(facts_table):
    rows = random_rows(random.Random(2026), 600)
    assert ticket_durations(facts_table(rows)) == expected(rows)


def test_postgresql_arrays_and_ranks_give_the_same_integers(postgres_only, facts_table):
    # The array query is PostgreSQL's: the test fails (never skips) elsewhere.
    facts = facts_table(random_rows(random.Random(15), 3000))
    assert sorted(_durations_by_arrays(facts.table)) == sorted(_durations_by_ranks(facts.table))


def random_rows(rng: random.Random, count: int) -> list[Row]:
    """Tickets over a few keys per breakdown, with ties (whole minutes), remainders and missing values."""
    choices = {
        "channel": ["email", "chat", "web", "phone"],
        "queue_key": ["billing", "support", "sales"],
        "agent_key": ["", "ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"],
        "priority_key": ["low", "normal", "high", "urgent"],
        "tier_key": ["", "gold", "silver"],
    }

    def value() -> int | None:
        roll = rng.random()
        if roll < 0.2:
            return None
        if roll < 0.6:
            return rng.randrange(0, 30) * MINUTE
        return rng.randrange(0, 10 * 24 * 60 * MINUTE)

    rows: list[Row] = []
    for _ in range(count):
        scope = rng.choice(["in"] * 8 + ["outbound", "merged"])
        keys = {column: rng.choice(choices.get(column, [""])) for column in KEYS}
        rows.append((scope, keys, {metric: value() for metric in METRICS}))
    return rows
