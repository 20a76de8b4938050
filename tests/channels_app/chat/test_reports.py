"""The live-channel figures of real chats (docs/metrics.md#live): the sessions the chat writes are what the reports read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.chat import routing, services
from reports.live import live_report, occupancy_seconds

from .helpers import chat_agent, start, widget_make

pytestmark = pytest.mark.django_db


def test_abandons_just_under_and_over_the_short_limit_and_the_answered_chats(settings):
    widget = widget_make(abandon_grace_seconds=5)
    t0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    agent = chat_agent(widget.queue, capacity=5, at=t0)
    # Three visitors leave before an answer: 4.9 s, exactly 5 s and 5.1 s after asking (S = 5 s, strict).
    for left_after in (4.9, 5.0, 5.1):
        conversation = start(widget, at=t0).conversation
        services.visitor_left(conversation.pk, at=t0 + timedelta(seconds=left_after))
    routing.chat_tick(at=t0 + timedelta(seconds=60))
    # Two are answered, after 12 and 40 s (T = 30 s), and handled for 300 s plus 60 s of wrap-up.
    for wait in (12, 40):
        conversation = start(widget, at=t0).conversation
        services.visitor_seen(conversation.pk, at=t0 + timedelta(seconds=wait))
        services.chat_accept(conversation_id=conversation.pk, agent=agent, at=t0 + timedelta(seconds=wait))
        ended = t0 + timedelta(seconds=wait + 300)
        services.chat_end(conversation_id=conversation.pk, by="agent", agent=agent, at=ended)
        services.chat_wrap_up(conversation_id=conversation.pk, agent=agent, at=ended + timedelta(seconds=60))

    figures = live_report(
        start_utc=t0 - timedelta(minutes=1), end_utc=t0 + timedelta(minutes=1), as_of=t0 + timedelta(hours=1)
    )["live"]["chat"]
    assert (figures["offered"], figures["answered"], figures["abandoned"]) == (5, 2, 3)
    assert figures["short_abandoned"] == 1
    # Within T: the 12 s answer; the abandons at 4.9, 5 and 5.1 s are within T too.
    assert figures["service_level"] == 0.5
    assert figures["asa_seconds"] == 26.0
    assert figures["abandonment_rate"] == 0.5  # (3 - 1) / (5 - 1)
    assert figures["aht_seconds"] == 360.0


def test_a_long_wrap_up_is_counted_in_full():
    """After-contact work of an hour (an agent who left the wrap-up open) in handle time and occupancy."""
    widget = widget_make()
    t0 = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    agent = chat_agent(widget.queue, at=t0)
    conversation = start(widget, at=t0).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent, at=t0 + timedelta(seconds=10))
    services.chat_end(conversation_id=conversation.pk, by="agent", agent=agent, at=t0 + timedelta(seconds=70))
    services.chat_wrap_up(conversation_id=conversation.pk, agent=agent, at=t0 + timedelta(seconds=70 + 3600))
    report = live_report(
        start_utc=t0 - timedelta(minutes=1), end_utc=t0 + timedelta(hours=2), as_of=t0 + timedelta(hours=2)
    )
    assert report["live"]["chat"]["aht_seconds"] == 3660.0
    busy, _ready = occupancy_seconds(
        start_utc=t0 - timedelta(minutes=1), end_utc=t0 + timedelta(hours=2), as_of=t0 + timedelta(hours=2)
    )[agent.pk]
    assert busy == 3660 * 1_000_000  # microseconds
