"""SLA in the agent workspace: countdowns and their urgency, the next-due sort,
the "breaching within the hour" and "overdue" views, the ticket's SLA panel and
the timeline's SLA events."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from servicedesk.accounts.models import User
from servicedesk.desk import sla
from servicedesk.sla.models import BusinessCalendar, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.desk.conftest import references
from tests.factories import AgentFactory, CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db

# Friday 24 October 2025, 15:00 UTC: the instant every page below is measured at.
NOW = datetime(2025, 10, 24, 15, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 24) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(sla, "now", lambda: NOW)


@pytest.fixture
def policy(db):
    """Office hours Monday to Friday 09:00-17:00 UTC. Normal: first reply 2 h and
    resolution 8 h in calendar hours; high: first reply 4 business hours; low: no targets."""
    office = BusinessCalendar.objects.create(slug="office", name="Office", time_zone="UTC")
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=office, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    policy = SlaPolicy.objects.create(slug="standard", name="Standard support", rank=1, calendar=office, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=480, hours="calendar"
    )
    SlaTarget.objects.create(policy=policy, priority="high", first_reply_minutes=240, hours="business")
    return policy


def reply(ticket: Ticket, agent, when: datetime, status: str | None = None) -> None:
    ticket_reply_create(
        ticket=ticket,
        author=agent,
        text="On it.",
        status=status,
        actor=Actor.agent(agent, source="ui"),
        at=when,
        deliver=False,
    )


@pytest.fixture
def board(policy, queue, billing, agent):
    """Tickets of the support queue (the agent's) and two of billing, named by how they stand at NOW."""
    made: dict[str, Ticket] = {}

    def make(name: str, created: datetime, *, priority: str = "normal", in_queue=queue) -> Ticket:
        made[name] = ticket_make(
            customer=CustomerFactory(), queue=in_queue, subject=name, priority=priority, at=created
        )
        return made[name]

    make("ok", at(14, 5))  # first reply due 16:05
    make("soon", at(13, 20))  # due 15:20
    make("hour", at(14, 0))  # due 16:00, exactly an hour ahead
    make("over", at(12, 48))  # due 14:48
    reply(make("share", at(8, 40)), agent, at(8, 50))  # first reply achieved; resolution due 16:40
    make("business", at(13, 30), priority="high")  # 4 business hours: due Monday 09:30
    reply(make("paused", at(10, 0)), agent, at(10, 30), status="pending")
    reply(make("achieved", at(9, 0)), agent, at(9, 45), status="solved")
    reply(make("breached", at(8, 0)), agent, at(11, 0), status="solved")  # first reply 3 h late
    make("none", at(14, 0), priority="low")
    make("billing_soon", at(13, 30), in_queue=billing)  # due 15:30
    make("billing_over", at(12, 0), in_queue=billing)  # due 14:00
    return made


def refs(board, *names: str) -> list[str]:
    return [board[name].reference for name in names]


def row_badge(content: str, reference: str) -> str:
    """The SLA cell of one inbox row."""
    row = re.search(rf'<tr class="ticket-row" data-reference="{reference}"[^>]*>(.*?)</tr>', content, re.S)
    assert row is not None
    cell = re.search(r'<td class="sla-cell"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert cell is not None
    return cell.group(1).strip()


# --- Countdown text and urgency -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "badge"),
    [
        (
            "ok",
            '<span class="sla sla-ok" data-sla-due="2025-10-24T16:05:00+00:00" '
            'data-sla-warning="2025-10-24T15:05:00+00:00">due in 1 h 05 min</span>',
        ),
        (
            "soon",
            '<span class="sla sla-warning" data-sla-due="2025-10-24T15:20:00+00:00" '
            'data-sla-warning="2025-10-24T14:20:00+00:00">due in 20 min</span>',
        ),
        (
            "hour",
            '<span class="sla sla-warning" data-sla-due="2025-10-24T16:00:00+00:00" '
            'data-sla-warning="2025-10-24T15:00:00+00:00">due in 1 h 00 min</span>',
        ),
        (
            "over",
            '<span class="sla sla-overdue" data-sla-due="2025-10-24T14:48:00+00:00" '
            'data-sla-warning="2025-10-24T15:00:00+00:00">overdue by 12 min</span>',
        ),
        # 100 of 480 minutes left: under a quarter of the target, though more than an hour.
        (
            "share",
            '<span class="sla sla-warning" data-sla-due="2025-10-24T16:40:00+00:00" '
            'data-sla-warning="2025-10-24T15:00:00+00:00">due in 1 h 40 min</span>',
        ),
        # 2.5 of 4 business hours left (two today, half an hour on Monday): green,
        # turning amber when one business hour is left, at 16:30 today.
        (
            "business",
            '<span class="sla sla-ok" data-sla-due="2025-10-27T09:30:00+00:00" '
            'data-sla-warning="2025-10-24T16:30:00+00:00">due in 2 d 18 h</span>',
        ),
        ("paused", '<span class="sla sla-paused">paused</span>'),
        ("achieved", '<span class="sla sla-achieved">achieved in 45 min</span>'),
        ("breached", '<span class="sla sla-breached">breached, took 3 h 00 min</span>'),
        ("none", '<span class="sla sla-none muted">—</span>'),
    ],
)
def test_inbox_row_shows_the_countdown_with_its_urgency(client, manager, board, name, badge):
    client.force_login(manager)
    content = client.get("/desk/").content.decode()

    assert row_badge(content, board[name].reference) == badge


def test_a_quarter_of_business_time_left_is_amber_days_ahead(client, manager, board, monkeypatch):
    # Friday 16:45: a quarter hour today and half an hour on Monday are left of four business hours.
    monkeypatch.setattr(sla, "now", lambda: at(16, 45))
    client.force_login(manager)

    content = client.get("/desk/").content.decode()

    assert row_badge(content, board["business"].reference) == (
        '<span class="sla sla-warning" data-sla-due="2025-10-27T09:30:00+00:00" '
        'data-sla-warning="2025-10-24T16:45:00+00:00">due in 2 d 16 h</span>'
    )


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (0, "0 min"),
        (1, "1 min"),
        (59, "59 min"),
        (60, "1 h 00 min"),
        (125, "2 h 05 min"),
        (1439, "23 h 59 min"),
        (1440, "1 d 0 h"),
        (3990, "2 d 18 h"),
    ],
)
def test_duration_text(minutes, text):
    assert sla.duration_text(minutes) == text


def test_countdown_formats_are_on_the_page_for_the_refresh_script(client, manager, board):
    client.force_login(manager)
    content = client.get("/desk/").content.decode()

    formats = re.search(r'<script id="sla-formats" type="application/json">(.*?)</script>', content, re.S)
    assert formats is not None
    assert json.loads(formats.group(1)) == {
        "due": "due in %(time)s",
        "overdue": "overdue by %(time)s",
        "days": "%(days)d d %(hours)d h",
        "hours": "%(hours)d h %(minutes)02d min",
        "minutes": "%(minutes)d min",
    }
    assert '<script src="/static/desk/sla.js" defer></script>' in content
    assert '<link rel="stylesheet" href="/static/desk/sla.css">' in content


def test_refresh_script_and_styles_are_served(client):
    script = client.get("/static/desk/sla.js")
    styles = client.get("/static/desk/sla.css")

    assert script.status_code == 200
    assert b"data-sla-due" in b"".join(script.streaming_content)
    assert styles.status_code == 200
    assert b".sla-overdue" in b"".join(styles.streaming_content)


# --- Sort by next due -------------------------------------------------------------


def test_sort_by_next_due_soonest_first_without_due_last(client, manager, board):
    client.force_login(manager)

    response = client.get("/desk/", {"sort": "due"})

    assert references(response) == refs(
        board,
        "billing_over",
        "over",
        "soon",
        "billing_soon",
        "hour",
        "ok",
        "share",
        "business",
        # no running target: by id
        "paused",
        "achieved",
        "breached",
        "none",
    )


def test_reverse_sort_by_next_due_is_the_exact_mirror(client, manager, board):
    client.force_login(manager)

    response = client.get("/desk/", {"sort": "-due"})

    assert references(response) == refs(
        board,
        "none",
        "breached",
        "achieved",
        "paused",
        "business",
        "share",
        "ok",
        "hour",
        "billing_soon",
        "soon",
        "over",
        "billing_over",
    )


def test_next_due_column_links_to_its_sort(client, manager, board):
    client.force_login(manager)

    assert 'href="?sort=due">Next due</a>' in client.get("/desk/").content.decode()
    assert 'href="?sort=-due">Next due' in client.get("/desk/?sort=due").content.decode()


# --- Due views --------------------------------------------------------------------


def test_breaching_within_the_hour_lists_the_agents_tickets_due_in_the_next_hour(agent_client, board):
    response = agent_client.get("/desk/", {"due": "hour"})

    assert response.status_code == 200
    # 15:20 and 16:00 (exactly an hour ahead); not 16:05, nor billing's 15:30.
    assert references(response) == refs(board, "soon", "hour")
    content = response.content.decode()
    assert "<h1>Breaching within the hour</h1>" in content
    assert '<input type="hidden" name="due" value="hour">' in content


def test_overdue_lists_the_agents_overdue_tickets(agent_client, board):
    response = agent_client.get("/desk/", {"due": "overdue"})

    assert references(response) == refs(board, "over")
    assert "<h1>Overdue</h1>" in response.content.decode()


def test_manager_sees_every_queues_due_tickets(client, manager, board):
    client.force_login(manager)

    assert references(client.get("/desk/?due=hour")) == refs(board, "soon", "billing_soon", "hour")
    assert references(client.get("/desk/?due=overdue")) == refs(board, "billing_over", "over")


def test_agent_of_the_other_queue_sees_only_its_due_tickets(client, billing, board):
    client.force_login(AgentFactory(username="bea", queues=[billing]))

    assert references(client.get("/desk/?due=hour")) == refs(board, "billing_soon")
    assert references(client.get("/desk/?due=overdue")) == refs(board, "billing_over")


def test_due_views_combine_with_filters_and_other_sorts(client, manager, board):
    client.force_login(manager)

    assert references(client.get("/desk/?due=hour&queue=billing")) == refs(board, "billing_soon")
    assert references(client.get("/desk/?due=hour&sort=-due")) == refs(board, "hour", "billing_soon", "soon")
    assert references(client.get("/desk/?due=nonsense&sort=reference")) == [t.reference for t in board.values()]


def test_due_views_are_linked_from_the_inbox(agent_client, board):
    content = agent_client.get("/desk/").content.decode()

    assert '<a class="due-view" href="/desk/?due=hour">Breaching within the hour</a>' in content
    assert '<a class="due-view" href="/desk/?due=overdue">Overdue</a>' in content


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/desk/?due=hour", "/desk/?due=overdue", "/desk/?sort=due"])
def test_due_view_queries_do_not_grow_with_tickets(agent_client, policy, queue, url):
    def make(n: int, offset: int) -> None:
        for i in range(offset, offset + n):
            # In turn: overdue, due within the hour, and overdue on business hours (due Thursday 14:00).
            created, priority = [(at(12, 30), "normal"), (at(13, 10), "normal"), (at(10, 0, day=23), "high")][i % 3]
            ticket_make(customer=CustomerFactory(), queue=queue, subject=f"Case {i}", at=created, priority=priority)

    make(3, 0)
    few = _queries(agent_client, url)
    make(27, 3)
    many = _queries(agent_client, url)

    assert len(references(agent_client.get(url))) > 1
    assert few == many


# --- Ticket page ------------------------------------------------------------------


def manager_in(zone: str) -> User:
    manager = User.objects.get(pk=AgentFactory(username="li", role="manager").pk)
    manager.time_zone = zone
    manager.save(update_fields=["time_zone"])
    return manager


def panel(content: str) -> str:
    found = re.search(r'<section class="card sla-panel" id="sla-panel">(.*?)</section>', content, re.S)
    assert found is not None
    return re.sub(r"\s+", " ", found.group(1))


def test_ticket_panel_lists_both_targets_in_the_agents_time_zone(client, board):
    client.force_login(manager_in("Asia/Shanghai"))

    content = client.get(f"/desk/tickets/{board['share'].reference}/").content.decode()
    shown = panel(content)

    assert (
        '<div class="sla-target" data-kind="first_reply"> <h3>First reply <span class="sla sla-achieved">'
        "achieved in 10 min</span> </h3>"
    ) in shown
    assert '<td class="sla-state">Achieved</td>' in shown
    assert (
        '<td class="sla-fulfilled"><time datetime="2025-10-24T16:50:00+08:00" title="Asia/Shanghai, UTC+08:00">'
        "2025-10-24 16:50 CST</time></td>"
    ) in shown
    assert '<td class="sla-elapsed">10 min of 2 h 00 min</td>' in shown
    assert (
        '<div class="sla-target" data-kind="resolution"> <h3>Resolution <span class="sla sla-warning" '
        'data-sla-due="2025-10-24T16:40:00+00:00" data-sla-warning="2025-10-24T15:00:00+00:00">due in 1 h 40 min</span>'
    ) in shown
    assert '<td class="sla-state">Active</td>' in shown
    # 16:40 UTC is 00:40 the next day in Shanghai.
    assert '<time datetime="2025-10-24T16:40:00+00:00">2025-10-25 00:40 CST</time>' in shown
    assert '<td class="sla-elapsed">6 h 20 min of 8 h 00 min</td>' in shown
    assert shown.count('<td class="sla-hours">Calendar hours · Office</td>') == 2
    assert shown.count('<td class="sla-policy">Standard support</td>') == 2
    assert "Times in Asia/Shanghai." in shown
    # The summary line shows the next due target.
    assert '<span id="ticket-sla"><span class="sla sla-warning"' in content


def test_ticket_panel_uses_the_site_time_zone_without_the_agents(agent_client, board):
    content = agent_client.get(f"/desk/tickets/{board['over'].reference}/").content.decode()
    shown = panel(content)

    assert '<td class="sla-state">Breached</td>' in shown  # past due: breached, whatever the last evaluation said
    assert '<time datetime="2025-10-24T14:48:00+00:00">2025-10-24 14:48 UTC</time>' in shown
    assert "overdue by 12 min" in shown
    assert '<td class="sla-elapsed">2 h 12 min of 2 h 00 min</td>' in shown
    assert "Times in UTC." in shown


def test_ticket_panel_shows_paused_and_business_elapsed(agent_client, board):
    paused = panel(agent_client.get(f"/desk/tickets/{board['paused'].reference}/").content.decode())
    business = panel(agent_client.get(f"/desk/tickets/{board['business'].reference}/").content.decode())

    assert '<span class="sla sla-paused">paused</span>' in paused
    assert '<td class="sla-state">Paused</td>' in paused
    assert '<td class="sla-due">—</td>' in paused
    assert '<td class="sla-elapsed">30 min of 8 h 00 min</td>' in paused
    # 13:30 to 15:00 in office hours: 1 h 30 min of four business hours.
    assert '<td class="sla-elapsed">1 h 30 min of 4 h 00 min</td>' in business
    assert '<td class="sla-hours">Business hours · Office</td>' in business
    assert 'data-kind="resolution"' not in business


def test_ticket_without_targets_says_so(agent_client, board):
    content = agent_client.get(f"/desk/tickets/{board['none'].reference}/").content.decode()

    assert "No service level applies to this ticket." in panel(content)
    assert 'id="ticket-sla"' not in content


def test_timeline_labels_sla_events(client, board):
    client.force_login(manager_in("Asia/Shanghai"))

    content = client.get(f"/desk/tickets/{board['paused'].reference}/").content.decode()
    events = [
        re.sub(r"\s+", " ", item) for item in re.findall(r'<li class="event event-sla_\w+">(.*?)</li>', content, re.S)
    ]

    assert [re.findall(r'<span class="event-kind">(.*?)</span>', e)[0] for e in events] == [
        "SLA target applied",
        "SLA target applied",
        "SLA target fulfilled",
        "SLA target paused",
    ]
    assert (
        '<span class="event-after">First reply: Active · due 2025-10-24 20:00 CST · target 2 h 00 min (Calendar hours)'
        " · Standard support</span>"
    ) in events[0]
    assert (
        '<span class="event-after">First reply: Achieved · measured 30 min · target 2 h 00 min (Calendar hours)'
        " · Standard support</span>"
    ) in events[2]
    assert (
        '<span class="event-before">Resolution: Active · due 2025-10-25 02:00 CST · target 8 h 00 min (Calendar hours)'
        " · Standard support</span> &rarr;"
    ) in events[3]
    assert (
        '<span class="event-after">Resolution: Paused · measured 30 min · target 8 h 00 min (Calendar hours)'
        " · Standard support</span>"
    ) in events[3]
