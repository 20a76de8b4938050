"""The staffing forecast page: the week grid from measured chats, managers only."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.tickets.models import Session
from servicedesk.tickets.services.sessions import sessions_record
from tests.factories import CustomerFactory
from tests.reports.delivery_helpers import calendar_make

pytestmark = pytest.mark.django_db


def test_the_grid_shows_the_worked_value_of_metrics_section_8(client, manager, agent):
    calendar = calendar_make("utc", "UTC")
    today = timezone.now().date()
    last_monday = today - timedelta(days=today.weekday()) - timedelta(weeks=1)
    ten = datetime(last_monday.year, last_monday.month, last_monday.day, 10, 0, tzinfo=timezone.get_fixed_timezone(0))
    customer = CustomerFactory()
    # 24 chats in Monday's 10:00 hour, answered at once and handled for 300 s each:
    # 24 contacts/h, AHT 300 s, 80 % within 20 s -> 4 agents; 30 % shrinkage -> ceil(4 / 0.7) = 6 scheduled.
    sessions_record(
        sessions=[
            Session(
                channel="chat",
                customer=customer,
                agent=agent,
                requested_at=ten + timedelta(minutes=2 * n),
                answered_at=ten + timedelta(minutes=2 * n),
                ended_at=ten + timedelta(minutes=2 * n, seconds=300),
                external_id=f"c{n}",
            )
            for n in range(24)
        ]
    )
    client.force_login(manager)
    # Captured queries are rendered with their parameters, as with DEBUG on.
    with CaptureQueriesContext(connection):
        page = client.get(
            "/desk/reports/staffing/",
            {
                "calendar": calendar.slug,
                "channel": "chat",
                "weeks": 1,
                "target": 80,
                "threshold": 20,
                "shrinkage": 30,
                "max_occupancy": "",
            },
        )
    assert page.status_code == 200
    grid = page.context["forecast"]
    monday_ten = grid["days"][0]["hours"][10]
    assert (monday_ten["agents"], monday_ten["scheduled"], monday_ten["service_level"]) == (4, 6, 0.8478)
    assert grid["days"][0]["hours"][11]["scheduled"] == 0
    assert "<strong>6</strong>" in page.content.decode()


def test_bad_inputs_show_field_errors_and_agents_are_refused(client, manager, agent):
    calendar_make("utc", "UTC")
    client.force_login(manager)
    page = client.get("/desk/reports/staffing/", {"weeks": 0, "target": 120})
    assert page.status_code == 400
    assert page.context["forecast"] is None
    assert set(page.context["form"].errors) == {"weeks", "target"}
    client.force_login(agent)
    assert client.get("/desk/reports/staffing/").status_code == 403


def test_the_inputs_start_from_the_measured_channel_and_weeks(client, manager, agent):
    from datetime import UTC

    from reports.staffing import staffing_defaults

    calendar_make("utc", "UTC")
    today = timezone.now().date()
    this_monday = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=today.weekday())
    empty = staffing_defaults(end_utc=this_monday, channels=("chat", "phone"))
    assert (empty.channel, empty.weeks, empty.sessions) == ("chat", 4, 0)

    customer = CustomerFactory()
    # Three calls on the Tuesday two weeks back, one chat ten weeks back: phone has more sessions, and
    # its first one is within the last two weeks.
    two_weeks_back = this_monday - timedelta(weeks=2) + timedelta(days=1, hours=9)
    sessions_record(
        sessions=[
            *(
                Session(
                    channel="phone",
                    customer=customer,
                    agent=agent,
                    requested_at=two_weeks_back + timedelta(minutes=n),
                    answered_at=two_weeks_back + timedelta(minutes=n),
                    ended_at=two_weeks_back + timedelta(minutes=n, seconds=240),
                    external_id=f"p{n}",
                )
                for n in range(3)
            ),
            Session(
                channel="chat",
                customer=customer,
                agent=agent,
                requested_at=this_monday - timedelta(weeks=10),
                answered_at=this_monday - timedelta(weeks=10),
                ended_at=this_monday - timedelta(weeks=10) + timedelta(seconds=60),
                external_id="c-old",
            ),
        ]
    )
    found = staffing_defaults(end_utc=this_monday, channels=("chat", "phone"))
    assert (found.channel, found.weeks, found.sessions) == ("phone", 2, 3)

    client.force_login(manager)
    page = client.get("/desk/reports/staffing/")
    assert page.status_code == 200
    form = page.context["form"]
    assert (form["channel"].value(), form["weeks"].value(), form["threshold"].value()) == ("phone", "2", "20")
    tiles = dict((item["label"], item["value"]) for item in page.context["summary"])
    assert tiles["Contacts measured"] == 3
    assert tiles["Average handle time (seconds)"] == "240"
