"""One presence history: availability changes, heartbeats, expiry, the chat agents selector,
the chat capacity, and the migration of the old availability changes (docs/architecture.md,
"Presence")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from servicedesk.routing import services
from servicedesk.routing.models import AgentProfile
from servicedesk.routing.selectors import chat_agents_available
from servicedesk.routing.services import (
    agent_availability_set,
    agent_heartbeat,
    agent_profile_ensure,
    agents_presence_expire,
)
from servicedesk.routing.tasks import agents_presence_expire_task
from servicedesk.sla.models import BusinessCalendar, OpeningWindow
from servicedesk.tickets.models import AgentPresence, Ticket
from servicedesk.tickets.services.sessions import agent_presence_record
from tests.api.conftest import client_for
from tests.factories import AgentFactory, UserFactory, ticket_make
from tests.routing.conftest import T0, profile

pytestmark = pytest.mark.django_db

TIMEOUT = timedelta(seconds=45)


def sec(n: float) -> timedelta:
    return timedelta(seconds=n)


def presence(user) -> list[tuple[datetime, str, str]]:
    return list(AgentPresence.objects.filter(agent=user).order_by("at").values_list("at", "state", "source"))


def desk_agent(username: str, *, availability: str = "offline", seen_at: datetime | None = None, **fields):
    """An agent with a profile; online or away as of T0 - 1 h, last heartbeat ``seen_at``."""
    user = AgentFactory(username=username)
    agent_profile_ensure(user=user)
    if availability != "offline":
        agent_availability_set(agent=user, availability=availability, at=T0 - timedelta(hours=1))
    AgentProfile.objects.filter(user=user).update(seen_at=seen_at, **fields)
    return user


# --- availability changes are the presence history --------------------------------------


def test_each_availability_change_writes_one_presence_row():
    ann = desk_agent("ann")
    agent_availability_set(agent=ann, availability="online", at=T0)
    agent_availability_set(agent=ann, availability="away", at=T0 + sec(600))
    agent_availability_set(agent=ann, availability="away", at=T0 + sec(700))  # the current value: no row
    agent_availability_set(agent=ann, availability="offline", at=T0 + sec(900))
    assert presence(ann) == [
        (T0, "ready", "desk"),
        (T0 + sec(600), "not_ready", "desk"),
        (T0 + sec(900), "offline", "desk"),
    ]
    assert (profile(ann).availability, profile(ann).availability_changed_at) == ("offline", T0 + sec(900))


def test_the_presence_row_shares_the_change_transaction():
    ann = desk_agent("ann")
    with pytest.raises(RuntimeError), transaction.atomic():
        agent_availability_set(agent=ann, availability="online", at=T0)
        raise RuntimeError
    assert presence(ann) == []
    assert (profile(ann).availability, profile(ann).availability_changed_at) == ("offline", None)


def test_a_refused_change_writes_nothing():
    ann = desk_agent("ann")
    with pytest.raises(services.InvalidAvailability):
        agent_availability_set(agent=ann, availability="busy", at=T0)
    assert presence(ann) == []


def test_a_profile_created_online_records_its_presence_and_one_created_offline_none():
    ann, ben = AgentFactory(username="ann"), AgentFactory(username="ben")
    agent_profile_ensure(user=ann, availability="online", at=T0)
    agent_profile_ensure(user=ann, availability="away", at=T0 + sec(60))  # exists: unchanged
    agent_profile_ensure(user=ben, availability="offline", at=T0)
    assert presence(ann) == [(T0, "ready", "desk")]
    assert (profile(ann).availability, profile(ann).availability_changed_at) == ("online", T0)
    assert presence(ben) == []


def test_a_clock_that_went_back_still_leaves_the_current_state_on_the_latest_row():
    ann = desk_agent("ann")
    agent_availability_set(agent=ann, availability="online", at=T0 + sec(60))
    agent_availability_set(agent=ann, availability="away", at=T0)  # another server's clock, behind
    assert presence(ann) == [(T0 + sec(60), "not_ready", "desk")]
    assert (profile(ann).availability, profile(ann).availability_changed_at) == ("away", T0 + sec(60))


# --- heartbeats -----------------------------------------------------------------------


def test_a_heartbeat_is_one_statement_and_writes_at_most_every_15_seconds():
    ann = desk_agent("ann", availability="online")
    seen = []
    for offset in (0, 10, 15, 16, 30, 5):  # 5: a late ping from another tab, older than the stored one
        with CaptureQueriesContext(connection) as queries:
            agent_heartbeat(user_id=ann.pk, at=T0 + sec(offset))
        assert len(queries) == 1
        assert queries[0]["sql"].lstrip().startswith("UPDATE")
        seen.append(profile(ann).seen_at)
    assert seen == [T0, T0, T0, T0 + sec(16), T0 + sec(16), T0 + sec(16)]
    assert presence(ann) == [(T0 - timedelta(hours=1), "ready", "desk")]
    assert profile(ann).availability == "online"


def test_a_heartbeat_of_a_user_without_profile_changes_nothing():
    ann = AgentFactory(username="ann")
    with CaptureQueriesContext(connection) as queries:
        agent_heartbeat(user_id=ann.pk, at=T0)
    assert len(queries) == 1
    assert not AgentProfile.objects.exists()
    assert not AgentPresence.objects.exists()


def test_a_heartbeat_without_at_uses_the_clock():
    ann = desk_agent("ann")
    agent_heartbeat(user_id=ann.pk)
    seen = profile(ann).seen_at
    assert seen is not None and abs(datetime.now(UTC) - seen) < sec(60)


# --- expiry and restore ----------------------------------------------------------------


@pytest.fixture
def desk():
    """Agents as of T0 + 46 s (timeout 45 s)."""
    return {
        "ann": desk_agent("ann", availability="online", seen_at=T0),  # quiet: expires
        "bob": desk_agent("bob", availability="away", seen_at=T0),  # quiet: expires
        "cai": desk_agent("cai", availability="online", seen_at=None),  # API only: left alone
        "dan": desk_agent("dan", availability="online", seen_at=T0 + sec(40)),  # recent: stays
        "eve": desk_agent("eve", availability="offline", seen_at=T0),  # offline already
        "fay": desk_agent("fay", availability="online", seen_at=T0 + sec(1)),  # exactly 45 s: stays
    }


def test_expiry_takes_quiet_desk_agents_offline_and_records_it(desk):
    assert settings.SERVICEDESK["PRESENCE_TIMEOUT_SECONDS"] == 45
    assert agents_presence_expire(at=T0 + sec(46)) == 2
    states = dict(AgentProfile.objects.values_list("user__username", "availability"))
    assert states == {
        "ann": "offline",
        "bob": "offline",
        "cai": "online",
        "dan": "online",
        "eve": "offline",
        "fay": "online",
    }
    assert (profile(desk["ann"]).auto_offline_from, profile(desk["bob"]).auto_offline_from) == ("online", "away")
    assert profile(desk["dan"]).auto_offline_from == ""
    assert presence(desk["ann"])[-1] == (T0 + sec(46), "offline", "desk")
    assert presence(desk["bob"])[-1] == (T0 + sec(46), "offline", "desk")
    assert profile(desk["ann"]).availability_changed_at == T0 + sec(46)
    assert AgentPresence.objects.filter(at=T0 + sec(46)).count() == 2


def test_expiry_run_twice_records_once(desk):
    assert agents_presence_expire(at=T0 + sec(46)) == 2
    rows = AgentPresence.objects.count()
    assert agents_presence_expire(at=T0 + sec(46)) == 0
    assert AgentPresence.objects.count() == rows
    assert profile(desk["ann"]).auto_offline_from == "online"


def test_the_beat_task_expires_by_the_clock_and_is_scheduled_every_15_seconds():
    from servicedesk.settings.base import CELERY_BEAT_SCHEDULE

    ann = desk_agent("ann", availability="online", seen_at=datetime.now(UTC) - sec(120))
    ben = desk_agent("ben", availability="online", seen_at=datetime.now(UTC))
    assert agents_presence_expire_task() == 1
    assert (profile(ann).availability, profile(ben).availability) == ("offline", "online")
    entry = CELERY_BEAT_SCHEDULE["routing-presence-expire"]
    assert (entry["task"], entry["schedule"]) == (agents_presence_expire_task.name, timedelta(seconds=15))


def test_a_heartbeat_after_expiry_restores_the_availability_and_records_it(
    desk, routed, django_capture_on_commit_callbacks
):
    ann, bob = desk["ann"], desk["bob"]
    routed.members.add(ann)
    agents_presence_expire(at=T0 + sec(46))
    waiting = ticket_make(queue=routed, subject="Waiting", at=T0 + sec(50))
    assert Ticket.objects.get(pk=waiting.pk).assignee_id is None  # ann is offline
    with django_capture_on_commit_callbacks(execute=True):
        agent_heartbeat(user_id=ann.pk, at=T0 + sec(60))
        agent_heartbeat(user_id=bob.pk, at=T0 + sec(60))
        agent_heartbeat(user_id=ann.pk, at=T0 + sec(61))  # a second tab: throttled, restores nothing twice
    assert (profile(ann).availability, profile(ann).auto_offline_from, profile(ann).seen_at) == (
        "online",
        "",
        T0 + sec(60),
    )
    assert (profile(bob).availability, profile(bob).auto_offline_from) == ("away", "")
    assert presence(ann)[-2:] == [(T0 + sec(46), "offline", "desk"), (T0 + sec(60), "ready", "desk")]
    assert presence(bob)[-2:] == [(T0 + sec(46), "offline", "desk"), (T0 + sec(60), "not_ready", "desk")]
    # Back online, ann takes the ticket that waited (routing's "agent online" pull).
    assert Ticket.objects.get(pk=waiting.pk).assignee_id == ann.pk


def test_an_agent_who_chose_offline_is_not_brought_back_by_a_heartbeat(desk):
    ann = desk["ann"]
    agents_presence_expire(at=T0 + sec(46))
    rows = presence(ann)
    agent_availability_set(agent=ann, availability="offline", at=T0 + sec(50))
    agent_heartbeat(user_id=ann.pk, at=T0 + sec(60))
    assert (profile(ann).availability, profile(ann).auto_offline_from) == ("offline", "")
    assert presence(ann) == rows


def test_choosing_an_availability_after_expiry_ends_the_automatic_offline(desk):
    ann = desk["ann"]
    agents_presence_expire(at=T0 + sec(46))
    agent_availability_set(agent=ann, availability="away", at=T0 + sec(50))
    agent_heartbeat(user_id=ann.pk, at=T0 + sec(60))
    assert (profile(ann).availability, profile(ann).auto_offline_from) == ("away", "")
    assert presence(ann)[-1] == (T0 + sec(50), "not_ready", "desk")


def test_a_restore_that_failed_is_retried_by_the_next_heartbeat(desk, monkeypatch):
    ann = desk["ann"]
    agents_presence_expire(at=T0 + sec(46))
    original = services._availability_write

    def failing(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "_availability_write", failing)
    with pytest.raises(RuntimeError):
        agent_heartbeat(user_id=ann.pk, at=T0 + sec(60))
    assert (profile(ann).availability, profile(ann).auto_offline_from) == ("offline", "online")
    monkeypatch.setattr(services, "_availability_write", original)
    agent_heartbeat(user_id=ann.pk, at=T0 + sec(62))  # within 15 s of the stored heartbeat, still restores
    assert (profile(ann).availability, profile(ann).auto_offline_from) == ("online", "")
    assert presence(ann)[-1] == (T0 + sec(62), "ready", "desk")


# --- the agents a chat may be offered to ------------------------------------------------


def office_hours() -> BusinessCalendar:
    """Monday to Friday 09:00-17:00 in Dublin."""
    calendar = BusinessCalendar.objects.create(slug="dublin-office", name="Dublin office", time_zone="Europe/Dublin")
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=540, end_minute=1020)
    return calendar


def test_chat_agents_available_are_online_recently_seen_with_chat_capacity_and_at_work():
    at = T0  # Monday 10:00 in Dublin (UTC in March)
    calendar = office_hours()
    desk_agent("ann", availability="online", seen_at=at - sec(10))
    desk_agent("bob", availability="away", seen_at=at - sec(10))
    desk_agent("cai", availability="online", seen_at=at - sec(46))  # tab closed, not yet expired
    desk_agent("dan", availability="online", seen_at=None)  # never had a desk socket
    desk_agent("eve", availability="online", seen_at=at - sec(10), chat_capacity=0)
    desk_agent("fay", availability="online", seen_at=at - sec(45), working_hours=calendar)
    gus = desk_agent("gus", availability="online", seen_at=at - sec(10))
    gus.is_active = False
    gus.save(update_fields=["is_active"])
    hal = desk_agent("hal", availability="online", seen_at=at - sec(10))
    hal.groups.clear()  # no longer a desk user
    names = list(chat_agents_available(at=at).values_list("user__username", flat=True))
    assert names == ["ann", "fay"]
    saturday = at + timedelta(days=5)
    AgentProfile.objects.update(seen_at=saturday)
    assert set(chat_agents_available(at=saturday).values_list("user__username", flat=True)) == {"ann", "cai", "dan"}
    evening = at + timedelta(hours=7)  # 17:00 Dublin: the closing instant is outside the window
    AgentProfile.objects.update(seen_at=evening)
    assert "fay" not in set(chat_agents_available(at=evening).values_list("user__username", flat=True))
    AgentProfile.objects.update(seen_at=at)
    assert "fay" in set(chat_agents_available(at=at - timedelta(hours=1)).values_list("user__username", flat=True))


# --- chat capacity ------------------------------------------------------------------------


def test_chat_capacity_defaults_to_the_setting_apart_from_the_ticket_capacity(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ROUTING_DEFAULT_CHAT_CAPACITY": 3}
    profile_ = agent_profile_ensure(user=AgentFactory(username="ann"), capacity=7)
    assert (profile_.capacity, profile_.chat_capacity) == (7, 3)


URL = "/api/v1/me/availability/"


def test_a_manager_sets_their_chat_capacity_through_the_api_within_0_to_20(manager):
    api = client_for(manager)
    response = api.put(URL, {"availability": "online", "chat_capacity": 20}, format="json")
    assert response.status_code == 200
    assert (response.json()["chat_capacity"], response.json()["availability"]) == (20, "online")
    assert profile(manager).chat_capacity == 20
    assert api.put(URL, {"availability": "online", "chat_capacity": 0}, format="json").json()["chat_capacity"] == 0
    for bad in (21, -1, "two", 2.5):
        response = api.put(URL, {"availability": "away", "chat_capacity": bad}, format="json")
        assert response.status_code == 400
        assert list(response.json()["chat_capacity"])
    assert (profile(manager).chat_capacity, profile(manager).availability) == (0, "online")


def test_an_agent_may_send_back_their_chat_capacity_but_not_change_it(agent):
    api = client_for(agent)
    body = api.get(URL).json()
    assert body["chat_capacity"] == 2
    response = api.put(URL, {**body, "availability": "online"}, format="json")
    assert response.status_code == 200 and response.json()["availability"] == "online"
    response = api.put(URL, {"availability": "away", "chat_capacity": 5}, format="json")
    assert response.status_code == 403
    assert list(response.json()["chat_capacity"])
    # Refused as a whole: neither the capacity nor the availability changed.
    assert (profile(agent).chat_capacity, profile(agent).availability) == (2, "online")
    assert [state for _at, state, _source in presence(agent)] == ["ready"]


def test_the_service_refuses_a_chat_capacity_out_of_range():
    ann = AgentFactory(username="ann", role="manager")
    with pytest.raises(services.ApplicationError) as caught:
        services.agent_chat_capacity_set(agent=ann, chat_capacity=21, actor=ann)
    assert caught.value.field == "chat_capacity"
    assert not AgentProfile.objects.exists()


def _admin_form(user, **changes) -> dict:
    data = {
        "user": str(user.pk),
        "capacity": "10",
        "chat_capacity": "2",
        "availability": "offline",
        "working_hours": "",
    }
    data.update({key: str(value) for key, value in changes.items()})
    return data


def test_the_admin_edits_chat_capacity_within_0_to_20(admin_client):
    ann = AgentFactory(username="ann")
    agent_profile_ensure(user=ann)
    url = reverse("admin:routing_agentprofile_change", args=[profile(ann).pk])
    assert admin_client.get(url).status_code == 200
    for bad in (21, -1):
        response = admin_client.post(url, _admin_form(ann, chat_capacity=bad))
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["chat_capacity"]
        assert profile(ann).chat_capacity == 2
    response = admin_client.post(url, _admin_form(ann, chat_capacity=20, capacity=4))
    assert response.status_code == 302
    assert (profile(ann).chat_capacity, profile(ann).capacity) == (20, 4)
    assert presence(ann) == []


def test_an_availability_set_in_the_admin_is_recorded_as_presence(admin_client):
    ann = AgentFactory(username="ann")
    agent_profile_ensure(user=ann)
    url = reverse("admin:routing_agentprofile_change", args=[profile(ann).pk])
    assert admin_client.post(url, _admin_form(ann, availability="away")).status_code == 302
    assert profile(ann).availability == "away"
    assert [(state, source) for _at, state, source in presence(ann)] == [("not_ready", "desk")]
    assert presence(ann)[0][0] == profile(ann).availability_changed_at
    customer_user = UserFactory(username="cust")
    other = AgentProfile.objects.create(user=customer_user)
    url = reverse("admin:routing_agentprofile_change", args=[other.pk])
    response = admin_client.post(url, _admin_form(customer_user, availability="online"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["availability"]
    assert AgentProfile.objects.get(pk=other.pk).availability == "offline"


# --- the migration of the old availability changes -----------------------------------------

MIGRATION = "servicedesk.routing.migrations.0003_availability_changes_to_presence"
D0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def before_0003():
    """The models as the data migration sees them, with the old table created for the test."""
    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(
        [("routing", "0002_agentprofile_chat_presence"), ("tickets", "0017_agentpresence_source")]
    )
    apps = state.apps
    with connection.schema_editor() as editor:
        editor.create_model(apps.get_model("routing", "AvailabilityChange"))
    return apps


def test_the_migration_copies_availability_changes_into_presence_once(before_0003):
    migration = import_module(MIGRATION)
    change_model = before_0003.get_model("routing", "AvailabilityChange")
    profile_model = before_0003.get_model("routing", "AgentProfile")
    ann, bob, cai, dan, eve = (AgentFactory(username=name) for name in ("ann", "bob", "cai", "dan", "eve"))
    h = timedelta(hours=1)
    change_model.objects.create(agent_id=ann.pk, before="offline", after="online", at=D0)
    change_model.objects.create(agent_id=ann.pk, before="online", after="away", at=D0 + h)
    change_model.objects.create(
        agent_id=ann.pk, before="away", after="online", at=D0 + h
    )  # same instant: the later wins
    change_model.objects.create(agent_id=ann.pk, before="online", after="offline", at=D0 + 2 * h)
    profile_model.objects.create(user_id=ann.pk, availability="offline", availability_changed_at=D0 + 2 * h)
    # Bob: an imported row at the instant of a desk change: the desk's state wins.
    agent_presence_record(agent=bob, at=D0, state="ready", source="import")
    change_model.objects.create(agent_id=bob.pk, before="offline", after="away", at=D0)
    profile_model.objects.create(user_id=bob.pk, availability="away", availability_changed_at=D0)
    # Cai: created online (seed_demo), which wrote no change.
    profile_model.objects.create(user_id=cai.pk, availability="online")
    # Dan: never changed, offline: no history needed.
    profile_model.objects.create(user_id=dan.pk, availability="offline")
    # Eve: an imported row later than her last change disagrees with her current state.
    change_model.objects.create(agent_id=eve.pk, before="offline", after="online", at=D0)
    agent_presence_record(agent=eve, at=D0 + 3 * h, state="offline", source="import")
    profile_model.objects.create(user_id=eve.pk, availability="online", availability_changed_at=D0)

    migration.availability_changes_copy(before_0003, None)
    first = list(AgentPresence.objects.order_by("agent_id", "at").values_list("agent_id", "at", "state", "source"))
    migration.availability_changes_copy(before_0003, None)
    assert (
        list(AgentPresence.objects.order_by("agent_id", "at").values_list("agent_id", "at", "state", "source")) == first
    )

    assert presence(ann) == [(D0, "ready", "desk"), (D0 + h, "ready", "desk"), (D0 + 2 * h, "offline", "desk")]
    assert presence(bob) == [(D0, "not_ready", "desk")]
    ((cai_at, cai_state, cai_source),) = presence(cai)
    assert (cai_state, cai_source) == ("ready", "desk")
    assert abs(datetime.now(UTC) - cai_at) < timedelta(minutes=5)
    assert profile(cai).availability_changed_at == cai_at
    assert presence(dan) == []
    assert presence(eve)[:2] == [(D0, "ready", "desk"), (D0 + 3 * h, "offline", "import")]
    assert [(state, source) for _at, state, source in presence(eve)[2:]] == [("ready", "desk")]
    # Every profile's availability is now the state of its latest row.
    latest = {
        user.pk: AgentPresence.objects.filter(agent=user).order_by("-at").values_list("state", flat=True).first()
        for user in (ann, bob, cai, dan, eve)
    }
    assert latest == {ann.pk: "offline", bob.pk: "not_ready", cai.pk: "ready", dan.pk: None, eve.pk: "ready"}


def test_the_migration_backwards_rebuilds_the_changes_from_desk_rows(before_0003):
    migration = import_module(MIGRATION)
    change_model = before_0003.get_model("routing", "AvailabilityChange")
    ann = AgentFactory(username="ann")
    agent_presence_record(agent=ann, at=D0, state="ready", source="desk")
    agent_presence_record(agent=ann, at=D0 + sec(60), state="not_ready", source="desk")
    agent_presence_record(agent=ann, at=D0 - sec(60), state="ready", source="import")
    migration.availability_changes_rebuild(before_0003, None)
    assert list(change_model.objects.order_by("at").values_list("before", "after", "at")) == [
        ("offline", "online", D0),
        ("online", "away", D0 + sec(60)),
    ]
