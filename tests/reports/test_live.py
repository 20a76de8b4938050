"""Live-channel figures (docs/metrics.md#live) against scenarios worked out by hand."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from reports.live import cost_for_period, live_report
from reports.services import report_compute
from servicedesk.tickets.models import AgentPresence, OperatingCost, Session
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.sessions import agent_presence_record, operating_cost_set
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

START = datetime(2025, 10, 20, tzinfo=UTC)
END = datetime(2025, 10, 21, tzinfo=UTC)
T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def at(hour: int, minute: int = 0, day: int = 20) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def customer():
    return CustomerFactory()


def session(
    customer, channel="chat", *, requested, wait=None, abandon=None, talk=None, after=0, agent=None, ticket=None
):
    """A session requested at ``requested``, answered after ``wait`` s (ended ``talk`` s later) or abandoned after ``abandon`` s."""
    answered = requested + s(wait) if wait is not None else None
    return Session.objects.create(
        channel=channel,
        customer=customer,
        agent=agent,
        ticket=ticket,
        requested_at=requested,
        answered_at=answered,
        abandoned_at=requested + s(abandon) if abandon is not None else None,
        ended_at=answered + s(talk) if answered is not None and talk is not None else None,
        after_work_seconds=after,
    )


def test_service_levels_asa_abandonment_and_aht(customer, settings):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "LIVE_THRESHOLD_SECONDS": {"chat": 30, "phone": 20},
        "SHORT_ABANDON_SECONDS": 5,
    }
    agent = AgentFactory(username="ann")
    ticket = ticket_make(customer=customer, channel="chat")
    as_of = at(18)
    # Chat, T = 30 s, S = 5 s.
    session(
        customer, requested=T0, wait=30, talk=600, after=60, agent=agent, ticket=ticket
    )  # exactly T: within; handle 660
    session(customer, requested=T0 + s(100), wait=31, talk=300, agent=agent)  # not within; handle 300
    session(customer, requested=T0 + s(200), wait=10, talk=240, after=30, agent=agent)  # within; handle 270
    session(customer, requested=T0 + s(300), abandon=4.999)  # short abandon (4.999 < 5), within T
    session(customer, requested=T0 + s(400), abandon=5)  # not short (5 is not < 5), within T
    session(customer, requested=T0 + s(500), abandon=45)  # abandoned after T
    session(customer, requested=at(17, 59), wait=90, talk=60, agent=agent)  # answered 18:00:30, after as_of: waiting
    session(customer, requested=START - s(1), wait=1, talk=10, agent=agent)  # requested before the period
    session(customer, requested=END, wait=1, talk=10, agent=agent)  # requested at the (exclusive) end
    # Phone, T = 20 s.
    session(customer, "phone", requested=T0, wait=20, talk=100, agent=agent)  # exactly T; handle 100
    session(
        customer, "phone", requested=T0 + s(60), wait=20.000001, talk=200, after=15, agent=agent
    )  # 1 µs over T; 215

    report = live_report(start_utc=START, end_utc=END, as_of=as_of)

    # Chat: offered 7 (the one answered after as_of included), answered 3, abandoned 3, short 1;
    # answered within T: 2 (30 s, 10 s); abandoned within T: 2 (4.999 s, 5 s); after T: 1.
    assert report["live"]["chat"] == {
        "offered": 7,
        "answered": 3,
        "abandoned": 3,
        "short_abandoned": 1,
        "service_level": 0.5,  # 2 / (3 answered + 1 abandoned after T)
        "service_level_offered": 0.2857,  # 2 / 7
        "service_level_positive": 0.5714,  # (2 + 2) / 7
        "service_level_answered": 0.6667,  # 2 / 3
        "service_level_excluding_short": 0.3333,  # 2 / (7 - 1)
        "asa_seconds": 23.67,  # (30 + 31 + 10) / 3
        "abandonment_rate": 0.3333,  # (3 - 1) / (7 - 1)
        "abandonment_rate_raw": 0.4286,  # 3 / 7
        "aht_seconds": 410.0,  # (660 + 300 + 270) / 3
        "threshold_seconds": 30,
    }
    assert report["live"]["phone"] == {
        "offered": 2,
        "answered": 2,
        "abandoned": 0,
        "short_abandoned": 0,
        "service_level": 0.5,  # 1 / (2 + 0)
        "service_level_offered": 0.5,
        "service_level_positive": 0.5,
        "service_level_answered": 0.5,
        "service_level_excluding_short": 0.5,
        "asa_seconds": 20.0,  # (20 + 20.000001) / 2 = 20.0000005
        "abandonment_rate": 0.0,
        "abandonment_rate_raw": 0.0,
        "aht_seconds": 157.5,  # (100 + 215) / 2
        "threshold_seconds": 20,
    }
    # Answered in the period by as_of: 3 chat + 2 phone.
    assert report["sessions_answered"] == 5


def test_thresholds_come_from_settings(customer, settings):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "LIVE_THRESHOLD_SECONDS": {"chat": 10, "phone": 20},
        "SHORT_ABANDON_SECONDS": 6,
    }
    session(customer, requested=T0, wait=10.5, talk=60, agent=AgentFactory())
    session(customer, requested=T0, abandon=5.5)
    chat = live_report(start_utc=START, end_utc=END, as_of=END)["live"]["chat"]
    # 10.5 s > T = 10: not within; 5.5 s < S = 6: short, and within T.
    assert (chat["threshold_seconds"], chat["short_abandoned"], chat["service_level"]) == (10, 1, 0.0)
    assert chat["service_level_positive"] == 0.5  # (0 + 1) / 2
    assert chat["abandonment_rate"] == 0.0  # (1 - 1) / (2 - 1)


def test_without_sessions_figures_are_null():
    report = live_report(start_utc=START, end_utc=END, as_of=END)
    for channel, threshold in (("chat", 30), ("phone", 20)):
        assert report["live"][channel] == {
            "offered": 0,
            "answered": 0,
            "abandoned": 0,
            "short_abandoned": 0,
            "service_level": None,
            "service_level_offered": None,
            "service_level_positive": None,
            "service_level_answered": None,
            "service_level_excluding_short": None,
            "asa_seconds": None,
            "abandonment_rate": None,
            "abandonment_rate_raw": None,
            "aht_seconds": None,
            "threshold_seconds": threshold,
        }
    assert report["occupancy"] == {"team": None, "by_agent": {}}
    assert report["sessions_answered"] == 0


def test_answered_before_as_of_but_not_ended_has_no_handle_time(customer):
    agent = AgentFactory()
    session(customer, requested=T0, wait=5, talk=600, agent=agent)  # ends 09:10:05
    chat = live_report(start_utc=START, end_utc=END, as_of=at(9, 5))["live"]["chat"]
    assert (chat["answered"], chat["asa_seconds"], chat["aht_seconds"]) == (1, 5.0, None)


@pytest.fixture
def staffed(customer):
    """Ann, Bob and Carl with presence changes and overlapping sessions (times UTC, 2025-10-20)."""
    ann, bob, carl = AgentFactory(username="ann"), AgentFactory(username="bob"), AgentFactory(username="carl")
    for instant, state in ((at(8), "ready"), (at(12), "not_ready"), (at(13), "ready"), (at(17), "offline")):
        agent_presence_record(agent=ann, at=instant, state=state, source="import")
    # Ann's busy intervals [answered, ended + after-contact work):
    session(customer, requested=at(8, 59), wait=60, talk=20 * 60, after=300, agent=ann)  # [09:00, 09:25)
    session(customer, requested=at(9, 9), wait=60, talk=30 * 60, agent=ann)  # [09:10, 09:40) overlaps
    session(customer, requested=at(9, 59), wait=60, talk=10 * 60, after=600, agent=ann)  # [10:00, 10:20)
    session(customer, "phone", requested=at(10, 19), wait=60, talk=10 * 60, agent=ann)  # [10:20, 10:30) touches
    session(customer, requested=at(10, 19), abandon=30)  # abandoned: nobody's busy time
    # Bob is ready from the evening before until 02:00; his session started before the period.
    agent_presence_record(agent=bob, at=at(22, day=19), state="ready", source="import")
    agent_presence_record(agent=bob, at=at(2), state="offline", source="import")
    agent_presence_record(agent=bob, at=at(23, day=20), state="ready", source="import")
    session(customer, requested=at(23, 49, day=19), wait=60, talk=40 * 60, agent=bob)  # [23:50, 00:30)
    # Carl is busy without ever being ready.
    session(customer, requested=at(15), wait=0, talk=600, agent=carl)  # [15:00, 15:10)
    return ann, bob, carl


def test_occupancy_with_overlaps_and_presence_changes(staffed):
    occupancy = live_report(start_utc=START, end_utc=END, as_of=at(12, day=22))["occupancy"]
    # Ann: ready 08-12 and 13-17 = 28,800 s; busy [09:00, 09:40) + [10:00, 10:30) = 4,200 s.
    # Bob: ready 00-02 and 23-24 = 10,800 s; busy [00:00, 00:30) = 1,800 s.
    # Carl: busy 600 s, ready 0 s.
    assert occupancy == {
        "team": 0.1667,  # (4,200 + 1,800 + 600) / (28,800 + 10,800) = 6,600 / 39,600
        "by_agent": {
            "ann@corp.example": 0.1458,  # 4,200 / 28,800
            "bob@corp.example": 0.1667,  # 1,800 / 10,800
            "carl@corp.example": None,
        },
    }


def test_occupancy_is_cut_at_as_of(staffed):
    occupancy = live_report(start_utc=START, end_utc=END, as_of=at(9, 30))["occupancy"]
    # Ann: ready [08:00, 09:30) = 5,400 s; busy [09:00, 09:30) = 1,800 s (the second session still runs).
    # Bob: ready [00:00, 02:00) = 7,200 s; busy 1,800 s. Carl: nothing yet.
    assert occupancy == {
        "team": 0.2857,  # 3,600 / 12,600
        "by_agent": {"ann@corp.example": 0.3333, "bob@corp.example": 0.25},
    }


def test_occupancy_of_a_period_after_as_of_is_empty(staffed):
    assert live_report(start_utc=START, end_utc=END, as_of=START)["occupancy"] == {"team": None, "by_agent": {}}


def test_occupancy_reads_routing_availability_heartbeats_and_expiry_as_one_history(customer):
    """Ready time is time online in routing: the presence rows its changes, expiry and
    heartbeats write (docs/metrics.md#live, docs/architecture.md "Presence")."""
    from servicedesk.routing.services import agent_availability_set, agent_heartbeat, agents_presence_expire

    ann = AgentFactory(username="ann")
    agent_availability_set(agent=ann, availability="online", at=at(8))
    agent_availability_set(agent=ann, availability="away", at=at(10))
    agent_availability_set(agent=ann, availability="online", at=at(11))
    agent_heartbeat(user_id=ann.pk, at=at(11, 59))  # then the last desk tab closes
    assert agents_presence_expire(at=at(12)) == 1  # 60 s without a heartbeat: offline from 12:00
    session(customer, requested=at(8, 29), wait=60, talk=30 * 60, after=300, agent=ann)  # [08:30, 09:05)
    session(customer, requested=at(11, 14), wait=60, talk=30 * 60, agent=ann)  # [11:15, 11:45)
    occupancy = live_report(start_utc=START, end_utc=END, as_of=at(12, 30))["occupancy"]
    # Ready 08-10 and 11-12 = 10,800 s; busy 2,100 + 1,800 = 3,900 s.
    assert occupancy == {"team": 0.3611, "by_agent": {"ann@corp.example": 0.3611}}
    agent_heartbeat(user_id=ann.pk, at=at(12, 30))  # the desk is back: online again from 12:30
    occupancy = live_report(start_utc=START, end_utc=END, as_of=at(13))["occupancy"]
    # Ready 10,800 + 1,800 = 12,600 s.
    assert occupancy == {"team": 0.3095, "by_agent": {"ann@corp.example": 0.3095}}
    assert list(AgentPresence.objects.order_by("at").values_list("state", flat=True)) == [
        "ready",
        "not_ready",
        "ready",
        "offline",
        "ready",
    ]


def test_cost_for_exactly_the_period():
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 11, 1), amount=Decimal("850"), currency="EUR"
    )
    assert cost_for_period(date(2025, 10, 20), date(2025, 11, 1)) == (Decimal("850.00"), "EUR")
    assert cost_for_period(date(2025, 10, 20), date(2025, 10, 31)) is None
    assert cost_for_period(date(2025, 10, 21), date(2025, 11, 1)) is None
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 11, 1), amount=Decimal("901.10"), currency="USD"
    )
    assert cost_for_period(date(2025, 10, 20), date(2025, 11, 1)) == (Decimal("901.10"), "USD")
    assert OperatingCost.objects.count() == 1


def test_presence_record_is_idempotent():
    agent = AgentFactory()
    agent_presence_record(agent=agent, at=T0, state="ready", source="import")
    agent_presence_record(agent=agent, at=T0, state="ready", source="import")
    agent_presence_record(agent=agent, at=T0, state="not_ready", source="import")
    assert list(AgentPresence.objects.values_list("at", "state")) == [(T0, "not_ready")]


def test_cost_per_contact_counts_handled_tickets_and_sessions_not_linked_to_one(customer):
    queue = QueueFactory(slug="live")
    agent = AgentFactory(queues=[queue])
    handled = ticket_make(customer=customer, queue=queue, channel="chat", at=T0)
    ticket_reply_create(ticket=handled, author=agent, text="Hello", at=T0 + s(60), deliver=False)
    waiting = ticket_make(customer=customer, queue=queue, channel="phone", at=T0 + s(120))  # no reply, no solve
    session(customer, requested=T0, wait=5, talk=60, agent=agent, ticket=handled)  # one contact with its ticket
    session(
        customer, "phone", requested=T0 + s(100), wait=5, talk=60, agent=agent, ticket=waiting
    )  # its ticket is not handled
    session(customer, requested=T0 + s(200), wait=5, talk=60, agent=agent)  # no ticket
    session(customer, requested=T0 + s(300), abandon=10)  # abandoned: no contact
    operating_cost_set(
        period_start=date(2025, 10, 20), period_end=date(2025, 10, 21), amount=Decimal("100"), currency="EUR"
    )

    report = report_compute(start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=END)

    # Contacts: 1 handled ticket + 2 answered sessions not linked to a handled ticket = 3; 100 / 3 = 33.33.
    assert report["cost_per_contact"] == {"amount": 33.33, "currency": "EUR", "contacts": 3}
