"""The dashboard's community figures (docs/metrics.md#community), with exact values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from channels_app.forum.figures import community_figures
from channels_app.forum.models import Kind, State, Topic
from tests.channels_app.forum.helpers import topic_make
from tests.reports.delivery_helpers import calendar_make

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 2, tzinfo=UTC)
END = datetime(2026, 11, 9, tzinfo=UTC)


def question(member, category, *, at: datetime, first_reply_after: timedelta | None = None, **fields) -> Topic:  # type: ignore[no-untyped-def]
    topic = topic_make(member, category, title=f"Question at {at.isoformat()}")
    Topic.objects.filter(pk=topic.pk).update(
        created_at=at,
        first_reply_at=at + first_reply_after if first_reply_after is not None else None,
        **fields,
    )
    return topic


def test_the_periods_questions_their_replies_answers_and_escalations(public, alice, bob):
    day = timedelta(days=1)
    question(alice, public, at=START + timedelta(hours=1), first_reply_after=timedelta(minutes=30), accepted_count=1)
    question(alice, public, at=START + day, first_reply_after=timedelta(hours=30))  # replied, but late
    question(bob, public, at=START + 2 * day)  # never replied
    question(bob, public, at=START + 3 * day, first_reply_after=timedelta(hours=2), accepted_count=2)
    # Too young to be decided at as_of: counted as asked, not yet in the 24-hour share.
    question(bob, public, at=END - timedelta(hours=3), first_reply_after=timedelta(hours=1))
    # Not counted: held for a moderator, another kind, before the period, after it.
    question(alice, public, at=START + day, first_reply_after=timedelta(minutes=1), state=State.HELD)
    question(alice, public, at=START + day, first_reply_after=timedelta(minutes=1), kind=Kind.IDEA)
    question(alice, public, at=START - timedelta(minutes=1), first_reply_after=timedelta(minutes=1))
    question(alice, public, at=END, first_reply_after=timedelta(minutes=1))
    escalated = question(bob, public, at=START - 5 * day, escalated_at=START + 4 * day)
    question(bob, public, at=START - 5 * day, escalated_at=START - day)

    figures = community_figures(start=START, end=END, as_of=END)

    assert figures == {
        "questions": 5,
        "answered_within_24h": {"answered": 2, "decided": 4, "rate": 0.5},
        "accepted": {"count": 2, "rate": 0.4},
        # 30 min, 60 min, 120 min, 1,800 min: the median of four is 90.
        "median_first_reply_minutes": 90.0,
        "escalations": 1,
    }
    assert Topic.objects.get(pk=escalated.pk).escalated_at == START + 4 * day


def test_a_period_without_questions_has_no_rates(public):
    figures = community_figures(start=START, end=END, as_of=END)
    assert figures["questions"] == 0
    assert figures["answered_within_24h"]["rate"] is None and figures["accepted"]["rate"] is None
    assert figures["median_first_reply_minutes"] is None


def test_the_dashboard_shows_the_community_section(client, manager, public, alice):
    question(alice, public, at=datetime.now(UTC) - timedelta(hours=30), first_reply_after=timedelta(minutes=6))
    calendar_make()
    client.force_login(manager)
    today = timezone.localdate()
    period = {"preset": "custom", "start": str(today - timedelta(days=3)), "end": str(today + timedelta(days=1))}
    page = client.get("/desk/reports/", {**period, "calendar": "dublin"}).content.decode()
    section = page.split('id="community"', 1)[1].split("</section>", 1)[0]
    assert "Questions asked" in section and "100.00 %" in section and "6.00" in section
