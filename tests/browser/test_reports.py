"""What a manager clicks in the reports: the dashboard, a definition, a drill-down, the staffing grid.

The dashboard figures come from three tickets built through the ticket
services in a past period (Monday 20 to Wednesday 22 October 2025, Dublin,
open around the clock); the staffing grid from 24 chats measured last week.
An agent who opens the reports is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reports.snapshots import local_today
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.models import Session
from servicedesk.tickets.services.sessions import sessions_record
from tests.factories import AgentFactory, CustomerFactory, QueueFactory
from tests.reports.delivery_helpers import calendar_make, ticket_answered, ticket_opened

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MANAGER_PASSWORD = "max-secret-42"
AGENT_PASSWORD = "ann-secret-42"


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC)


def sign_in(page, base_url: str, username: str, password: str, *, then: str) -> None:
    """Open ``then``, get sent to the sign-in page, sign in and land back on ``then``."""
    page.goto(f"{base_url}{then}")
    page.wait_for_url(re.compile(r"/desk/login/"))
    page.fill("#login-form input[name=username]", username)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form [name=signin]")
    page.wait_for_url(f"{base_url}{then}")


def collect_errors(page) -> list[str]:
    """Console errors and uncaught exceptions of ``page``, as they happen (a failed resource counts).

    Pages declare an inline icon, so the browser asks for no /favicon.ico either.
    """
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def tiles(page) -> dict[str, str]:
    """The headline tiles, label -> value, as shown."""
    return {
        tile.locator(".report-tile-label").inner_text().strip(): tile.locator(".report-tile-value").inner_text().strip()
        for tile in page.locator(".report-tile").all()
    }


def grid_cell(page, *, hour: int, weekday: int = 0):
    """The staffing grid's cell for ``hour`` on ``weekday`` (Monday = 0)."""
    return page.locator("table.staffing-grid tbody tr").nth(hour).locator("td").nth(weekday)


def submit_staffing(page, **values: str) -> None:
    for name, value in values.items():
        page.fill(f"#id_{name}", value)
    page.click("form.report-form button[type=submit]")
    page.wait_for_url(re.compile(r"/desk/reports/staffing/\?.*target=" + values["target"]))
    page.wait_for_selector("table.staffing-grid")


def test_a_manager_reads_the_dashboard_a_definition_and_the_tickets_behind_a_figure(browser, live_server, tmp_path):
    dublin = calendar_make()  # Europe/Dublin, open 24 hours a day: business minutes are calendar minutes.
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=dublin, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=150, hours="business"
    )
    queue = QueueFactory(slug="support", name="Support")
    ann = AgentFactory(username="ann", queues=[queue])
    AgentFactory(username="max", role="manager", password=MANAGER_PASSWORD)
    # T1: replied after 30 minutes, solved 90 minutes after creation: both targets achieved, one reply (FCR).
    t1 = ticket_answered(ticket_opened(queue, utc(20, 8)), ann, utc(20, 8, 30), solve_after=timedelta(hours=1))
    # T2 (web): replied after 120 minutes (first reply breached), a second reply, solved after 180 minutes
    # (resolution breached); two replies, so not a first-contact resolution.
    t2 = ticket_answered(ticket_opened(queue, utc(21, 9), channel="web"), ann, utc(21, 11))
    t2 = ticket_answered(t2, ann, utc(21, 11, 30), solve_after=timedelta(minutes=30))
    # T3: never answered nor solved: both targets breached long ago.
    t3 = ticket_opened(queue, utc(22, 10))
    # After the period (Friday 24 October): in no figure and not in the drill-down.
    later = ticket_opened(queue, utc(24, 9))
    assert t1.status == "solved" and t2.status == "solved" and t3.status == "new"

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "max", MANAGER_PASSWORD, then="/desk/reports/")

    # Choose the period with the picker.
    page.select_option("#id_preset", "custom")
    page.fill("#id_start", "2025-10-20")
    page.fill("#id_end", "2025-10-23")
    page.select_option("#id_calendar", "dublin")
    page.click("form.report-picker button[type=submit]")
    page.wait_for_url(re.compile(r"/desk/reports/\?.*preset=custom&start=2025-10-20&end=2025-10-23"))
    # A period without a snapshot starts a job; the page's script follows its progress bar and
    # reloads with the figures once it is done (at once here, where tasks run eagerly).
    page.wait_for_selector(".report-tiles", timeout=30_000)
    assert page.locator(".report-job").count() == 0
    assert "2025-10-20 to 2025-10-22, calendar Dublin (Europe/Dublin)" in page.inner_text(".report-period")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    shown = tiles(page)
    # Targets: T1 achieved twice; T2 and T3 breached twice each: 2 / 6.
    assert shown["SLA achieved"] == "33.33 %"
    # Solved tickets whose seven days have passed: T1 (one reply) and T2 (two replies): 1 / 2.
    assert shown["First-contact resolution"] == "50.00 %"
    # First replies after 30 (T1) and 120 (T2) minutes: median 75.
    assert shown["Median first reply (business minutes)"] == "75.00"
    assert shown["Customer satisfaction"] == "\u2014"
    assert shown["Tickets in the report"] == "3"
    assert shown["Median first reply (calendar minutes)"] == "75.00"
    by_channel = page.locator("table#report-by_channel")
    assert by_channel.locator("tbody tr").count() == 2
    assert [row.locator("th").inner_text() for row in by_channel.locator("tbody tr").all()] == ["Email", "Web form"]
    assert by_channel.locator("tbody tr", has_text="Web form").locator("td").nth(0).inner_text() == "1"

    # A tile's label leads to its definition.
    page.click(".report-tile-label a:text-is('SLA achieved')")
    page.wait_for_url(re.compile(r"/desk/reports/definitions/#sla$"))
    assert page.inner_text("dt#sla") == "SLA achieved"
    assert "The rate is the targets achieved divided by the targets achieved or breached" in page.inner_text(
        "dt#sla + dd"
    )
    page.screenshot(path=str(tmp_path / "definitions.png"), full_page=True)

    # The number of tickets leads to the inbox, listing exactly those tickets.
    page.go_back()
    page.wait_for_selector(".report-tiles")
    page.locator(".report-tile", has_text="Tickets in the report").locator(".report-tile-value a").click()
    page.wait_for_url(re.compile(r"/desk/\?.*created_from="))
    page.wait_for_selector("tr.ticket-row")
    listed = {row.get_attribute("data-reference") for row in page.locator("tr.ticket-row").all()}
    assert listed == {t1.reference, t2.reference, t3.reference}
    assert later.reference not in listed
    page.screenshot(path=str(tmp_path / "drill-down.png"), full_page=True)

    # And the channel row of the breakdown to that channel's tickets only.
    page.go_back()
    page.wait_for_selector(".report-tiles")
    page.locator("table#report-by_channel tbody tr", has_text="Web form").locator("a").click()
    page.wait_for_url(re.compile(r"/desk/\?.*channel=web"))
    page.wait_for_selector("tr.ticket-row")
    assert [row.get_attribute("data-reference") for row in page.locator("tr.ticket-row").all()] == [t2.reference]
    assert errors == []
    context.close()


def test_a_manager_changes_the_staffing_inputs_and_reads_the_agents_needed(browser, live_server, tmp_path):
    dublin = calendar_make()
    ann = AgentFactory(username="ann")
    AgentFactory(username="max", role="manager", password=MANAGER_PASSWORD)
    # 24 chats in last week's Monday 10:00 hour (Dublin time), answered at once and handled for 300 s:
    # 24 arrivals an hour, AHT 300 s, a load of A = 24 x 300 / 3600 = 2 Erlangs.
    today = local_today(dublin, datetime.now(UTC))
    monday = today - timedelta(days=today.weekday(), weeks=1)
    ten = datetime(monday.year, monday.month, monday.day, 10, tzinfo=ZoneInfo("Europe/Dublin"))
    customer = CustomerFactory()
    sessions_record(
        sessions=[
            Session(
                channel="chat",
                customer=customer,
                agent=ann,
                requested_at=ten + timedelta(minutes=2 * n),
                answered_at=ten + timedelta(minutes=2 * n),
                ended_at=ten + timedelta(minutes=2 * n, seconds=300),
                external_id=f"chat-{n}",
            )
            for n in range(24)
        ]
    )

    page = browser.new_context(locale="en-GB").new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "max", MANAGER_PASSWORD, then="/desk/reports/staffing/")
    page.wait_for_selector("table.staffing-grid")
    # The defaults follow the data: chat (the channel with sessions), measured over the one week since its
    # first session (24 arrivals an hour, A = 2), 80 % within 30 s: 3 agents reach 59.79 %, 4 reach 85.76 %;
    # 30 % shrinkage: ceil(4 / 0.7) = 6 scheduled. Nothing else is staffed.
    assert page.input_value("#id_weeks") == "1"
    assert page.input_value("#id_channel") == "chat"
    assert grid_cell(page, hour=10).inner_text() == "6 (4, 24.0)"
    assert grid_cell(page, hour=10).get_attribute("title") == "service level 85.76 %, occupancy 50.00 %"
    assert grid_cell(page, hour=11).inner_text() == "0"
    assert page.locator(".report-tile", has_text="Contacts measured").locator(".report-tile-value").inner_text() == "24"
    page.screenshot(path=str(tmp_path / "staffing-defaults.png"), full_page=True)

    # Erlang C with A = 2 and a 20 s threshold: 4 agents reach a service level of 84.78 %, 5 reach 95.11 %.
    # 80 % -> 4 agents; with 30 % shrinkage ceil(4 / 0.7) = 6 scheduled.
    submit_staffing(page, weeks="1", target="80", threshold="20", shrinkage="30", max_occupancy="")
    assert grid_cell(page, hour=10).locator("strong").inner_text() == "6"
    assert grid_cell(page, hour=10).locator("small").inner_text() == "(4, 24.0)"
    assert grid_cell(page, hour=11).inner_text() == "0"
    assert grid_cell(page, hour=10, weekday=1).inner_text() == "0"
    page.screenshot(path=str(tmp_path / "staffing-80.png"), full_page=True)

    # Raising the target to 95 % needs 5 agents; with 20 % shrinkage ceil(5 / 0.8) = 7 scheduled.
    submit_staffing(page, weeks="1", target="95", threshold="20", shrinkage="20", max_occupancy="85")
    assert grid_cell(page, hour=10).locator("strong").inner_text() == "7"
    assert grid_cell(page, hour=10).locator("small").inner_text() == "(5, 24.0)"

    # A maximum occupancy of 30 % needs ceil(2 / 0.3) = 7 agents: ceil(7 / 0.8) = 9 scheduled.
    submit_staffing(page, weeks="1", target="95", threshold="20", shrinkage="20", max_occupancy="30")
    cell = grid_cell(page, hour=10)
    assert cell.locator("strong").inner_text() == "9"
    assert cell.locator("small").inner_text() == "(7, 24.0)"
    assert cell.get_attribute("class") == "staffed"
    assert page.input_value("#id_max_occupancy") == "30"
    page.screenshot(path=str(tmp_path / "staffing-95.png"), full_page=True)
    assert errors == []


def test_an_agent_who_opens_the_reports_is_refused(browser, live_server, tmp_path):
    calendar_make()
    queue = QueueFactory(slug="support", name="Support")
    AgentFactory(username="ann", queues=[queue], password=AGENT_PASSWORD)

    page = browser.new_context(locale="en-GB").new_page()
    sign_in(page, live_server.url, "ann", AGENT_PASSWORD, then="/desk/")
    assert page.locator("a[href='/desk/reports/']").count() == 0
    for path in ("/desk/reports/", "/desk/reports/staffing/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403
        assert page.url == f"{live_server.url}{path}"
        assert "Access denied" in page.locator("h1").inner_text()
        assert page.locator(".report-tiles, table.staffing-grid").count() == 0
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
