"""Saved inbox views (docs/inbox.md, "Views"): what a view keeps, who sees which, their counts in
one query, the columns, the tag filter and "mentioned", through the page and the API."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from servicedesk.desk.models import SavedView, ViewScope
from servicedesk.desk.saved_views import (
    ViewInput,
    mention_rule_set,
    mentioned_q,
    saved_view_create,
    saved_view_query_string,
    saved_views_visible_to,
    view_counts,
)
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_note_create
from servicedesk.tickets.services.tickets import ticket_assign, ticket_status_change, ticket_tags_set
from tests.desk.conftest import references
from tests.factories import AgentFactory, CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db


def view_make(user, name, *, scope=ViewScope.PERSONAL, shared_with=None, **filters):
    return saved_view_create(user=user, data=ViewInput(name=name, filters=filters), scope=scope, queue=shared_with)


def sidebar_count(content: str, key: str) -> int:
    found = re.search(rf'data-count-for="{key}"[^>]*>(\d+)</span>', content)
    assert found is not None, key
    return int(found.group(1))


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def board(queue, billing, agent, customer):
    """Support: two new tickets (one ann's, one tagged vip) and a solved one; billing: one new ticket."""
    system = Actor.system()
    mine = ticket_make(customer=customer, queue=queue, subject="Printer")
    ticket_assign(ticket=mine, assignee=agent, actor=system)
    vip = ticket_make(customer=CustomerFactory(), queue=queue, subject="Invoice")
    ticket_tags_set(ticket=vip, tags=["vip", "billing"], actor=system)
    solved = ticket_make(customer=CustomerFactory(), queue=queue, subject="Done")
    ticket_status_change(ticket=solved, status="solved", actor=system)
    other = ticket_make(customer=CustomerFactory(), queue=billing, subject="Refund")
    return {"mine": mine, "vip": vip, "solved": solved, "other": other}


# --- What a view keeps ----------------------------------------------------------------


def test_an_agent_saves_the_current_filters_sort_and_columns(agent_client, agent, board):
    back = "status=new&tags=vip&sort=-created&columns=subject&columns=status&page=1"

    response = agent_client.post("/desk/views/", {"name": "  VIP  backlog ", "back": back})

    view = SavedView.objects.get()
    assert (view.name, view.scope, view.owner_id, view.queue_id) == ("VIP backlog", "personal", agent.pk, None)
    assert view.filters == {"status": ["new"], "tags": ["vip"]}
    assert (view.sort, view.columns) == ("-created", ["reference", "subject", "status"])
    address = f"/desk/?status=new&tags=vip&sort=-created&columns=reference,subject,status&view={view.pk}"
    assert response.status_code == 302
    assert response["Location"] == address

    page = agent_client.get(address)
    content = page.content.decode()
    assert references(page) == [board["vip"].reference]
    assert (
        '<a href="/desk/?status=new&amp;tags=vip&amp;sort=-created&amp;columns=reference,subject,status&amp;view='
        in content
    )
    assert 'aria-current="page">VIP backlog</a>' in content
    # Only the columns the view keeps, in the inbox's order.
    head = content[content.index("<thead>") : content.index("</thead>")]
    assert re.findall(r'class="sort[^"]*" href="[^"]*">(\w+)', head) == ["Reference", "Subject", "Status"]
    assert 'data-label="Customer"' not in content[content.index("<tbody>") :]


def test_columns_picked_on_the_inbox_are_shown_in_its_order(agent_client, board):
    content = agent_client.get("/desk/?columns=tags,created,queue").content.decode()

    head = content[content.index("<thead>") : content.index("</thead>")]
    assert re.findall(r'<th scope="col">(?:<a[^>]*>)?(\w+)', head) == ["Reference", "Queue", "Tags", "Created"]
    assert '<input type="checkbox" name="columns" value="queue" id="column-queue" checked>' in content
    assert '<input type="checkbox" name="columns" value="subject" id="column-subject">' in content
    # Unknown names are left out; nothing known is every column.
    every = agent_client.get("/desk/?columns=bogus").content.decode()
    assert every.count('<th scope="col">') == 12


def test_a_view_with_a_name_already_in_the_list_and_bad_input_are_400(agent_client, agent, board):
    view_make(agent, "Mine")

    taken = agent_client.post("/desk/views/", {"name": "Mine", "back": ""})
    empty = agent_client.post("/desk/views/", {"name": "  ", "back": ""})
    bad_sort = agent_client.post("/desk/views/", {"name": "X", "back": "sort=sideways"})

    assert taken.status_code == 400
    assert "You already see a view with this name here. Choose another name." in taken.content.decode()
    assert empty.status_code == 400
    assert "Give the view a name." in empty.content.decode()
    assert bad_sort.status_code == 400
    assert SavedView.objects.count() == 1


def test_an_agent_cannot_share_a_view(agent_client, board):
    response = agent_client.post("/desk/views/", {"name": "For all", "scope": "everyone", "back": ""})

    assert response.status_code == 403
    assert "Only managers and admins share views." in response.content.decode()
    assert not SavedView.objects.exists()


def test_the_view_forms_need_their_csrf_token(agent, board):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)

    assert browser.post("/desk/views/", {"name": "Sneaky", "back": ""}).status_code == 403
    assert not SavedView.objects.exists()


# --- Who sees which view -----------------------------------------------------------------


def test_personal_and_shared_views_are_seen_by_whom_they_are_for(agent, manager, billing_agent, queue, billing, board):
    cleo = AgentFactory(username="cleo", queues=[queue])
    personal = view_make(agent, "Ann's")
    everyone = view_make(manager, "Urgent everywhere", scope=ViewScope.EVERYONE, priority="urgent")
    for_billing = view_make(manager, "Billing backlog", scope=ViewScope.QUEUE, shared_with=billing, status="new")
    billing_filter = view_make(manager, "Refunds", scope=ViewScope.EVERYONE, queue="billing")

    def names(user):
        return [view.name for view in saved_views_visible_to(user)]

    assert names(agent) == ["Ann's", "Urgent everywhere"]
    assert names(cleo) == ["Urgent everywhere"]
    assert names(billing_agent) == ["Billing backlog", "Refunds", "Urgent everywhere"]
    assert names(manager) == ["Billing backlog", "Refunds", "Urgent everywhere"]
    assert {personal.pk, everyone.pk, for_billing.pk, billing_filter.pk} == set(
        SavedView.objects.values_list("pk", flat=True)
    )

    # What is not shown is not found: neither its address nor its forms.
    client = Client()
    client.force_login(cleo)
    assert client.post(f"/desk/views/{personal.pk}/rename/", {"name": "Mine now"}).status_code == 404
    assert client.post(f"/desk/views/{for_billing.pk}/delete/").status_code == 404
    assert api(cleo).get(f"/api/v1/views/{for_billing.pk}/").status_code == 404


def test_the_owner_renames_and_deletes_a_personal_view_and_managers_the_shared_ones(
    agent_client, agent, manager, board
):
    personal = view_make(agent, "Mine")
    shared = view_make(manager, "Shared", scope=ViewScope.EVERYONE)

    assert agent_client.post(f"/desk/views/{personal.pk}/rename/", {"name": "Still mine"}).status_code == 302
    refused = agent_client.post(f"/desk/views/{shared.pk}/rename/", {"name": "Taken over"})
    assert refused.status_code == 403
    assert agent_client.post(f"/desk/views/{shared.pk}/delete/").status_code == 403
    page = agent_client.get("/desk/").content.decode()
    assert f'id="view-{personal.pk}-delete"' in page
    assert f'id="view-{shared.pk}-delete"' not in page

    assert (
        agent_client.post(f"/desk/views/{personal.pk}/delete/", {"back": f"view={personal.pk}"})["Location"] == "/desk/"
    )
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Shared"]

    agent_client.force_login(manager)
    assert agent_client.post(f"/desk/views/{shared.pk}/rename/", {"name": "Renamed"}).status_code == 302
    assert agent_client.post(f"/desk/views/{shared.pk}/delete/").status_code == 302
    assert not SavedView.objects.exists()


# --- Counts ---------------------------------------------------------------------------------


def test_each_view_counts_what_it_lists_for_the_agent(agent_client, agent, manager, board):
    vip = view_make(agent, "VIP", tags="vip")
    everything = view_make(manager, "Everything", scope=ViewScope.EVERYONE)
    ticket_note_create(ticket=board["vip"], author=manager, text="@ann could you call them?")

    with CaptureQueriesContext(connection) as captured:
        counts = view_counts(user=agent, views=[vip, everything])

    assert len(captured) == 1
    assert counts == {"mine": 1, "unassigned": 1, "mentioned": 1, f"view-{vip.pk}": 1, f"view-{everything.pk}": 3}
    content = agent_client.get("/desk/").content.decode()
    assert sidebar_count(content, "mine") == 1
    assert sidebar_count(content, "unassigned") == 1
    assert sidebar_count(content, f"view-{everything.pk}") == 3
    assert agent_client.get("/desk/views/counts/").json() == {"counts": counts}
    # The manager sees every queue: the same view counts more for them.
    assert view_counts(user=manager, views=[everything])[f"view-{everything.pk}"] == 4


def test_a_views_search_counts_what_its_list_shows(agent, agent_client, board):
    searching = view_make(agent, "Printers", q="printer")
    by_customer = view_make(agent, "Alice", q="alice@example.com")

    with CaptureQueriesContext(connection) as captured:
        counts = view_counts(user=agent, views=[searching, by_customer])

    # The searches as the list runs them (at most six queries each: ticket_search), then one statement of counts.
    assert len(captured) <= 1 + 6 * 2
    assert (counts[f"view-{searching.pk}"], counts[f"view-{by_customer.pk}"]) == (1, 1)
    for view in (searching, by_customer):
        listed = references(agent_client.get(f"/desk/?{saved_view_query_string(view)}"))
        assert len(listed) == counts[f"view-{view.pk}"]


def _inbox_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/desk/")
    assert response.status_code == 200
    return len(captured)


def test_the_inbox_costs_the_same_queries_for_5_or_50_tickets_and_1_or_10_views(agent_client, agent, queue):
    system = Actor.system()

    def tickets(n: int) -> None:
        for i in range(n):
            ticket = ticket_make(customer=CustomerFactory(), queue=queue, subject=f"Case {i}")
            ticket_tags_set(ticket=ticket, tags=[f"tag{i % 3}"], actor=system)

    tickets(5)
    view_make(agent, "View 0", status="new")
    for n in range(1, 10):
        view_make(agent, f"View {n}", tags=f"tag{n % 3}")
    small = _inbox_queries(agent_client)
    tickets(45)
    large = _inbox_queries(agent_client)
    # Views without a search: counted in the one statement, whatever their number.
    assert large == small

    # A view's search runs as the list runs it (at most six queries: ticket_search), before the
    # one statement of counts; never per ticket.
    searching = [view_make(agent, f"Search {n}", q=f"case {n}") for n in range(3)]
    assert small < _inbox_queries(agent_client) <= small + 6 * len(searching)
    tickets(20)
    assert _inbox_queries(agent_client) <= small + 6 * len(searching)
    content = agent_client.get("/desk/").content.decode()
    assert content.count('class="view-item"') == 3 + 10 + 3


# --- The tag filter and "mentioned" -------------------------------------------------------


def test_tags_filter_all_by_default_and_any_on_request(manager_client, manager, board, queue):
    only_billing = ticket_make(customer=CustomerFactory(), queue=queue, subject="Billing only")
    ticket_tags_set(ticket=only_billing, tags=["Billing"], actor=Actor.system())

    assert references(manager_client.get("/desk/?tags=vip,billing")) == [board["vip"].reference]
    assert references(manager_client.get("/desk/?tags=VIP&tags=billing&tag_match=all")) == [board["vip"].reference]
    assert references(manager_client.get("/desk/?tags=vip,billing&tag_match=any")) == [
        only_billing.reference,
        board["vip"].reference,
    ]
    assert references(manager_client.get("/desk/?tags=nothing")) == []
    assert references(manager_client.get("/desk/?tags=vip,nothing")) == []
    assert references(manager_client.get("/desk/?tags=vip,nothing&tag_match=any")) == [board["vip"].reference]
    assert references(manager_client.get("/desk/?tags=billing&tag_match=any")) == [
        only_billing.reference,
        board["vip"].reference,
    ]
    listed = api(manager).get("/api/v1/tickets/?tags=billing&tag_match=any").json()["results"]
    assert [row["reference"] for row in listed] == [only_billing.reference, board["vip"].reference]


def test_a_customer_cannot_probe_tags_through_the_api(customer, board):
    from tests.factories import UserFactory

    user = UserFactory(username="alice", email="alice@example.com")
    customer.user = user
    customer.save(update_fields=["user"])

    listed = api(user).get("/api/v1/tickets/?tags=nothing-like-this").json()["results"]

    assert [row["reference"] for row in listed] == [board["mine"].reference]


def test_mentioned_lists_tickets_whose_internal_notes_name_the_agent(agent_client, agent, manager, board):
    ticket_note_create(ticket=board["mine"], author=manager, text="Over to you, @ann.")
    ticket_note_create(ticket=board["vip"], author=manager, text="@annabel knows this one")
    ticket_note_create(ticket=board["solved"], author=manager, text="mail ann@corp.example")

    response = agent_client.get("/desk/?mentioned=me")

    assert references(response) == [board["mine"].reference]
    assert "<h1>Mentioning me</h1>" in response.content.decode()


def test_the_mentioned_rule_can_be_replaced(agent, board):
    replaced = mention_rule_set(lambda user: Q(subject="Invoice"))
    try:
        assert mentioned_q(agent) == Q(subject="Invoice")
        assert view_counts(user=agent, views=[])["mentioned"] == 1
    finally:
        mention_rule_set(replaced)
    assert view_counts(user=agent, views=[])["mentioned"] == 0


# --- API ------------------------------------------------------------------------------------


def test_views_through_the_api(agent, manager, board, billing):
    client = api(agent)

    created = client.post(
        "/api/v1/views/",
        {
            "name": "VIP",
            "filters": {"tags": ["vip"], "status": "new,open"},
            "sort": "-priority",
            "columns": ["subject"],
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["scope"], body["owner"], body["can_change"]) == ("VIP", "personal", agent.pk, True)
    assert body["filters"] == {"status": ["new", "open"], "tags": ["vip"]}
    assert body["columns"] == ["reference", "subject"]
    assert (
        body["inbox_url"]
        == f"/desk/?status=new,open&tags=vip&sort=-priority&columns=reference,subject&view={body['id']}"
    )

    assert [view["name"] for view in client.get("/api/v1/views/").json()] == ["VIP"]
    patched = client.patch(f"/api/v1/views/{body['id']}/", {"name": "Very important"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["name"] == "Very important"
    assert patched.json()["filters"] == body["filters"]
    assert client.get("/api/v1/views/counts/").json()["counts"][f"view-{body['id']}"] == 1

    shared = api(manager).post(
        "/api/v1/views/", {"name": "Billing", "scope": "queue", "queue": "billing"}, format="json"
    )
    assert shared.status_code == 201
    assert shared.json()["queue"] == "billing"
    assert client.get(f"/api/v1/views/{shared.json()['id']}/").status_code == 404

    assert client.delete(f"/api/v1/views/{body['id']}/").status_code == 204
    assert client.get(f"/api/v1/views/{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "filters": {"colour": "red"}}, "filters"),
        ({"name": "X", "filters": {"status": ["done"]}}, "status"),
        ({"name": "X", "filters": {"queue": "billing"}}, "queue"),
        ({"name": "X", "filters": {"assignee": "1.5"}}, "assignee"),
        ({"name": "X", "filters": {"customer": "abc"}}, "customer"),
        ({"name": "X", "filters": {"tags": [{"a": 1}]}}, "tags"),
        ({"name": "X", "columns": ["colour"]}, "columns"),
        ({"name": "X", "sort": "sideways"}, "sort"),
        ({"name": ""}, "name"),
        ({"name": "X", "scope": "queue"}, "queue"),
    ],
)
def test_bad_views_are_400_naming_the_field(agent, manager, board, payload, field):
    response = api(manager if payload.get("scope") else agent).post("/api/v1/views/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not SavedView.objects.exists()


def test_only_managers_share_views_and_only_desk_users_have_any(agent, customer, board):
    from tests.factories import UserFactory

    refused = api(agent).post("/api/v1/views/", {"name": "All", "scope": "everyone"}, format="json")
    assert refused.status_code == 403
    outsider = UserFactory(username="someone")
    assert api(outsider).get("/api/v1/views/").status_code == 403
    assert APIClient().get("/api/v1/views/counts/").status_code in (401, 403)


def test_view_counts_stop_at_the_cap_and_say_more(agent_client, agent, board, monkeypatch):
    """Each view is counted on its own up to the cap (one statement still); past it the
    sidebar shows "<cap>+", as the refresh does from the JSON."""
    from servicedesk.desk import saved_views

    monkeypatch.setattr(saved_views, "COUNT_CAP", 1)
    everything = view_make(agent, "Everything")
    with CaptureQueriesContext(connection) as captured:
        counts = view_counts(user=agent, views=[everything])
    assert len(captured) == 1
    # The agent sees three tickets: counted as two, "more than one".
    assert counts[f"view-{everything.pk}"] == 2
    assert counts["mine"] == 1
    monkeypatch.setattr("servicedesk.desk.inbox.COUNT_CAP", 1)
    content = agent_client.get("/desk/").content.decode()
    assert f'data-count-for="view-{everything.pk}"' in content
    assert re.search(rf'data-count-for="view-{everything.pk}"[^>]*>1\+</span>', content)
    assert 'data-count-cap="1"' in content
