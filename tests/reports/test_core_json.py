"""The report as JSON: one literal that both databases must produce, byte for byte (docs/metrics.md#report-json).

Dublin calendar, Monday to Friday 09:00-17:00; Monday 20 October 2025 is IST
(UTC+1), so 09:00Z is 10:00 local, inside opening hours. As of 10:30Z:

* A, normal, created 09:00Z, replied 09:45Z: FRT 45 min (business and
  calendar), first reply achieved (45 <= 120); unsolved, new, RWT 90 <= 480:
  resolution active.
* B, created 10:00Z normal, raised to urgent at 10:10Z, no reply: the
  unfulfilled targets take the priority at as-of, urgent (30 and 240 calendar
  minutes). 30 minutes have elapsed, exactly the target: as-of is not past the
  due instant, so the first reply is active, not breached.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from reports.services import BREAKDOWNS, report_compute
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_priority_change
from tests.reports.test_core_report import dublin, opened, policy, reply  # noqa: F401

pytestmark = pytest.mark.django_db

CORE_KEYS = (
    "period",
    "as_of",
    "tickets",
    "first_reply_minutes",
    "full_resolution_minutes",
    "requester_wait_minutes",
    "sla",
    "definitions_version",
)
TICKET_KEYS = ("tickets", "first_reply_minutes", "full_resolution_minutes", "requester_wait_minutes", "sla")

NONE = '{"mean": null, "median": null, "n": 0, "p90": null}'
EMPTY = f'{{"business": {NONE}, "calendar": {NONE}}}'
FRT_45 = '{"business": {"mean": 45.0, "median": 45.0, "n": 1, "p90": 45.0}, "calendar": {"mean": 45.0, "median": 45.0, "n": 1, "p90": 45.0}}'


def sla(fr_achieved: int, fr_active: int, res_active: int, met: int, counted: int) -> str:
    fr_rate = "1.0" if fr_achieved else "null"
    met_rate = "1.0" if counted else "null"
    return (
        f'{{"all_targets": {{"achieved": {fr_achieved}, "breached": 0, "rate": {fr_rate}}}, '
        f'"first_reply": {{"achieved": {fr_achieved}, "active": {fr_active}, "breached": 0, "cancelled": 0, "rate": {fr_rate}}}, '
        f'"resolution": {{"achieved": 0, "active": {res_active}, "breached": 0, "paused": 0, "rate": null}}, '
        f'"tickets_meeting_all": {{"counted": {counted}, "met": {met}, "rate": {met_rate}}}}}'
    )


def figures(in_scope: int, frt: str, sla_text: str) -> str:
    return (
        f'{{"first_reply_minutes": {frt}, "full_resolution_minutes": {EMPTY}, "requester_wait_minutes": {EMPTY}, '
        f'"sla": {sla_text}, '
        f'"tickets": {{"by_channel": {{"email": {in_scope}}}, "in_scope": {in_scope}, "merged": 0, "outbound": 0, "solved": 0}}}}'
    )


BOTH = figures(2, FRT_45, sla(1, 1, 2, 1, 1))
ONLY_A = figures(1, FRT_45, sla(1, 0, 1, 1, 1))
ONLY_B = figures(1, EMPTY, sla(0, 1, 1, 0, 0))
EXPECTED = (
    '{"as_of": "2025-10-20T10:30:00Z", '
    f'"by_agent": {{"": {BOTH}}}, "by_channel": {{"email": {BOTH}}}, '
    f'"by_priority": {{"normal": {ONLY_A}, "urgent": {ONLY_B}}}, '
    f'"by_queue": {{"support": {BOTH}}}, "by_tier": {{"": {BOTH}}}, '
    '"definitions_version": "2026-11-2", '
    f'"first_reply_minutes": {FRT_45}, "full_resolution_minutes": {EMPTY}, '
    '"period": {"calendar": "dublin", "end": "2025-10-21", "start": "2025-10-20", "timezone": "Europe/Dublin"}, '
    f'"requester_wait_minutes": {EMPTY}, "sla": {sla(1, 1, 2, 1, 1)}, '
    '"tickets": {"by_channel": {"email": 2}, "in_scope": 2, "merged": 0, "outbound": 0, "solved": 0}}'
)


def test_report_json_is_the_same_literal_on_every_database(policy, queue, agent, customer):  # noqa: F811
    a = opened(customer, queue, datetime(2025, 10, 20, 9, tzinfo=UTC))
    reply(a, agent, datetime(2025, 10, 20, 9, 45, tzinfo=UTC))
    b = opened(customer, queue, datetime(2025, 10, 20, 10, tzinfo=UTC))
    ticket_priority_change(
        ticket=b, priority="urgent", actor=Actor.system(), at=datetime(2025, 10, 20, 10, 10, tzinfo=UTC)
    )
    report = report_compute(
        start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=datetime(2025, 10, 20, 10, 30, tzinfo=UTC)
    )
    core = {key: report[key] for key in CORE_KEYS}
    for breakdown in BREAKDOWNS.values():
        core[breakdown] = {
            key: {name: value for name, value in group.items() if name in TICKET_KEYS}
            for key, group in report[breakdown].items()
        }
    assert json.dumps(core, sort_keys=True) == EXPECTED
