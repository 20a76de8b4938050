"""One presence history: every ``AvailabilityChange`` becomes a ``desk`` row of
``tickets.AgentPresence`` (online = ready, away = not ready, offline), and each
agent's history is made to end in their current availability.

Idempotent on (agent, at), the presence row's unique key: a second run writes
the same rows again. Two changes of an agent at the same instant leave the
later one (by id); a desk change at an instant an imported row already holds
replaces it, as it is what routing acted on. A profile whose latest presence
row disagrees with its availability (a profile created online, which wrote no
change, or an imported row later than the last change) gets a ``desk`` row of
its availability at the migration's instant, so ``AgentProfile.availability``
is the state of the latest row from here on (docs/architecture.md, "Presence").

Backwards, the changes are rebuilt from the ``desk`` rows (each one's
``before`` the agent's previous desk state, offline for the first); the
presence rows stay, the reports read them.
"""

from django.db import migrations
from django.db.models import OuterRef, Subquery
from django.utils import timezone

STATE = {"online": "ready", "away": "not_ready", "offline": "offline"}
AVAILABILITY = {state: availability for availability, state in STATE.items()}
BATCH = 2000


def _presence_write(AgentPresence, rows):
    AgentPresence.objects.bulk_create(
        [
            AgentPresence(agent_id=agent_id, at=at, state=state, source="desk")
            for (agent_id, at), state in rows.items()
        ],
        update_conflicts=True,
        unique_fields=["agent", "at"],
        update_fields=["state", "source"],
    )


def availability_changes_copy(apps, schema_editor):
    AvailabilityChange = apps.get_model("routing", "AvailabilityChange")
    AgentPresence = apps.get_model("tickets", "AgentPresence")
    AgentProfile = apps.get_model("routing", "AgentProfile")
    # In (at, id) order: within a batch the later change of an instant wins in
    # the dict, across batches the later statement.
    changes = AvailabilityChange.objects.order_by("at", "id").values_list("agent_id", "at", "after")
    rows = {}
    for agent_id, at, after in changes.iterator(chunk_size=BATCH):
        rows[(agent_id, at)] = STATE[after]
        if len(rows) >= BATCH:
            _presence_write(AgentPresence, rows)
            rows = {}
    if rows:
        _presence_write(AgentPresence, rows)

    latest = AgentPresence.objects.filter(agent_id=OuterRef("user_id")).order_by("-at")
    profiles = AgentProfile.objects.annotate(
        latest_state=Subquery(latest.values("state")[:1]),
        latest_at=Subquery(latest.values("at")[:1]),
    ).values_list("pk", "user_id", "availability", "latest_state", "latest_at")
    now = timezone.now()
    for pk, user_id, availability, latest_state, latest_at in profiles:
        if latest_state == STATE[availability] or (latest_state is None and availability == "offline"):
            continue
        at = now if latest_at is None or latest_at < now else latest_at
        _presence_write(AgentPresence, {(user_id, at): STATE[availability]})
        AgentProfile.objects.filter(pk=pk).update(availability_changed_at=at)


def availability_changes_rebuild(apps, schema_editor):
    AvailabilityChange = apps.get_model("routing", "AvailabilityChange")
    AgentPresence = apps.get_model("tickets", "AgentPresence")
    rows = AgentPresence.objects.filter(source="desk").order_by("agent_id", "at").values_list("agent_id", "at", "state")
    before = {}
    changes = []
    for agent_id, at, state in rows.iterator(chunk_size=BATCH):
        after = AVAILABILITY[state]
        changes.append(
            AvailabilityChange(agent_id=agent_id, before=before.get(agent_id, "offline"), after=after, at=at)
        )
        before[agent_id] = after
        if len(changes) >= BATCH:
            AvailabilityChange.objects.bulk_create(changes)
            changes = []
    AvailabilityChange.objects.bulk_create(changes)


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0002_agentprofile_chat_presence"),
        ("tickets", "0017_agentpresence_source"),
    ]

    operations = [
        migrations.RunPython(availability_changes_copy, availability_changes_rebuild),
    ]
