"""The managers' dashboard: who may open it, the job and its progress, tiles, charts, tables, drill-down."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reports.models import ReportJob, ReportSnapshot
from reports.snapshots import local_today, snapshot_compute
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_assign
from tests.factories import CustomerFactory, OrganizationFactory, UserFactory
from tests.reports.delivery_helpers import calendar_make, ticket_answered, ticket_opened

pytestmark = pytest.mark.django_db

PERIOD = {"preset": "custom", "start": "2025-10-20", "end": "2025-10-23", "calendar": "dublin"}
PATHS = [
    ("get", "/desk/reports/"),
    ("get", "/desk/reports/definitions/"),
    ("get", "/desk/reports/export.csv"),
    ("get", "/desk/reports/export.xlsx"),
    ("post", "/desk/reports/run/"),
    ("post", "/desk/reports/subscriptions/"),
]


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def october(dublin, queue, agent):
    ticket_answered(
        ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC)),
        agent,
        datetime(2025, 10, 20, 8, 30, tzinfo=UTC),
        solve_after=timedelta(hours=1),
    )
    ticket_opened(queue, datetime(2025, 10, 21, 9, 0, tzinfo=UTC), channel="web")
    ticket_opened(queue, datetime(2025, 10, 24, 9, 0, tzinfo=UTC))  # after the period


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_agents_are_refused_customers_not_found_visitors_sent_to_sign_in(client, dublin, agent, method, path):
    client.force_login(agent)
    assert getattr(client, method)(path).status_code == 403
    customer = UserFactory(username="alice")
    client.force_login(customer)
    assert getattr(client, method)(path).status_code == 404
    client.logout()
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/desk/login/?next=")
    assert ReportJob.objects.count() == 0


def test_the_definitions_page_has_an_anchor_per_headline_figure(client, manager):
    client.force_login(manager)
    page = client.get("/desk/reports/definitions/").content.decode()
    for anchor in ("sla", "fcr", "first-reply", "csat", "backlog", "abandonment", "in-scope", "volume"):
        assert f'id="{anchor}"' in page
    client.cookies["django_language"] = "zh-hans"
    assert client.get("/desk/reports/definitions/", HTTP_ACCEPT_LANGUAGE="zh-hans").status_code == 200


def test_a_period_without_a_snapshot_starts_a_job_and_shows_its_progress(
    client, manager, october, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = client.get("/desk/reports/", PERIOD).content.decode()
    job = ReportJob.objects.get()
    assert (job.start, job.end, job.include_daily, job.status) == (
        date(2025, 10, 20),
        date(2025, 10, 23),
        True,
        "queued",
    )
    assert '<progress max="100" value="0">' in page
    assert f'data-job-url="/api/v1/reports/{job.pk}/"' in page
    refresh = f"?calendar=dublin&amp;preset=custom&amp;start=2025-10-20&amp;end=2025-10-23&amp;job={job.pk}"
    assert f'href="{refresh}"' in page
    assert "reports/reports.js" in page

    callbacks[0]()
    page = client.get("/desk/reports/", {**PERIOD, "job": job.pk}).content.decode()
    assert "<progress" not in page
    assert ReportJob.objects.count() == 1
    # The period's snapshot and one per day, for the charts.
    assert sorted(ReportSnapshot.objects.values_list("granularity", "start")) == [
        ("custom", date(2025, 10, 20)),
        ("day", date(2025, 10, 20)),
        ("day", date(2025, 10, 21)),
        ("day", date(2025, 10, 22)),
    ]
    assert page.count('class="report-chart"') == 5
    assert page.count("<polyline") >= 1
    assert 'href="/desk/reports/definitions/#sla"' in page
    assert 'href="/desk/reports/definitions/#backlog"' in page
    tiles = re.findall(r'<div class="report-tile-value">(.*?)</div>', page, re.S)
    # SLA (no policy: no data), FCR (the one solved ticket, its seven days passed), median first reply
    # (30 business and calendar minutes), CSAT (no rating), backlog (unsolved now: the web ticket and the
    # 24 October one).
    assert [t.strip() for t in tiles[:6]] == ["\u2014", "100.00 %", "30.00", "30.00", "\u2014", "2"]
    # The surveys' response rate (nothing surveyed).
    survey_tile = re.search(
        r'#csat" title="Definition">Survey response rate</a></div>\s*<div class="report-tile-value">(.*?)</div>', page
    )
    assert survey_tile is not None and survey_tile.group(1).strip() == "\u2014"
    assert "export.csv?calendar=dublin&amp;preset=custom&amp;start=2025-10-20&amp;end=2025-10-23" in page
    assert '<th scope="row" class="report-key" title="support">Support</th>' in page


def test_the_drill_down_opens_the_inbox_on_the_tickets_behind_the_figure(
    client, manager, october, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.get("/desk/reports/", PERIOD)
    page = client.get("/desk/reports/", PERIOD).content.decode()
    links = re.findall(r'href="(/desk/\?[^"]+)"', page)
    queue_link = next(link for link in links if "queue=support" in link).replace("&amp;", "&")
    params = parse_qs(urlparse(queue_link).query)
    # 20 October 00:00 IST and 23 October 00:00 IST.
    assert params["created_from"] == ["2025-10-19T23:00:00+00:00"]
    assert params["created_to"] == ["2025-10-22T23:00:00+00:00"]
    inbox = client.get(queue_link).content.decode()
    # The rows' tickets (the page shows other references too, such as a form's example).
    references = set(re.findall(r'data-reference="(SD-\d+)"', inbox))
    assert len(references) == 2


def _queries_for(client, params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/desk/reports/", params)
    assert response.status_code == 200
    assert "<progress" not in response.content.decode()
    return len(captured)


def test_the_number_of_queries_does_not_grow_with_the_period(client, manager, dublin):
    now = timezone.now()
    today = local_today(dublin, now)
    for days in (7, 30):
        snapshot_compute(
            calendar=dublin, granularity="custom", start=today - timedelta(days=days), end=today, as_of=now
        )
    for n in range(1, 31):
        start = today - timedelta(days=n)
        snapshot_compute(calendar=dublin, granularity="day", start=start, end=start + timedelta(days=1), as_of=now)
    client.force_login(manager)
    week = _queries_for(client, {"preset": "7d", "calendar": "dublin"})
    month = _queries_for(client, {"preset": "30d", "calendar": "dublin"})
    assert week == month
    assert ReportJob.objects.count() == 0


def test_an_invalid_custom_period_is_a_form_error(client, manager, dublin):
    client.force_login(manager)
    response = client.get("/desk/reports/", {**PERIOD, "end": "2025-10-19"})
    assert response.status_code == 400
    assert "The period must end after it starts." in response.content.decode()
    assert ReportJob.objects.count() == 0


def test_compute_again_queues_a_job_and_returns_to_the_dashboard(
    client, manager, dublin, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/desk/reports/run/", PERIOD)
    job = ReportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == (
        f"/desk/reports/?calendar=dublin&preset=custom&start=2025-10-20&end=2025-10-23&job={job.pk}"
    )


@pytest.mark.django_db
def test_the_reports_link_is_shown_to_managers_only(client, manager, agent):
    client.force_login(manager)
    assert 'href="/desk/reports/"' in client.get("/desk/").content.decode()
    client.force_login(agent)
    page = client.get("/desk/")
    assert page.status_code == 200
    assert 'href="/desk/reports/"' not in page.content.decode()


def test_a_link_with_dates_and_no_preset_shows_those_dates(
    client, manager, october, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False):
        page = client.get("/desk/reports/", {"start": "2025-10-20", "end": "2025-10-23", "calendar": "dublin"})
    assert page.status_code == 200
    job = ReportJob.objects.get()
    assert (job.start, job.end) == (date(2025, 10, 20), date(2025, 10, 23))
    assert '<option value="custom" selected>' in page.content.decode()


def test_the_tables_name_queues_agents_channels_and_tiers_in_the_reader_s_language(
    client, manager, dublin, queue, agent, django_capture_on_commit_callbacks
):
    queue.name = "Customer support"
    queue.save()
    agent.display_name = "Ann O'Neill"
    agent.email = "ann@desk.example"
    agent.save()
    first = ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC))
    ticket_assign(ticket=first, assignee=agent, actor=Actor.system(), at=datetime(2025, 10, 20, 8, 5, tzinfo=UTC))
    ticket_answered(first, agent, datetime(2025, 10, 20, 9, 0, tzinfo=UTC))
    vip = CustomerFactory(organization=OrganizationFactory(tier="vip"))
    ticket_opened(queue, datetime(2025, 10, 21, 9, 0, tzinfo=UTC), channel="web", customer=vip)
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.get("/desk/reports/", PERIOD)
    page = client.get("/desk/reports/", PERIOD).content.decode()
    keys = re.findall(r'<th scope="row" class="report-key"(?: title="([^"]*)")?>(.*?)</th>', page)
    assert keys == [
        ("support", "Customer support"),
        (
            "ann@desk.example",
            'Ann O&#x27;Neill<span class="report-key-detail">ann@desk.example</span>',
        ),
        ("", "Unassigned"),
        ("email", "Email"),
        ("web", "Web form"),
        ("normal", "Normal"),
        ("", "No organization"),
        ("vip", "VIP"),
    ]
    assert ">email<" not in page and ">support<" not in page

    page = client.get("/desk/reports/", PERIOD, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    keys = re.findall(r'<th scope="row" class="report-key"(?: title="([^"]*)")?>(.*?)</th>', page)
    assert ("email", "电子邮件") in keys
    assert ("", "未分配") in keys


def test_the_live_channels_table_shows_the_chats_sessions(client, manager, dublin, queue, agent):
    from servicedesk.tickets.models import Session

    customer = CustomerFactory()
    ticket = ticket_opened(queue, datetime(2025, 10, 20, 8, 0, tzinfo=UTC), channel="chat")
    start = datetime(2025, 10, 20, 8, 0, tzinfo=UTC)
    # Answered after 10 s, handled 200 s plus 40 s of wrap-up; another abandoned after 50 s.
    Session.objects.create(
        channel="chat",
        customer=customer,
        ticket=ticket,
        agent=agent,
        requested_at=start,
        answered_at=start + timedelta(seconds=10),
        ended_at=start + timedelta(seconds=210),
        after_work_seconds=40,
    )
    Session.objects.create(
        channel="chat", customer=customer, requested_at=start, abandoned_at=start + timedelta(seconds=50)
    )
    snapshot_compute(
        calendar=dublin, start=date(2025, 10, 20), end=date(2025, 10, 23), as_of=timezone.now(), granularity="custom"
    )
    client.force_login(manager)
    page = client.get("/desk/reports/", PERIOD).content.decode()
    table = page[page.index('<table class="list report-table report-live">') :]
    table = table[: table.index("</table>")]
    chat_row = re.search(r'<th scope="row">Chat</th>(.*?)</tr>', table, re.S)
    assert chat_row is not None
    cells = [c.strip() for c in re.findall(r"<td>(.*?)</td>", chat_row.group(1), re.S)]
    # Offered, answered, service level (1 within 30 s / (1 + 1 abandoned after 30 s)), ASA,
    # abandonment (1 of 2 offered), AHT.
    assert cells[:6] == ["2", "1", "50.00 %", "10.0", "50.00 %", "240.0"]
