"""Imported presence and routing's availability are one history (docs/architecture.md,
"Presence"): an import writes the past before the desk's first presence row of the agent,
and never changes an agent's current state."""

from datetime import UTC, datetime

import pytest

from servicedesk.accounts.models import User
from servicedesk.routing.models import AgentProfile
from servicedesk.routing.services import agent_availability_set
from servicedesk.tickets.models import AgentPresence
from tests.importer.test_import_live import AGENT, run

pytestmark = pytest.mark.django_db


def presence_line(at: str, state: str) -> str:
    return f'{{"kind":"presence","agent":"a1","at":"{at}","state":"{state}"}}'


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rows() -> list[tuple[datetime, str, str]]:
    return list(AgentPresence.objects.order_by("at").values_list("at", "state", "source"))


@pytest.mark.parametrize("bulk", [True, False])
def test_imported_rows_are_import_rows_and_leave_routing_alone(bulk):
    _importer, errors = run(
        AGENT,
        presence_line("2025-10-24T15:00:00Z", "ready"),
        presence_line("2025-10-24T17:00:00Z", "not_ready"),
        bulk=bulk,
    )
    assert errors == []
    assert rows() == [
        (at("2025-10-24T15:00:00"), "ready", "import"),
        (at("2025-10-24T17:00:00"), "not_ready", "import"),
    ]
    # No routing profile was made or changed: the agent is offline until they choose otherwise.
    assert not AgentProfile.objects.exists()


@pytest.mark.parametrize("bulk", [True, False])
def test_presence_from_the_first_desk_row_on_is_refused(bulk):
    run(AGENT)
    ann = User.objects.get(external_id="a1")
    agent_availability_set(agent=ann, availability="online", at=at("2025-10-24T16:00:00"))
    agent_availability_set(agent=ann, availability="away", at=at("2025-10-24T18:00:00"))
    importer, errors = run(
        presence_line("2025-10-24T15:00:00Z", "ready"),  # before the desk's history: kept
        presence_line("2025-10-24T16:00:00Z", "ready"),  # the desk's own row, same state: nothing to do
        presence_line("2025-10-24T16:00:00Z", "offline"),  # would rewrite the desk's row
        presence_line("2025-10-24T17:00:00Z", "offline"),  # between desk rows
        presence_line("2025-10-24T19:00:00Z", "offline"),  # after the current state
        bulk=bulk,
    )
    refusal = (
        "'at' is not before agent 'a1''s first presence recorded in the desk (2025-10-24T16:00:00+00:00);"
        " from then on the desk's presence history is kept"
    )
    assert errors == [f"live.jsonl:{line}: {refusal}" for line in (3, 4, 5)]
    assert (importer.stats.applied, importer.stats.skipped, importer.stats.errors) == (1, 1, 3)
    assert rows() == [
        (at("2025-10-24T15:00:00"), "ready", "import"),
        (at("2025-10-24T16:00:00"), "ready", "desk"),
        (at("2025-10-24T18:00:00"), "not_ready", "desk"),
    ]
    current = AgentProfile.objects.get(user=ann)
    assert (current.availability, current.availability_changed_at) == ("away", at("2025-10-24T18:00:00"))
