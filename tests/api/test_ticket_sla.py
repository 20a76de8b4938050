"""SLA in the ticket API: the fields, the due filters and the next-due ordering."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.api.conftest import client_for
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def base():  # type: ignore[no-untyped-def]
    """The current minute, whole, so every instant below prints exactly."""
    return timezone.now().replace(second=0, microsecond=0)


def z(instant) -> str:  # type: ignore[no-untyped-def]
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def q(instant) -> str:  # type: ignore[no-untyped-def]
    """An instant as a query-string value."""
    return z(instant)


def refs(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [item["reference"] for item in response.json()["results"]]


@pytest.fixture
def policy(db):
    office = BusinessCalendar.objects.create(slug="office", name="Office", time_zone="UTC")
    policy = SlaPolicy.objects.create(slug="standard", name="Standard support", rank=1, calendar=office, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=480, hours="calendar"
    )
    return policy


@pytest.fixture
def board(policy, queue, billing_queue, agent, base):
    """Support tickets due at base-30 min, +20 min, +90 min and one without targets; billing's due at +10 min."""

    def make(created, *, priority="normal", in_queue=queue):  # type: ignore[no-untyped-def]
        return ticket_make(customer=CustomerFactory(), queue=in_queue, priority=priority, at=created)

    made = {
        "over": make(base - timedelta(minutes=150)),
        "soon": make(base - timedelta(minutes=100)),
        "later": make(base - timedelta(minutes=30)),
        "none": make(base - timedelta(minutes=10), priority="low"),
        "billing": make(base - timedelta(minutes=110), in_queue=billing_queue),
    }
    return made


@pytest.fixture
def billing_queue(db):
    from tests.factories import QueueFactory

    return QueueFactory(slug="billing", name="Billing")


def names(board, *keys: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [board[key].reference for key in keys]


def test_detail_exposes_the_sla_fields(agent_api, board, base):
    ticket = board["soon"]
    created = base - timedelta(minutes=100)

    body = agent_api.get(f"/api/v1/tickets/{ticket.reference}/").json()

    assert body["sla_policy"] == "standard"
    assert body["sla_due_at"] == z(created + timedelta(minutes=120))
    assert body["sla_targets"] == [
        {
            "kind": "first_reply",
            "state": "active",
            "due_at": z(created + timedelta(minutes=120)),
            "warning_at": z(created + timedelta(minutes=90)),
            "elapsed_seconds": 0.0,
            "minutes": 120,
            "hours": "calendar",
            "fulfilled_at": None,
            "breached_at": None,
        },
        {
            "kind": "resolution",
            "state": "active",
            "due_at": z(created + timedelta(minutes=480)),
            "warning_at": z(created + timedelta(minutes=360)),
            "elapsed_seconds": 0.0,
            "minutes": 480,
            "hours": "calendar",
            "fulfilled_at": None,
            "breached_at": None,
        },
    ]


def test_fulfilled_target_and_ticket_without_targets(agent_api, agent, board, base):
    created = base - timedelta(minutes=30)
    ticket_reply_create(
        ticket=board["later"],
        author=agent,
        text="Done.",
        status="solved",
        actor=Actor.agent(agent, source="api"),
        at=created + timedelta(minutes=15),
        deliver=False,
    )

    later = agent_api.get(f"/api/v1/tickets/{board['later'].reference}/").json()
    none = agent_api.get(f"/api/v1/tickets/{board['none'].reference}/").json()

    assert later["sla_due_at"] is None
    assert [
        (t["kind"], t["state"], t["due_at"], t["elapsed_seconds"], t["fulfilled_at"]) for t in later["sla_targets"]
    ] == [
        ("first_reply", "achieved", None, 900.0, z(created + timedelta(minutes=15))),
        ("resolution", "achieved", None, 900.0, z(created + timedelta(minutes=15))),
    ]
    # The policy applies to the ticket, but it sets no target for its priority.
    assert (none["sla_policy"], none["sla_due_at"], none["sla_targets"]) == ("standard", None, [])


def test_list_items_carry_the_same_fields(agent_api, board, base):
    items = agent_api.get("/api/v1/tickets/", {"ordering": "sla_due_at"}).json()["results"]

    assert [(item["reference"], item["sla_due_at"], len(item["sla_targets"])) for item in items] == [
        (board["over"].reference, z(base - timedelta(minutes=30)), 2),
        (board["soon"].reference, z(base + timedelta(minutes=20)), 2),
        (board["later"].reference, z(base + timedelta(minutes=90)), 2),
        (board["none"].reference, None, 0),
    ]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("sla_due_at", ["over", "soon", "later", "none"]),
        ("-sla_due_at", ["none", "later", "soon", "over"]),
        ("due", ["over", "soon", "later", "none"]),
        ("-due", ["none", "later", "soon", "over"]),
    ],
)
def test_ordering_by_next_due(agent_api, board, ordering, expected):
    assert refs(agent_api.get("/api/v1/tickets/", {"ordering": ordering})) == names(board, *expected)
    assert refs(agent_api.get("/api/v1/tickets/", {"sort": ordering})) == names(board, *expected)


# Instants as minutes from the current minute.
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"breaching_within": "60"}, ["soon"]),
        ({"breaching_within": "120"}, ["soon", "later"]),
        ({"due_before": 0}, ["over"]),
        ({"due_after": 0}, ["soon", "later"]),
        # due_after is inclusive, due_before exclusive.
        ({"due_after": 20, "due_before": 90}, ["soon"]),
        ({"due_after": -60, "due_before": 60}, ["over", "soon"]),
        ({"due_after": "", "due_before": ""}, ["over", "soon", "later", "none"]),
        ({"due": "overdue"}, ["over"]),
        ({"due": "hour"}, ["soon"]),
    ],
)
def test_due_filters(agent_api, board, base, params, expected):
    query = {
        name: q(base + timedelta(minutes=value)) if isinstance(value, int) else value for name, value in params.items()
    }

    response = agent_api.get("/api/v1/tickets/", {**query, "ordering": "sla_due_at"})

    assert refs(response) == names(board, *expected)


def test_due_filters_keep_to_the_callers_queues(manager, agent_api, board):
    manager_api = client_for(manager)

    assert refs(agent_api.get("/api/v1/tickets/", {"breaching_within": "60", "ordering": "sla_due_at"})) == names(
        board, "soon"
    )
    assert refs(manager_api.get("/api/v1/tickets/", {"breaching_within": "60", "ordering": "sla_due_at"})) == names(
        board, "billing", "soon"
    )


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"breaching_within": "0"}, {"breaching_within": ["Ensure this value is greater than or equal to 1."]}),
        ({"breaching_within": "-5"}, {"breaching_within": ["Ensure this value is greater than or equal to 1."]}),
        ({"breaching_within": "soon"}, {"breaching_within": ["A valid integer is required."]}),
        (
            {"breaching_within": "99999999999999"},
            {"breaching_within": ["Ensure this value is less than or equal to 527040."]},
        ),
    ],
)
def test_bad_minutes_are_a_field_error(agent_api, board, params, errors):
    response = agent_api.get("/api/v1/tickets/", params)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", **errors}


@pytest.mark.parametrize("field", ["due_before", "due_after"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01T00:00:00Z", "2025-10-24 25:00"])
def test_bad_instants_are_a_field_error(agent_api, board, field, value):
    response = agent_api.get("/api/v1/tickets/", {field: value})

    assert response.status_code == 400
    body = response.json()
    assert sorted(body) == ["detail", field]
    assert body[field][0].startswith("Datetime has wrong format.")


def _list_queries(client, base) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/api/v1/tickets/", {"ordering": "sla_due_at", "due_after": q(base - timedelta(days=1))})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_list_queries_do_not_grow_with_tickets(agent, queue, policy, base):
    def make(n: int) -> None:
        for i in range(n):
            ticket_make(customer=CustomerFactory(), queue=queue, at=base - timedelta(minutes=i))

    client = client_for(agent)
    make(1)
    one = _list_queries(client, base)
    make(24)
    many = _list_queries(client, base)

    # Token and user, the caller's roles, the count, the page, the page's SLA policies (fetched apart;
    # topics too when a ticket has one), tags and SLA targets, and which of the page's customers
    # the agent may see.
    assert one == many == 8


def test_schema_describes_the_sla_fields_and_filters(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    ticket = schema["components"]["schemas"]["Ticket"]["properties"]
    assert ticket["sla_policy"] == {"type": "string", "readOnly": True, "nullable": True}
    assert ticket["sla_due_at"]["format"] == "date-time"
    assert ticket["sla_targets"]["items"] == {"$ref": "#/components/schemas/TicketTarget"}
    target = schema["components"]["schemas"]["TicketTarget"]["properties"]
    assert sorted(target) == sorted(
        ["kind", "state", "due_at", "warning_at", "elapsed_seconds", "minutes", "hours", "fulfilled_at", "breached_at"]
    )
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/tickets/"]["get"]["parameters"]}
    assert parameters["due_before"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["due_after"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["breaching_within"]["schema"] == {"type": "integer"}
    assert "sla_due_at" in parameters["ordering"]["schema"]["enum"]
    assert "-sla_due_at" in parameters["ordering"]["schema"]["enum"]
