"""One date convention everywhere: "2026-12-06 14:05 CET", in the reader's zone, the zone named.

The unit tests pin the format; the surface test renders every page that
shows an instant (inbox, ticket, customer, notifications, quarantine list and
detail, portal ticket, reports dashboard) and checks that each ``<time>``
element says its instant in this form, in the signed-in user's zone, and a
visitor's in the desk's.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone

from channels_app.email.models import InboundEmail
from channels_app.email.services import IngestOutcome, email_ingest
from servicedesk.core.datetimes import format_day, format_instant, viewer_time_zone, zone_abbreviation
from servicedesk.notifications.services import notification_send
from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_create
from tests.channels_app.email.test_ingest import mail
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory

WHEN = datetime(2026, 12, 6, 13, 5, tzinfo=UTC)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# What a person reads, and what machines read in the datetime attribute.
SHOWN = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} (?:[A-Z]{2,5}|UTC[+-]\d{2}:\d{2})$")
TIME_ELEMENT = re.compile(r'<time datetime="([^"]+)"(?: title="([^"]*)")?>(.*?)</time>', re.S)


def test_an_instant_is_shown_in_iso_order_with_its_zone_named():
    assert format_instant(WHEN, BERLIN) == "2026-12-06 14:05 CET"
    assert format_instant(datetime(2026, 7, 6, 13, 5, tzinfo=UTC), BERLIN) == "2026-07-06 15:05 CEST"
    assert format_instant(WHEN, zoneinfo.ZoneInfo("UTC")) == "2026-12-06 13:05 UTC"
    assert format_instant(WHEN, zoneinfo.ZoneInfo("Asia/Shanghai")) == "2026-12-06 21:05 CST"
    # A zone without a letter abbreviation is named by its offset.
    assert format_instant(WHEN, zoneinfo.ZoneInfo("Asia/Singapore")) == "2026-12-06 21:05 UTC+08:00"
    assert format_instant(WHEN, zoneinfo.ZoneInfo("America/St_Johns")) == "2026-12-06 09:35 NST"
    assert zone_abbreviation(WHEN.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata"))) == "IST"
    assert format_instant(None) == "\u2014"
    assert format_day(date(2026, 12, 6)) == "2026-12-06"
    assert format_day(datetime(2026, 12, 6, 23, 30, tzinfo=UTC), BERLIN) == "2026-12-07"


def test_the_viewer_zone_is_the_profile_s_else_the_desk_s(settings):
    settings.TIME_ZONE = "Europe/Dublin"
    assert viewer_time_zone(UserFactory.build(time_zone="Asia/Shanghai")).key == "Asia/Shanghai"
    assert viewer_time_zone(UserFactory.build(time_zone="")).key == "Europe/Dublin"
    assert viewer_time_zone(UserFactory.build(time_zone="Mars/Olympus")).key == "Europe/Dublin"
    assert viewer_time_zone(None).key == "Europe/Dublin"


def test_the_filters_use_the_active_zone():
    template = Template("{% load datetimes %}{{ when|instant }}|{{ when|day }}|{{ when|instant_time }}")
    with timezone.override(BERLIN):
        assert template.render(Context({"when": WHEN})) == (
            "2026-12-06 14:05 CET|2026-12-06|"
            '<time datetime="2026-12-06T14:05:00+01:00" title="Europe/Berlin, UTC+01:00">2026-12-06 14:05 CET</time>'
        )


def shown_times(html: str) -> list[tuple[str, str, str]]:
    found = TIME_ELEMENT.findall(html)
    for machine, title, text in found:
        assert datetime.fromisoformat(machine).tzinfo is not None, machine
        # The inbox says "2 days ago" for the last update, with the instant in the tooltip.
        assert SHOWN.match(text.strip()) or SHOWN.match(title), (text, title)
    return found


@pytest.mark.django_db
def test_every_surface_shows_instants_in_the_convention(client, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000}
    queue = QueueFactory(slug="support", name="Support")
    max_ = AgentFactory(username="max", role="manager", time_zone="Europe/Berlin")
    customer = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    ticket = ticket_create(
        customer=customer, subject="Printer", channel="email", actor=Actor.of_customer(customer), queue=queue, at=WHEN
    )
    ticket_reply_create(ticket=ticket, author=max_, text="On it.", actor=Actor.agent(max_), at=WHEN, deliver=False)
    notification_send(user=max_, kind="sla_warning", key="k", title="Due soon", ticket=ticket, email=False, at=WHEN)
    result = email_ingest(raw=mail(body="x" * 2000), source="pipe")
    assert result.outcome is IngestOutcome.QUARANTINED
    InboundEmail.objects.filter(pk=result.inbound_email.pk).update(received_at=WHEN)

    berlin = '<time datetime="2026-12-06T14:05:00+01:00" title="Europe/Berlin, UTC+01:00">2026-12-06 14:05 CET</time>'
    client.force_login(max_)
    pages = {
        "inbox": "/desk/",
        "ticket": f"/desk/tickets/{ticket.reference}/",
        "customer": f"/desk/customers/{customer.pk}/",
        "notifications": "/desk/notifications/",
        "quarantine list": "/desk/quarantine/",
        "quarantine detail": f"/desk/quarantine/{result.inbound_email.pk}/",
    }
    for name, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, name
        html = response.content.decode()
        assert shown_times(html), name
        assert berlin in html, name
    ticket_page = client.get(pages["ticket"]).content.decode()
    assert "opened 2026-12-06 14:05 CET" in ticket_page

    # A visitor on the portal's signed link reads the desk's zone.
    client.logout()
    portal = client.get(f"/help/tickets/{portal_token_for(ticket)}/").content.decode()
    shanghai = '<time datetime="2026-12-06T21:05:00+08:00" title="Asia/Shanghai, UTC+08:00">2026-12-06 21:05 CST</time>'
    assert shown_times(portal) and shanghai in portal


def test_a_page_without_a_request_falls_back_to_the_desk_zone(settings):
    settings.TIME_ZONE = "Europe/Dublin"
    template = Template("{% load datetimes %}{{ zone|or_desk_zone }}|{{ other|or_desk_zone }}")
    assert template.render(Context({"other": BERLIN})) == "Europe/Dublin|Europe/Berlin"
