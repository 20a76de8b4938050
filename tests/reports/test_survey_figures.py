"""The surveys' response rate (docs/metrics.md#csat): rated / surveyed, by the survey's own agent, queue and channel.

The worked example of docs/metrics.md: four tickets surveyed; SD-1 rated 2,
then changed to 4; SD-2 rated 5; a third rated 3; the fourth got no answer:
response rate 3 / 4 = 0.75 (and CSAT 2 / 3).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest

from reports.services import report_compute
from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Queue, Survey, Ticket
from servicedesk.tickets.services.surveys import survey_answer, surveys_send
from servicedesk.tickets.services.tickets import ticket_assign, ticket_status_change
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SYSTEM = Actor.system()


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_the_worked_example_and_the_breakdowns_by_the_surveys_own_keys(queue: Queue) -> None:
    sales = cast(Queue, QueueFactory(slug="sales", name="Sales"))
    ann = cast(User, AgentFactory(username="ann", queues=[queue, sales]))
    bob = cast(User, AgentFactory(username="bob", queues=[queue, sales]))
    tickets: list[Ticket] = []
    for n, (owner, channel, where) in enumerate(
        [(ann, "email", queue), (ann, "chat", queue), (bob, "email", sales), (bob, "phone", sales)]
    ):
        ticket = ticket_make(customer=CustomerFactory(), queue=where, channel=channel, assignee=owner, at=h(n))
        ticket_status_change(ticket=ticket, status="solved", actor=SYSTEM, at=h(n + 1))
        tickets.append(ticket)
    # Surveyed an hour after each solve (the beat at h(6)), then answered.
    assert surveys_send(now=h(6)) == 4
    surveys = {s.ticket_id: s for s in Survey.objects.all()}
    first, second, third, _fourth = (surveys[t.pk] for t in tickets)
    survey_answer(survey=first, score=2, at=h(7))
    survey_answer(survey=first, score=4, at=h(8))
    survey_answer(survey=second, score=5, at=h(7))
    survey_answer(survey=third, score=3, at=h(30))
    # After the survey, SD-1 goes to bob: its survey stays ann's.
    ticket_assign(ticket=tickets[0], assignee=bob, actor=SYSTEM, at=h(9))

    report = report_compute(start=date(2025, 3, 3), end=date(2025, 3, 4), as_of=h(48))
    assert report["surveys"] == {"surveyed": 4, "rated": 3, "response_rate": 0.75}
    assert report["csat"] == {"satisfied": 2, "rated": 3, "rate": 0.6667, "mean": 4.0}
    assert {key: group["surveys"] for key, group in report["by_agent"].items()} == {
        "ann@corp.example": {"surveyed": 2, "rated": 2, "response_rate": 1.0},
        "bob@corp.example": {"surveyed": 2, "rated": 1, "response_rate": 0.5},
    }
    assert {key: group["surveys"]["response_rate"] for key, group in report["by_queue"].items()} == {
        "support": 1.0,
        "sales": 0.5,
    }
    assert {key: group["surveys"] for key, group in report["by_channel"].items()} == {
        "email": {"surveyed": 2, "rated": 2, "response_rate": 1.0},
        "chat": {"surveyed": 1, "rated": 1, "response_rate": 1.0},
        "phone": {"surveyed": 1, "rated": 0, "response_rate": 0.0},
    }
    assert "surveys" not in report["by_priority"]["normal"]

    # As of h(20): the third answer had not been given, and the surveys sent by then are all four.
    early = report_compute(start=date(2025, 3, 3), end=date(2025, 3, 4), as_of=h(20))
    assert early["surveys"] == {"surveyed": 4, "rated": 2, "response_rate": 0.5}
    # Before the beat surveyed anything: nothing surveyed, no rate.
    none = report_compute(start=date(2025, 3, 3), end=date(2025, 3, 4), as_of=h(5))
    assert none["surveys"] == {"surveyed": 0, "rated": 0, "response_rate": None}
