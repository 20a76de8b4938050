"""Automatic assignment: order, skills, capacity, availability, working hours, tiers, events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from servicedesk.desk.timeline import ticket_timeline
from servicedesk.routing import services
from servicedesk.routing.models import Assignment, QueueRouting, Trigger
from servicedesk.routing.selectors import agent_loads, is_open
from servicedesk.routing.services import agent_availability_set, queue_routing_set, ticket_route
from servicedesk.routing.tasks import agent_tickets_pull_task, waiting_tickets_route_task
from servicedesk.sla.calendars import CalendarSpec
from servicedesk.sla.models import BusinessCalendar, OpeningWindow
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import AgentPresence, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import (
    ticket_assign,
    ticket_delete_set,
    ticket_merge,
    ticket_queue_change,
    ticket_spam_set,
    ticket_status_change,
)
from tests.factories import CustomerFactory, OrganizationFactory, QueueFactory, TopicFactory, ticket_make
from tests.routing.conftest import T0, profile, skill

pytestmark = pytest.mark.django_db


def arrivals(queue, n: int, **kwargs) -> list[Ticket]:
    return [ticket_make(queue=queue, subject=f"Question {i}", at=T0 + timedelta(minutes=i), **kwargs) for i in range(n)]


def assignees(tickets: list[Ticket]) -> list[str | None]:
    found = dict(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("pk", "assignee__username"))
    return [found[t.pk] for t in tickets]


# --- order -------------------------------------------------------------------


def test_round_robin_serves_agents_in_turn(routed, make_agent):
    make_agent("ann", queues=[routed])
    make_agent("ben", queues=[routed])
    make_agent("cai", queues=[routed])
    tickets = arrivals(routed, 7)
    assert assignees(tickets) == ["ann", "ben", "cai", "ann", "ben", "cai", "ann"]
    # The caller's instance is updated too.
    assert tickets[0].assignee.username == "ann"


def test_round_robin_newcomer_takes_one_turn_then_joins_the_round(routed, make_agent):
    make_agent("ann", queues=[routed])
    make_agent("ben", queues=[routed])
    first = arrivals(routed, 3)
    make_agent("cai", queues=[routed])
    later = [ticket_make(queue=routed, at=T0 + timedelta(hours=1, minutes=i)) for i in range(4)]
    assert assignees(first) == ["ann", "ben", "ann"]
    assert assignees(later) == ["cai", "ben", "ann", "cai"]


def test_round_robin_skips_an_agent_at_capacity_without_losing_their_turn(routed, make_agent):
    make_agent("ann", queues=[routed], capacity=1)
    make_agent("ben", queues=[routed])
    tickets = arrivals(routed, 3)
    assert assignees(tickets) == ["ann", "ben", "ben"]


def test_least_loaded_prefers_the_agent_with_fewest_open_tickets(queue, make_agent, agent):
    queue_routing_set(queue=queue, mode="least_loaded")
    ann = make_agent("ann2", queues=[queue])
    ben = make_agent("ben", queues=[queue])
    cai = make_agent("cai", queues=[queue])
    # Work given by hand: ann 2, cai 1, ben none.
    for owner in (ann, ann, cai):
        ticket_assign(ticket=ticket_make(queue=queue, assignee=owner), assignee=owner, actor=Actor.agent(agent))
    assert agent_loads([ann.pk, ben.pk, cai.pk]) == {ann.pk: 2, cai.pk: 1}
    tickets = arrivals(queue, 5)
    # ben (0 open); ben 1 / cai 1: cai, served longer ago; ben (1 against 2, 2); all at 2:
    # ann, never served by routing; then ben 2 / cai 2: cai, served longer ago.
    assert assignees(tickets) == ["ben", "cai", "ben", "ann2", "cai"]
    assert agent_loads([ann.pk, ben.pk, cai.pk]) == {ann.pk: 3, ben.pk: 2, cai.pk: 3}


# --- skills ------------------------------------------------------------------


def test_language_topic_channel_and_required_skills_exclude_agents(queue, make_agent):
    billing_topic = TopicFactory(slug="billing", queue=queue)
    vip = skill("other", "vip-desk")
    queue_routing_set(
        queue=queue,
        mode="round_robin",
        match_language=True,
        match_topic=True,
        match_channel=True,
        required_skills=[vip],
    )
    full = [skill("language", "zh"), skill("topic", "billing"), skill("channel", "email"), vip]
    make_agent("a-no-vip", queues=[queue], skills=full[:3])
    make_agent("b-english", queues=[queue], skills=[skill("language", "en"), *full[1:]])
    make_agent("c-no-topic", queues=[queue], skills=[full[0], full[2], vip])
    make_agent("d-chat", queues=[queue], skills=[full[0], full[1], skill("channel", "chat"), vip])
    make_agent("e-all", queues=[queue], skills=full)
    tickets = [
        ticket_make(queue=queue, channel="email", topic=billing_topic, language=language, at=T0 + timedelta(minutes=i))
        for i, language in enumerate(["zh-Hans", "ZH", "zh_CN"])
    ]
    assert assignees(tickets) == ["e-all", "e-all", "e-all"]
    # Wrong channel: nobody may take it, it waits.
    waiting = ticket_make(queue=queue, channel="web", topic=billing_topic, language="zh", at=T0 + timedelta(hours=1))
    assert assignees([waiting]) == [None]


def test_a_ticket_without_language_or_topic_needs_no_such_skill(queue, make_agent):
    queue_routing_set(queue=queue, mode="round_robin", match_language=True, match_topic=True)
    make_agent("ann", queues=[queue])
    tickets = [ticket_make(queue=queue, language="", at=T0)]
    assert assignees(tickets) == ["ann"]


def test_skill_values_are_stored_in_one_form():
    assert skill("language", "zh-Hant").value == "zh"
    assert skill("language", " EN_gb ").value == "en"
    assert skill("topic", "Billing").value == "billing"
    assert skill("channel", "EMAIL").value == "email"
    with pytest.raises(services.ApplicationError):
        skill("channel", "fax")
    with pytest.raises(services.ApplicationError):
        skill("language", "english")


def test_only_members_of_the_queue_with_a_desk_role_and_active(routed, make_agent):
    other = QueueFactory(slug="billing")
    make_agent("elsewhere", queues=[other])
    gone = make_agent("gone", queues=[routed])
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    ghost = make_agent("ghost", queues=[routed])
    ghost.groups.clear()
    make_agent("ann", queues=[routed])
    assert assignees(arrivals(routed, 2)) == ["ann", "ann"]


# --- capacity and availability -------------------------------------------------


def test_capacity_is_never_exceeded_and_a_solve_frees_a_place(routed, make_agent, django_capture_on_commit_callbacks):
    ann = make_agent("ann", queues=[routed], capacity=2)
    tickets = arrivals(routed, 3)
    assert assignees(tickets) == ["ann", "ann", None]
    assert agent_loads([ann.pk]) == {ann.pk: 2}
    with django_capture_on_commit_callbacks(execute=True):
        ticket_status_change(ticket=tickets[0], status="solved", actor=Actor.agent(ann), at=T0 + timedelta(hours=1))
    assert assignees(tickets) == ["ann", "ann", "ann"]
    assert agent_loads([ann.pk]) == {ann.pk: 2}
    assignment = Assignment.objects.get(ticket=tickets[2])
    assert (assignment.mode, assignment.trigger, assignment.load_before) == ("round_robin", "capacity_freed", 1)


@pytest.mark.parametrize("change", ["unassign", "reassign", "merge", "spam", "delete", "pending"])
def test_what_frees_capacity(change, routed, make_agent, agent, django_capture_on_commit_callbacks):
    make_agent("ann", queues=[routed], capacity=1)
    ben = make_agent("ben", queues=[routed], capacity=5, availability="offline")
    first, second = arrivals(routed, 2)
    assert assignees([first, second]) == ["ann", None]
    actor = Actor.agent(agent)
    with django_capture_on_commit_callbacks(execute=True):
        if change == "unassign":
            ticket_assign(ticket=first, assignee=None, actor=actor)
        elif change == "reassign":
            ticket_assign(ticket=first, assignee=ben, actor=actor)
        elif change == "merge":
            ticket_merge(source=first, target=ticket_make(queue=routed, customer=first.customer), actor=actor)
        elif change == "spam":
            ticket_spam_set(ticket=first, spam=True, actor=actor)
        elif change == "delete":
            ticket_delete_set(ticket=first, deleted=True, actor=actor)
        else:
            ticket_status_change(ticket=first, status="pending", actor=actor)
    if change == "pending":
        # Pending still counts against capacity: nothing moves.
        assert assignees([first, second]) == ["ann", None]
    elif change == "unassign":
        # The unassigned ticket waits again and is served first (older): back to ann.
        assert assignees([first, second]) == ["ann", None]
        assert Assignment.objects.filter(ticket=first, trigger="capacity_freed").count() == 1
    else:
        assert assignees([second]) == ["ann"]


def test_away_and_offline_agents_get_nothing_and_coming_online_pulls(
    routed, make_agent, django_capture_on_commit_callbacks
):
    make_agent("ann", queues=[routed], availability="away")
    ben = make_agent("ben", queues=[routed], availability="offline")
    tickets = arrivals(routed, 2)
    assert assignees(tickets) == [None, None]
    with django_capture_on_commit_callbacks(execute=True):
        agent_availability_set(agent=ben, availability="online", at=T0 + timedelta(hours=2))
    assert assignees(tickets) == ["ben", "ben"]
    assert set(Assignment.objects.values_list("trigger", flat=True)) == {"agent_online"}
    change = AgentPresence.objects.get(agent=ben)
    assert (change.state, change.source, change.at) == ("ready", "desk", T0 + timedelta(hours=2))
    assert profile(ben).availability_changed_at == T0 + timedelta(hours=2)


def test_availability_set_twice_records_one_change_and_refuses_unknown_values(routed, make_agent):
    ann = make_agent("ann", queues=[routed], availability="offline")
    agent_availability_set(agent=ann, availability="away", at=T0)
    agent_availability_set(agent=ann, availability="away", at=T0 + timedelta(minutes=1))
    with pytest.raises(services.InvalidAvailability):
        agent_availability_set(agent=ann, availability="busy", at=T0 + timedelta(minutes=2))
    assert list(AgentPresence.objects.filter(agent=ann).values_list("state", "at")) == [("not_ready", T0)]
    assert profile(ann).availability == "away"


# --- working hours -------------------------------------------------------------


def office_hours() -> BusinessCalendar:
    """Monday to Friday 09:00-17:00 in Dublin."""
    calendar = BusinessCalendar.objects.create(slug="dublin-office", name="Dublin office", time_zone="Europe/Dublin")
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=540, end_minute=1020)
    return calendar


def test_is_open_includes_the_opening_instant_and_excludes_the_closing_one():
    spec = CalendarSpec(time_zone="UTC", windows={0: ((540, 1020),)})
    monday_nine = T0.replace(hour=9)
    assert is_open(spec, monday_nine) is True
    assert is_open(spec, monday_nine - timedelta(microseconds=1)) is False
    assert is_open(spec, T0.replace(hour=17) - timedelta(microseconds=1)) is True
    assert is_open(spec, T0.replace(hour=17)) is False


def test_outside_working_hours_an_agent_gets_nothing_until_they_open(routed, make_agent):
    ann = make_agent("ann", queues=[routed])
    profile_ann = profile(ann)
    profile_ann.working_hours = office_hours()
    profile_ann.save(update_fields=["working_hours"])
    # Saturday: closed. Dublin is UTC+0 in March before the clock change.
    saturday = T0 + timedelta(days=5)
    ticket = ticket_make(queue=routed, at=saturday)
    assert assignees([ticket]) == [None]
    # Monday 08:59 still closed, 09:00 open: the periodic retry routes it.
    assert services.waiting_tickets_route_all(at=T0 + timedelta(days=7, hours=-1, minutes=-1)) == 0
    assert services.waiting_tickets_route_all(at=T0 + timedelta(days=7, hours=-1)) == 1
    assert assignees([ticket]) == ["ann"]
    assert Assignment.objects.get(ticket=ticket).trigger == "waiting"


# --- tiers -----------------------------------------------------------------------


def test_waiting_tickets_are_served_by_tier_then_priority_then_age(
    routed, make_agent, settings, django_capture_on_commit_callbacks
):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ROUTING_TIER_ORDER": ["enterprise", "premium", "standard"]}
    ann = make_agent("ann", queues=[routed], capacity=4, availability="offline")
    enterprise = CustomerFactory(organization=OrganizationFactory(tier="enterprise"))
    premium = CustomerFactory(organization=OrganizationFactory(tier="premium"))
    standard = CustomerFactory(organization=OrganizationFactory(tier="standard"))
    nobody = CustomerFactory()
    made = {
        "none-urgent": ticket_make(queue=routed, customer=nobody, priority="urgent", at=T0),
        "standard-old": ticket_make(queue=routed, customer=standard, at=T0 + timedelta(minutes=1)),
        "premium-normal": ticket_make(queue=routed, customer=premium, at=T0 + timedelta(minutes=2)),
        "standard-high": ticket_make(queue=routed, customer=standard, priority="high", at=T0 + timedelta(minutes=3)),
        "enterprise-low": ticket_make(queue=routed, customer=enterprise, priority="low", at=T0 + timedelta(minutes=4)),
        "premium-urgent": ticket_make(queue=routed, customer=premium, priority="urgent", at=T0 + timedelta(minutes=5)),
    }
    with django_capture_on_commit_callbacks(execute=True):
        agent_availability_set(agent=ann, availability="online", at=T0 + timedelta(hours=1))
    served = list(Assignment.objects.order_by("id").values_list("ticket_id", flat=True))
    names = {t.pk: name for name, t in made.items()}
    assert [names[pk] for pk in served] == ["enterprise-low", "premium-urgent", "premium-normal", "standard-high"]


# --- events and modes --------------------------------------------------------------


def test_each_assignment_is_an_assignee_event_with_its_reason(routed, make_agent):
    ann = make_agent("ann", queues=[routed])
    ticket = ticket_make(queue=routed, at=T0)
    event = TicketEvent.objects.get(ticket=ticket, kind="assignee")
    assert (event.before, event.after, event.source, event.actor_user_id, event.at) == (
        None,
        ann.pk,
        "routing",
        None,
        T0,
    )
    assignment = Assignment.objects.get(event=event)
    assert (assignment.ticket_id, assignment.agent_id, assignment.queue_id) == (ticket.pk, ann.pk, routed.pk)
    assert (assignment.mode, assignment.trigger, assignment.load_before, assignment.reason) == (
        "round_robin",
        "intake",
        0,
        "round_robin/intake",
    )
    rows = [(row.event.kind, row.after) for row in ticket_timeline(ticket, user=ann)]
    assert rows[-1] == ("assignee", "Ann")
    assert profile(ann).last_assigned_at == T0


def test_manual_mode_and_queues_without_routing_assign_nothing(queue, make_agent):
    make_agent("ann", queues=[queue])
    assert assignees(arrivals(queue, 2)) == [None, None]
    QueueRouting.objects.create(queue=queue, mode="manual")
    ticket = ticket_make(queue=queue, at=T0)
    assert ticket_route(ticket=ticket, trigger=Trigger.WAITING) is None
    assert waiting_tickets_route_task() == 0
    assert assignees([ticket]) == [None]
    assert not TicketEvent.objects.filter(kind="assignee").exists()
    assert not Assignment.objects.exists()


def test_imported_outbound_spam_and_preassigned_tickets_are_not_routed(routed, make_agent):
    ann = make_agent("ann", queues=[routed])
    ben = make_agent("ben", queues=[routed])
    imported = ticket_make(queue=routed, actor=Actor.system(source="import"))
    outbound = ticket_make(queue=routed, initiator="outbound")
    spam = ticket_make(queue=routed, is_spam=True)
    preassigned = ticket_make(queue=routed, assignee=ben)
    assert assignees([imported, outbound, spam, preassigned]) == [None, None, None, "ben"]
    assert not Assignment.objects.exists()
    assert ann.pk


def test_a_ticket_found_not_to_be_spam_is_routed(routed, make_agent, agent, django_capture_on_commit_callbacks):
    make_agent("ann", queues=[routed])
    spam = ticket_make(queue=routed, is_spam=True, at=T0)
    assert assignees([spam]) == [None]
    with django_capture_on_commit_callbacks(execute=True):
        ticket_spam_set(ticket=spam, spam=False, actor=Actor.agent(agent))
    assert assignees([spam]) == ["ann"]
    assert Assignment.objects.get(ticket=spam).trigger == "waiting"


def test_routing_twice_assigns_once(routed, make_agent):
    ann = make_agent("ann", queues=[routed], availability="offline")
    ticket = ticket_make(queue=routed, at=T0)
    agent_availability_set(agent=ann, availability="online", at=T0)
    assert agent_tickets_pull_task(ann.pk, "agent_online") == 1
    assert agent_tickets_pull_task(ann.pk, "agent_online") == 0
    assert ticket_route(ticket=ticket, trigger=Trigger.WAITING) is None
    assert TicketEvent.objects.filter(ticket=ticket, kind="assignee").count() == 1


def test_moving_a_ticket_into_a_routed_queue_routes_it(
    queue, routed, make_agent, agent, django_capture_on_commit_callbacks
):
    manual = QueueFactory(slug="triage")
    make_agent("ann", queues=[routed])
    ticket = ticket_make(queue=manual, at=T0)
    assert assignees([ticket]) == [None]
    with django_capture_on_commit_callbacks(execute=True):
        ticket_queue_change(ticket=ticket, queue=routed, actor=Actor.agent(agent))
    assert assignees([ticket]) == ["ann"]
    assert Assignment.objects.get(ticket=ticket).trigger == "waiting"


def test_intake_routes_a_new_contact(routed, make_agent):
    from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
    from servicedesk.tickets.services.intake import inbound_message_receive

    make_agent("ann", queues=[routed])
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id="form-1",
            sender=SenderIdentity("email", "new@example.com"),
            subject="Hello",
            text="Please help",
            queue="support",
        )
    )
    assert result.ticket.assignee.username == "ann"
    assert assignees([result.ticket]) == ["ann"]
