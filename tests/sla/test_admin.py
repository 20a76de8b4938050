"""Managers edit calendars in the admin: HH:MM windows and holiday seeding."""

from datetime import date

import pytest
from django.urls import reverse

from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow

pytestmark = pytest.mark.django_db


def _calendar_form(**extra):
    data = {
        "slug": "dublin",
        "name": "Dublin",
        "time_zone": "Europe/Dublin",
        "is_default": "on",
        "windows-TOTAL_FORMS": "2",
        "windows-INITIAL_FORMS": "0",
        "windows-0-weekday": "0",
        "windows-0-opens": "09:00",
        "windows-0-closes": "17:30",
        "windows-1-weekday": "5",
        "windows-1-opens": "20:00",
        "windows-1-closes": "24:00",
        "holidays-TOTAL_FORMS": "1",
        "holidays-INITIAL_FORMS": "0",
        "holidays-0-date": "2025-12-25",
        "holidays-0-name": "Christmas Day",
    }
    data.update(extra)
    return data


def test_windows_are_typed_as_clock_times(admin_client):
    response = admin_client.post(reverse("admin:sla_businesscalendar_add"), _calendar_form())
    assert response.status_code == 302
    calendar = BusinessCalendar.objects.get(slug="dublin")
    assert sorted(calendar.windows.values_list("weekday", "start_minute", "end_minute")) == [
        (0, 540, 1050),
        (5, 1200, 1440),
    ]
    assert str(calendar.windows.get(weekday=5)) == "Saturday 20:00-24:00"
    change = admin_client.get(reverse("admin:sla_businesscalendar_change", args=[calendar.pk]))
    assert 'value="24:00"' in change.content.decode()


@pytest.mark.parametrize(("opens", "closes"), [("17:00", "09:00"), ("9", "17:00"), ("09:00", "24:30")])
def test_bad_windows_are_refused(admin_client, opens, closes):
    form = _calendar_form(**{"windows-0-opens": opens, "windows-0-closes": closes})
    response = admin_client.post(reverse("admin:sla_businesscalendar_add"), form)
    assert response.status_code == 200
    assert not BusinessCalendar.objects.exists()
    assert not OpeningWindow.objects.exists()


def test_seed_holidays_action(admin_client):
    calendar = BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin")
    url = reverse("admin:sla_businesscalendar_changelist")
    chosen = {"action": "seed_holidays", "_selected_action": [calendar.pk]}
    page = admin_client.post(url, chosen)
    assert page.status_code == 200
    assert 'name="first_year"' in page.content.decode()
    seed = {**chosen, "seed": "1", "country": "IE", "first_year": "2025", "last_year": "2025"}
    assert admin_client.post(url, seed).status_code == 302
    assert admin_client.post(url, seed).status_code == 302
    assert Holiday.objects.filter(calendar=calendar).count() == 10
    assert Holiday.objects.filter(calendar=calendar, date=date(2025, 10, 27)).exists()
    unknown = admin_client.post(url, {**seed, "country": "XX"}, follow=True)
    assert "No holiday data for XX." in unknown.content.decode()
