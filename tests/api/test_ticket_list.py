"""GET /api/v1/tickets/: what an agent sees, filtered, searched, sorted and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_merge, ticket_update
from tests.api.conftest import client_for
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, TopicFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def refs(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [item["reference"] for item in response.json()["results"]]


@pytest.fixture
def desk(queue, agent, customer):
    """Four tickets in ``support`` with distinct fields, one in ``billing`` the agent cannot see."""
    bob = CustomerFactory(name="Bob Stone", email="bob@example.com")
    colleague = AgentFactory(username="cid", queues=[queue])
    system = Actor.system()
    t1 = ticket_make(customer=customer, queue=queue, subject="Invoice twice", channel="email", at=T0)
    t2 = ticket_make(customer=bob, queue=queue, subject="Cannot log in", channel="web", at=T0 + timedelta(hours=1))
    t3 = ticket_make(
        customer=customer, queue=queue, subject="Refund please", channel="phone", at=T0 + timedelta(hours=2)
    )
    t4 = ticket_make(customer=bob, queue=queue, subject="Chat transcript", channel="chat", at=T0 + timedelta(hours=3))
    ticket_update(ticket=t1, actor=system, at=T0 + timedelta(hours=5), status="open", priority="urgent", assignee=agent)
    ticket_update(ticket=t2, actor=system, at=T0 + timedelta(hours=4), priority="low", assignee=colleague)
    ticket_update(ticket=t3, actor=system, at=T0 + timedelta(hours=6), status="pending", priority="high")
    hidden = ticket_make(customer=customer, queue=QueueFactory(slug="billing"), subject="Invoice hidden", at=T0)
    return {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "hidden": hidden, "bob": bob, "colleague": colleague}


def test_item_shape(agent_api, desk, agent, customer):
    topic = TopicFactory(slug="billing-question", name="Billing question")
    ticket_update(
        ticket=desk["t1"], actor=Actor.system(), at=T0 + timedelta(hours=7), topic=topic, tags=["VIP", "refund"]
    )

    response = agent_api.get("/api/v1/tickets/?status=open")

    t1 = desk["t1"]
    assert response.json() == {
        "count": 1,
        "next": None,
        "previous": None,
        "count_capped": False,
        "results": [
            {
                "reference": t1.reference,
                "subject": "Invoice twice",
                "status": "open",
                "priority": "urgent",
                "channel": "email",
                "initiator": "inbound",
                "queue": "support",
                "topic": "billing-question",
                "assignee": {"id": agent.pk, "name": "Ann"},
                "customer": {"id": customer.pk, "name": "Alice Byrne"},
                "tags": ["refund", "vip"],
                "created_at": "2025-03-01T09:00:00Z",
                "updated_at": "2025-03-01T16:00:00Z",
                "first_reply_at": None,
                "solved_at": None,
                "sla_policy": None,
                "sla_due_at": None,
                "sla_targets": [],
                "is_spam": False,
                "is_deleted": False,
                "merged_into": None,
                "pending_until": None,
                # Opened, then five changes: status, priority, assignee, topic, tags.
                "version": 6,
                "url": f"http://testserver/api/v1/tickets/{t1.reference}/",
            }
        ],
    }


def test_agent_sees_only_their_queues_newest_update_first(agent_api, desk):
    d = desk
    assert refs(agent_api.get("/api/v1/tickets/")) == [
        d["t3"].reference,
        d["t1"].reference,
        d["t2"].reference,
        d["t4"].reference,
    ]


def test_manager_sees_every_queue(manager_api, desk):
    d = desk
    assert refs(manager_api.get("/api/v1/tickets/?sort=created")) == [
        d["t1"].reference,
        d["hidden"].reference,
        d["t2"].reference,
        d["t3"].reference,
        d["t4"].reference,
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open", ["t1"]),
        ("status=new,pending", ["t3", "t2", "t4"]),
        ("status=new&status=open", ["t1", "t2", "t4"]),
        ("priority=low", ["t2"]),
        ("priority=urgent,high", ["t3", "t1"]),
        ("channel=chat", ["t4"]),
        ("channel=email,phone", ["t3", "t1"]),
        ("assignee=me", ["t1"]),
        ("assignee=none", ["t3", "t4"]),
        ("queue=support&status=pending", ["t3"]),
        ("queue=billing", []),
        ("status=bogus", []),
        ("search=invoice", ["t1"]),
        ("search=bob@example", ["t2", "t4"]),
        ("search=STONE", ["t2", "t4"]),
        ("sort=created", ["t1", "t2", "t3", "t4"]),
        ("sort=-created", ["t4", "t3", "t2", "t1"]),
        ("ordering=-priority", ["t1", "t3", "t4", "t2"]),
        ("sort=priority", ["t2", "t4", "t3", "t1"]),
        ("sort=reference", ["t1", "t2", "t3", "t4"]),
        ("sort=nonsense", ["t3", "t1", "t2", "t4"]),
    ],
)
def test_filters_search_and_sort(agent_api, desk, query, expected):
    assert refs(agent_api.get(f"/api/v1/tickets/?{query}")) == [desk[name].reference for name in expected]


def test_filter_by_assignee_id_and_customer(agent_api, desk, customer):
    d = desk
    assert refs(agent_api.get(f"/api/v1/tickets/?assignee={d['colleague'].pk}")) == [d["t2"].reference]
    assert refs(agent_api.get(f"/api/v1/tickets/?customer={customer.pk}&sort=created")) == [
        d["t1"].reference,
        d["t3"].reference,
    ]


def test_search_by_reference_number(agent_api, desk):
    t2 = desk["t2"]
    assert refs(agent_api.get(f"/api/v1/tickets/?search={t2.reference.lower()}")) == [t2.reference]


def test_merged_tickets_are_left_out(agent_api, desk, queue):
    t1, t3 = desk["t1"], desk["t3"]
    ticket_merge(source=t3, target=t1, actor=Actor.system(), at=T0 + timedelta(hours=8))

    assert refs(agent_api.get("/api/v1/tickets/?customer=" + str(t1.customer_id))) == [t1.reference]
    detail = agent_api.get(f"/api/v1/tickets/{t3.reference}/").json()
    assert (detail["status"], detail["merged_into"]) == ("closed", t1.reference)


def test_pagination(agent_api, queue, customer):
    tickets = [ticket_make(customer=customer, queue=queue, at=T0 + timedelta(minutes=i)) for i in range(7)]
    newest_first = [t.reference for t in reversed(tickets)]

    first = agent_api.get("/api/v1/tickets/?page_size=3").json()
    last = agent_api.get("/api/v1/tickets/?page_size=3&page=3").json()

    assert first["count"] == 7
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/v1/tickets/?page=2&page_size=3"
    assert [item["reference"] for item in first["results"]] == newest_first[:3]
    assert last["next"] is None
    assert last["previous"] == "http://testserver/api/v1/tickets/?page=2&page_size=3"
    assert [item["reference"] for item in last["results"]] == newest_first[6:]


def test_page_size_defaults_to_25_and_is_capped_at_100(manager_api, customer):
    queue = QueueFactory(slug="support")
    for i in range(101):
        ticket_make(customer=customer, queue=queue, at=T0 + timedelta(minutes=i))

    default = manager_api.get("/api/v1/tickets/").json()
    capped = manager_api.get("/api/v1/tickets/?page_size=500").json()

    assert (default["count"], len(default["results"])) == (101, 25)
    assert (capped["count"], len(capped["results"])) == (101, 100)


def test_page_out_of_range_is_404(agent_api, queue):
    ticket_make(queue=queue)

    response = agent_api.get("/api/v1/tickets/?page=9")

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def _list_queries(client, sort: str = "priority") -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/api/v1/tickets/?sort={sort}")
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _make_tickets(n: int, queue, agent, start: int) -> None:  # type: ignore[no-untyped-def]
    topic = TopicFactory(slug="general")
    for i in range(start, start + n):
        ticket = ticket_make(customer=CustomerFactory(), queue=queue, at=T0 + timedelta(minutes=i))
        ticket_update(ticket=ticket, actor=Actor.system(), assignee=agent, topic=topic, tags=[f"tag{i}", "common"])


def test_list_runs_constant_queries(agent, queue):
    _make_tickets(5, queue, agent, start=0)
    five = _list_queries(client_for(agent))
    _make_tickets(25, queue, agent, start=5)
    thirty = _list_queries(client_for(agent))

    # Token and user, the caller's roles, the count, the page, the page's topics (fetched apart: a page
    # joining every related table took longer to plan than to run), tags and SLA targets (the page's
    # SLA policies too when a ticket has one), and which of the page's customers the agent may see.
    assert five == thirty == 8
    # By customer, the name as the agent may see it is part of the page's one query.
    assert _list_queries(client_for(agent), "customer") == _list_queries(client_for(agent), "-customer") == 8


@pytest.mark.parametrize("value", ["1.5", "abc", "-1", "1e3", str(2**70)])
def test_a_customer_filter_that_is_not_a_whole_number_is_a_400_field_error(agent_api, desk, value):
    response = agent_api.get("/api/v1/tickets/", {"customer": value})

    assert response.status_code == 400
    assert list(response.json()) == ["detail", "customer"]
    assert response.json()["detail"] == "Invalid input."


def test_a_whole_customer_id_filters(agent_api, desk):
    assert refs(agent_api.get("/api/v1/tickets/", {"customer": str(desk["bob"].pk)})) == [
        desk["t2"].reference,
        desk["t4"].reference,
    ]


def test_counts_stop_at_the_cap_and_say_so(agent_api, queue, agent, monkeypatch):
    """A list counts at most COUNT_CAP rows (the database never counts a million tickets
    for a page); past it the count is the cap and count_capped is true."""
    monkeypatch.setattr("servicedesk.core.pagination.COUNT_CAP", 3)
    _make_tickets(5, queue, agent, start=900)

    first = agent_api.get("/api/v1/tickets/?page_size=2").json()
    capped = (first["count"], first["count_capped"], len(first["results"]), first["next"] is not None)
    assert capped == (3, True, 2, True)
    # The page holding row 3 is the last one reachable; past it is a 404, as for any page past the end.
    assert agent_api.get("/api/v1/tickets/?page_size=2&page=2").json()["next"] is None
    assert agent_api.get("/api/v1/tickets/?page_size=2&page=3").status_code == 404

    exact = agent_api.get("/api/v1/tickets/?page_size=2&search=no+such+subject").json()
    assert (exact["count"], exact["count_capped"]) == (0, False)
