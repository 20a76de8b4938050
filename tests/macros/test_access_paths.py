"""Who sees which macro and canned reply, on every path: the desk's pages, the ticket page's panel and
the palette's data, the apply and preview forms, the render endpoint and the API. Personal ones are
their owner's, queue ones their queue's agents', global ones everyone's; what one may not see is 404,
what one sees but may not change is 403."""

from __future__ import annotations

import json
import re

import pytest

from servicedesk.macros.access import canned_replies_visible_to, macros_for_ticket, macros_visible_to
from servicedesk.macros.models import CannedReply, Macro, Scope
from servicedesk.tickets.models import Message, Ticket
from tests.api.conftest import client_for
from tests.factories import UserFactory

from .conftest import canned_make, macro_make

pytestmark = pytest.mark.django_db

LOW = [{"type": "priority", "priority": "low"}]


@pytest.fixture
def world(agent, colleague, outsider, manager, queue, billing):
    """One of each scope: ann's and cleo's personal, support's, billing's and a global one."""
    return {
        "ann": macro_make(agent, LOW, name="Ann's"),
        "cleo": macro_make(colleague, LOW, name="Cleo's"),
        "support": macro_make(manager, LOW, name="Support's", scope=Scope.QUEUE, queue=queue),
        "billing": macro_make(manager, LOW, name="Billing's", scope=Scope.QUEUE, queue=billing),
        "global": macro_make(manager, LOW, name="Everyone's", scope=Scope.GLOBAL),
    }


@pytest.fixture
def canned_world(agent, colleague, manager, queue, billing):
    return {
        "ann": canned_make(agent, "Ann {{ ticket.reference }}", name="Ann's"),
        "cleo": canned_make(colleague, "Cleo", name="Cleo's"),
        "support": canned_make(manager, "Support", name="Support's", scope=Scope.QUEUE, queue=queue),
        "billing": canned_make(manager, "Billing", name="Billing's", scope=Scope.QUEUE, queue=billing),
        "global": canned_make(manager, "Everyone", name="Everyone's", scope=Scope.GLOBAL),
    }


def names(items) -> set[str]:  # type: ignore[no-untyped-def]
    return {item.name for item in items}


def test_the_one_rule_per_scope(world, agent, colleague, outsider, manager):
    assert names(macros_visible_to(agent)) == {"Ann's", "Support's", "Everyone's"}
    assert names(macros_visible_to(colleague)) == {"Cleo's", "Support's", "Everyone's"}
    assert names(macros_visible_to(outsider)) == {"Billing's", "Everyone's"}
    assert names(macros_visible_to(manager)) == {"Support's", "Billing's", "Everyone's"}
    assert names(macros_visible_to(UserFactory(username="nobody"))) == set()


def test_for_a_ticket_only_its_queues_shared_ones(world, manager, ticket):
    assert names(macros_for_ticket(manager, ticket)) == {"Support's", "Everyone's"}


def test_canned_replies_follow_the_same_rule(canned_world, agent, outsider):
    assert names(canned_replies_visible_to(agent)) == {"Ann's", "Support's", "Everyone's"}
    assert names(canned_replies_visible_to(outsider)) == {"Billing's", "Everyone's"}


# ------------------------------------------------------------------ desk pages


def test_list_pages_show_what_the_agent_may_see(client, world, canned_world, agent):
    client.force_login(agent)
    macros = client.get("/desk/macros/").content.decode()
    canned = client.get("/desk/canned/").content.decode()
    for page in (macros, canned):
        assert "Ann&#x27;s" in page and "Support&#x27;s" in page and "Everyone&#x27;s" in page
        assert "Cleo&#x27;s" not in page and "Billing&#x27;s" not in page
    # Shared ones are listed without an edit link or a delete button for an agent.
    assert f'/desk/macros/{world["ann"].pk}/"' in macros
    assert f'/desk/macros/{world["global"].pk}/"' not in macros
    assert f"/desk/macros/{world['global'].pk}/delete/" not in macros


def nav_links(page: str) -> dict[str, str]:
    """The desk's navigation: each link's text and its aria-current ("" when none)."""
    nav = re.search(r'<nav class="topnav">(.*?)</nav>', page, re.S).group(1)
    return {
        text: current
        for _href, current, text in re.findall(r'<a href="(/desk/[^"]*)"(?: aria-current="([a-z]+)")?>([^<]+)</a>', nav)
    }


def test_the_desk_navigation_links_macros_and_canned_replies_marking_the_current_one(client, agent, ticket):
    client.force_login(agent)
    macros = client.get("/desk/macros/").content.decode()
    assert '<a href="/desk/macros/" aria-current="page">Macros</a>' in macros
    assert '<a href="/desk/canned/">Canned replies</a>' in macros
    canned = client.get("/desk/canned/").content.decode()
    assert '<a href="/desk/macros/">Macros</a>' in canned
    assert '<a href="/desk/canned/" aria-current="page">Canned replies</a>' in canned
    for path in ("/desk/", f"/desk/tickets/{ticket.reference}/", "/desk/macros/new/"):
        links = nav_links(client.get(path).content.decode())
        assert links["Macros"] == "" and links["Canned replies"] == "", path


def test_edit_pages_404_for_unseen_and_403_for_unchangeable(client, world, canned_world, agent):
    client.force_login(agent)
    assert client.get(f"/desk/macros/{world['cleo'].pk}/").status_code == 404
    assert client.get(f"/desk/macros/{world['billing'].pk}/").status_code == 404
    assert client.get(f"/desk/macros/{world['global'].pk}/").status_code == 403
    assert client.post(f"/desk/macros/{world['global'].pk}/delete/").status_code == 403
    assert client.post(f"/desk/macros/{world['cleo'].pk}/delete/").status_code == 404
    assert client.get(f"/desk/canned/{canned_world['cleo'].pk}/").status_code == 404
    assert client.post(f"/desk/canned/{canned_world['support'].pk}/delete/").status_code == 403
    assert client.get(f"/desk/macros/{world['ann'].pk}/").status_code == 200
    assert Macro.objects.count() == 5 and CannedReply.objects.count() == 5


def test_pages_are_for_agents_only(client, world):
    assert client.get("/desk/macros/").status_code == 302  # to the sign-in
    client.force_login(UserFactory(username="visitor"))
    for path in ("/desk/macros/", "/desk/canned/", f"/desk/macros/{world['global'].pk}/", "/desk/macros/new/"):
        assert client.get(path).status_code == 404


def test_ticket_page_panel_and_palette_data_list_only_applicable_macros(client, world, canned_world, agent, ticket):
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    palette = json.loads(
        re.search(r'<script id="macro-palette-data" type="application/json">(.*?)</script>', page).group(1)
    )
    canned = json.loads(
        re.search(r'<script id="canned-replies-data" type="application/json">(.*?)</script>', page).group(1)
    )
    assert {m["name"] for m in palette["macros"]} == {"Ann's", "Support's", "Everyone's"}
    assert palette["apply_url"] == f"/desk/macros/apply/{ticket.reference}/"
    assert {c["name"] for c in canned["items"]} == {"Ann's", "Support's", "Everyone's"}
    select = re.search(r'<select id="macro-apply-select".*?</select>', page, re.S).group(0)
    assert f'<option value="{world["ann"].pk}">' in select
    assert f'<option value="{world["cleo"].pk}">' not in select
    assert f'<option value="{world["billing"].pk}">' not in select
    assert 'id="command-palette-script"' in page and "macros/palette.js" in page


def test_every_desk_page_carries_the_palette_script_with_its_commands(client, agent):
    client.force_login(agent)
    page = client.get("/desk/").content.decode()
    match = re.search(
        r'<script src="[^"]*macros/palette\.js" id="command-palette-script" data-config="([^"]*)" defer>', page
    )
    assert match is not None
    config = json.loads(
        match.group(1)
        .replace("&quot;", '"')
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )
    assert {"id": "go-inbox", "label": "Go to inbox", "url": "/desk/"} in config["commands"]
    assert config["ticket_url"] == "/desk/tickets/__REFERENCE__/"
    assert "go-reports" not in {command["id"] for command in config["commands"]}


def test_apply_form_404_for_unseen_ticket_or_macro(client, world, agent, outsider, ticket):
    before = Ticket.objects.get(pk=ticket.pk).version
    client.force_login(outsider)
    assert client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": world["global"].pk}).status_code == 404
    client.force_login(agent)
    assert client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": world["cleo"].pk}).status_code == 404
    assert client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": world["billing"].pk}).status_code == 404
    assert client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": ""}).status_code == 400
    assert client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": "1.5"}).status_code == 400
    assert client.get(f"/desk/macros/preview/{ticket.reference}/?macro={world['cleo'].pk}").status_code == 404
    assert Ticket.objects.get(pk=ticket.pk).version == before


def test_apply_form_applies_and_says_so(client, world, agent, ticket):
    client.force_login(agent)
    response = client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": world["support"].pk}, follow=True)
    assert response.redirect_chain == [(f"/desk/tickets/{ticket.reference}/", 302)]
    assert "was applied" in response.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).priority == "low"


def test_apply_form_reports_a_refusal_and_changes_nothing(client, agent, outsider, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "x"}, {"type": "assignee", "assignee": outsider.pk}])
    client.force_login(agent)
    response = client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": macro.pk}, follow=True)
    assert "Nothing was changed. Action 2 (Assign) was refused" in response.content.decode()
    assert not Message.objects.filter(ticket=ticket, kind="internal").exists()


def test_preview_page_shows_and_changes_nothing(client, agent, ticket):
    macro = macro_make(
        agent, [{"type": "reply", "text": "Hi {{ customer.first_name }}"}, {"type": "status", "status": "open"}]
    )
    client.force_login(agent)
    before = Ticket.objects.get(pk=ticket.pk).version
    for response in (
        client.get(f"/desk/macros/preview/{ticket.reference}/?macro={macro.pk}"),
        client.post(f"/desk/macros/preview/{ticket.reference}/", {"macro": macro.pk}),
    ):
        page = response.content.decode()
        assert response.status_code == 200
        assert "Hi Alice" in page and 'id="macro-preview-apply"' in page
    assert Ticket.objects.get(pk=ticket.pk).version == before
    assert not Message.objects.filter(ticket=ticket, kind="public_agent").exists()


def test_render_endpoint_checks_ticket_and_canned_reply(client, canned_world, agent, outsider, ticket):
    client.force_login(agent)
    ok = client.get(f"/desk/canned/{canned_world['ann'].pk}/render/?ticket={ticket.reference}")
    assert ok.status_code == 200 and ok.json() == {"text": f"Ann {ticket.reference}", "language": "en"}
    assert client.get(f"/desk/canned/{canned_world['cleo'].pk}/render/?ticket={ticket.reference}").status_code == 404
    assert client.get(f"/desk/canned/{canned_world['ann'].pk}/render/").status_code == 400
    assert client.get(f"/desk/canned/{canned_world['ann'].pk}/render/?ticket=SD-999999").status_code == 404
    client.force_login(outsider)
    assert client.get(f"/desk/canned/{canned_world['global'].pk}/render/?ticket={ticket.reference}").status_code == 404


# ------------------------------------------------------------------ API


def test_api_list_and_detail(world, agent, outsider, ticket):
    api = client_for(agent)
    listed = api.get("/api/v1/macros/")
    assert listed.status_code == 200
    assert {m["name"] for m in listed.json()["results"]} == {"Ann's", "Support's", "Everyone's"}
    assert {m["name"]: m["can_change"] for m in listed.json()["results"]} == {
        "Ann's": True,
        "Support's": False,
        "Everyone's": False,
    }
    assert api.get(f"/api/v1/macros/{world['cleo'].pk}/").status_code == 404
    assert api.get(f"/api/v1/macros/{world['billing'].pk}/").status_code == 404
    assert api.get(f"/api/v1/macros/{world['ann'].pk}/").json()["actions"] == LOW
    for_ticket = client_for(outsider).get(f"/api/v1/macros/?ticket={ticket.reference}")
    assert for_ticket.status_code == 404


def test_api_changes_need_the_right_to_change(world, agent, manager):
    api = client_for(agent)
    assert api.patch(f"/api/v1/macros/{world['global'].pk}/", {"name": "Mine"}, format="json").status_code == 403
    assert api.delete(f"/api/v1/macros/{world['support'].pk}/").status_code == 403
    assert api.patch(f"/api/v1/macros/{world['cleo'].pk}/", {"name": "Mine"}, format="json").status_code == 404
    assert api.delete(f"/api/v1/macros/{world['cleo'].pk}/").status_code == 404
    assert client_for(manager).delete(f"/api/v1/macros/{world['ann'].pk}/").status_code == 404
    assert Macro.objects.count() == 5
    assert client_for(manager).delete(f"/api/v1/macros/{world['global'].pk}/").status_code == 204
    assert Macro.objects.count() == 4


def test_api_apply_respects_ticket_and_macro_access(world, agent, outsider, ticket):
    before = Ticket.objects.get(pk=ticket.pk).version
    assert (
        client_for(outsider).post(f"/api/v1/tickets/{ticket.reference}/macros/{world['global'].pk}/apply/").status_code
        == 404
    )
    api = client_for(agent)
    assert api.post(f"/api/v1/tickets/{ticket.reference}/macros/{world['cleo'].pk}/apply/").status_code == 404
    assert api.post(f"/api/v1/tickets/SD-999999/macros/{world['ann'].pk}/apply/").status_code == 404
    assert Ticket.objects.get(pk=ticket.pk).version == before
    applied = api.post(f"/api/v1/tickets/{ticket.reference}/macros/{world['ann'].pk}/apply/")
    assert applied.status_code == 200
    body = applied.json()
    assert body["ticket"] == ticket.reference and body["version"] == before + 1
    assert body["steps"] == [
        {
            "action": 0,
            "type": "priority",
            "label": "Set priority",
            "before": "Normal",
            "after": "Low",
            "text": "",
            "message": None,
        }
    ]


def test_api_apply_refusal_is_400_with_the_action(agent, outsider, ticket):
    macro = macro_make(agent, [{"type": "priority", "priority": "high"}, {"type": "assignee", "assignee": outsider.pk}])
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.reference}/macros/{macro.pk}/apply/")
    assert response.status_code == 400
    assert response.json()["action"] == 1 and "was refused" in response.json()["detail"]
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_api_preview(agent, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "For {{ customer.name }}"}])
    response = client_for(agent).get(f"/api/v1/tickets/{ticket.reference}/macros/{macro.pk}/preview/")
    assert response.status_code == 200
    assert response.json()["refused"] is None and response.json()["steps"][0]["text"] == "For Alice Byrne"
    assert not Message.objects.filter(ticket=ticket, kind="internal").exists()


def test_api_canned_replies_and_render(canned_world, agent, outsider, ticket):
    api = client_for(agent)
    assert {c["name"] for c in api.get("/api/v1/canned-replies/").json()["results"]} == {
        "Ann's",
        "Support's",
        "Everyone's",
    }
    assert api.get(f"/api/v1/canned-replies/{canned_world['cleo'].pk}/").status_code == 404
    rendered = api.get(f"/api/v1/canned-replies/{canned_world['ann'].pk}/render/?ticket={ticket.reference}")
    assert rendered.status_code == 200 and rendered.json() == {"text": f"Ann {ticket.reference}", "language": "en"}
    assert (
        api.get(f"/api/v1/canned-replies/{canned_world['cleo'].pk}/render/?ticket={ticket.reference}").status_code
        == 404
    )
    missing = api.get(f"/api/v1/canned-replies/{canned_world['ann'].pk}/render/")
    assert missing.status_code == 400 and "ticket" in missing.json()
    outside = client_for(outsider).get(
        f"/api/v1/canned-replies/{canned_world['global'].pk}/render/?ticket={ticket.reference}"
    )
    assert outside.status_code == 404


def test_api_is_for_agents_only(world, customer):
    user = UserFactory(username="alice")
    customer.user = user
    customer.save(update_fields=["user"])
    api = client_for(user)
    assert api.get("/api/v1/macros/").status_code == 403
    assert api.get("/api/v1/canned-replies/").status_code == 403
    assert api.get(f"/api/v1/macros/{world['global'].pk}/").status_code == 403
