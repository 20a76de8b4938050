"""Writing macros and canned replies through the API and the desk's forms: created, changed and
deleted, bad input of every kind a 400 with the field, never a 500 or a half-written row; and the
API's schema."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

from servicedesk.macros.models import CannedReply, Macro, Scope
from tests.api.conftest import client_for

from .conftest import macro_make

pytestmark = pytest.mark.django_db


def test_api_creates_and_patches_a_macro(agent):
    api = client_for(agent)
    created = api.post(
        "/api/v1/macros/",
        {
            "name": "Refund",
            "actions": [
                {"type": "reply", "text": "Hi {{ customer.first_name }}"},
                {"type": "status", "status": "solved"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["scope"], body["owner"], body["queue"], body["can_change"]) == ("personal", agent.pk, None, True)
    assert body["actions"][0] == {"type": "reply", "text": "Hi {{ customer.first_name }}", "translations": {}}
    patched = api.patch(f"/api/v1/macros/{body['id']}/", {"name": "Refund v2"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Refund v2"
    assert Macro.objects.get().actions[1] == {"type": "status", "status": "solved"}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "x"}, "actions"),
        ({"name": "x", "actions": "solve"}, "actions"),
        ({"name": "x", "actions": [{"type": "reply", "text": "{% if %}"}]}, "actions"),
        ({"name": "x", "actions": [{"type": "reply", "text": "{{ ticket.customer.user.password|bad }}"}]}, "actions"),
        ({"name": "", "actions": [{"type": "priority", "priority": "low"}]}, "name"),
        ({"name": "x", "scope": "planet", "actions": [{"type": "priority", "priority": "low"}]}, "scope"),
        ({"name": "x", "queue": "nowhere", "actions": [{"type": "priority", "priority": "low"}]}, "queue"),
        ({"name": "x" * 201, "actions": [{"type": "priority", "priority": "low"}]}, "name"),
    ],
)
def test_api_bad_macro_input_is_400_with_the_field(agent, queue, payload, field):
    response = client_for(agent).post("/api/v1/macros/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Macro.objects.exists()


def test_api_queue_scope_needs_a_manager_and_a_queue(agent, manager, queue):
    payload = {"name": "Q", "scope": "queue", "queue": "support", "actions": [{"type": "priority", "priority": "low"}]}
    assert client_for(agent).post("/api/v1/macros/", payload, format="json").status_code == 403
    no_queue = client_for(manager).post("/api/v1/macros/", {**payload, "queue": None}, format="json")
    assert no_queue.status_code == 400 and "queue" in no_queue.json()
    made = client_for(manager).post("/api/v1/macros/", payload, format="json")
    assert made.status_code == 201 and made.json()["queue"] == "support"


def test_api_bad_patch_changes_nothing(agent):
    macro = macro_make(agent, [{"type": "priority", "priority": "low"}], name="Keep")
    response = client_for(agent).patch(
        f"/api/v1/macros/{macro.pk}/", {"name": "New", "actions": [{"type": "status", "status": "gone"}]}, format="json"
    )
    assert response.status_code == 400 and "actions" in response.json()
    macro.refresh_from_db()
    assert (macro.name, macro.actions) == ("Keep", [{"type": "priority", "priority": "low"}])


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "x", "text": ""}, "text"),
        ({"name": "x", "text": "{{ x|nope }}"}, "text"),
        ({"name": "x", "text": "ok", "translations": {"fr": "salut"}}, "translations"),
        ({"name": "x", "text": "ok", "translations": {"zh-hans": "{% load i18n %}"}}, "translations"),
        ({"name": "x", "text": "ok", "translations": ["zh-hans"]}, "translations"),
    ],
)
def test_api_bad_canned_reply_input_is_400_with_the_field(agent, payload, field):
    response = client_for(agent).post("/api/v1/canned-replies/", payload, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not CannedReply.objects.exists()


def test_api_creates_a_canned_reply_with_a_translation(agent):
    response = client_for(agent).post(
        "/api/v1/canned-replies/",
        {"name": "Thanks", "text": "Thanks!", "translations": {"zh-hans": "谢谢!"}},
        format="json",
    )
    assert response.status_code == 201
    assert CannedReply.objects.get().translations == {"zh-hans": "谢谢!"}


# ------------------------------------------------------------------ desk forms


def macro_post(**rows):  # type: ignore[no-untyped-def]
    data = {
        "name": rows.pop("name", "Refund"),
        "scope": rows.pop("scope", "personal"),
        "queue": "",
        "actions-TOTAL_FORMS": "3",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "20",
    }
    data.update(rows)
    return data


def test_desk_form_creates_a_macro_in_the_order_given(client, agent):
    client.force_login(agent)
    response = client.post(
        "/desk/macros/new/",
        macro_post(
            **{
                "actions-0-action": "status:solved",
                "actions-0-ORDER": "3",
                "actions-1-action": "reply:",
                "actions-1-text": 'Hi {{ customer.first_name|default:"there" }}',
                "actions-1-text_zh_hans": "您好",
                "actions-1-ORDER": "1",
                "actions-2-action": "tags:add",
                "actions-2-tags": "refund, VIP",
                "actions-2-ORDER": "2",
            }
        ),
    )
    macro = Macro.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/desk/macros/{macro.pk}/"
    assert macro.actions == [
        {"type": "reply", "text": 'Hi {{ customer.first_name|default:"there" }}', "translations": {"zh-hans": "您好"}},
        {"type": "tags", "mode": "add", "tags": ["refund", "vip"]},
        {"type": "status", "status": "solved"},
    ]
    edit = client.get(f"/desk/macros/{macro.pk}/").content.decode()
    assert 'value="status:solved" selected' in edit


def test_desk_form_bad_input_is_400_with_the_errors(client, agent):
    client.force_login(agent)
    broken = client.post(
        "/desk/macros/new/", macro_post(**{"actions-0-action": "reply:", "actions-0-text": "{% if %}"})
    )
    assert broken.status_code == 400 and "not valid" in broken.content.decode()
    unnamed = client.post("/desk/macros/new/", macro_post(name="", **{"actions-0-action": "priority:low"}))
    assert unnamed.status_code == 400 and "errorlist" in unnamed.content.decode()
    global_scope = client.post("/desk/macros/new/", macro_post(scope="global", **{"actions-0-action": "priority:low"}))
    assert global_scope.status_code == 400
    empty = client.post("/desk/macros/new/", macro_post())
    assert empty.status_code == 400 and "at least one action" in empty.content.decode()
    bogus = client.post("/desk/macros/new/", macro_post(**{"actions-0-action": "explode:now"}))
    assert bogus.status_code == 400
    no_management = client.post("/desk/macros/new/", {"name": "x", "scope": "personal"})
    assert no_management.status_code == 400
    assert not Macro.objects.exists()


def test_desk_canned_form(client, agent):
    client.force_login(agent)
    bad = client.post("/desk/canned/new/", {"name": "Hi", "scope": "personal", "text": "{{ a|nope }}"})
    assert bad.status_code == 400 and "nope" in bad.content.decode()
    bad_translation = client.post(
        "/desk/canned/new/", {"name": "Hi", "scope": "personal", "text": "ok", "text_zh_hans": "{% debug %}"}
    )
    assert bad_translation.status_code == 400 and "debug" in bad_translation.content.decode()
    assert not CannedReply.objects.exists()
    made = client.post(
        "/desk/canned/new/", {"name": "Hi", "scope": "personal", "text": "Hello", "text_zh_hans": "你好"}
    )
    canned = CannedReply.objects.get()
    assert made.status_code == 302 and (canned.owner_id, canned.translations) == (agent.pk, {"zh-hans": "你好"})
    client.post(f"/desk/canned/{canned.pk}/delete/")
    assert not CannedReply.objects.exists()


def test_manager_creates_a_queue_macro_from_the_desk(client, manager, queue):
    client.force_login(manager)
    response = client.post(
        "/desk/macros/new/", macro_post(scope=Scope.QUEUE, queue=str(queue.pk), **{"actions-0-action": "assignee:me"})
    )
    assert response.status_code == 302
    assert (Macro.objects.get().queue_id, Macro.objects.get().owner_id) == (queue.pk, None)


def test_the_schema_holds_the_macro_paths_without_warnings(tmp_path, capsys):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--file", str(target))
    said = capsys.readouterr().err
    mine = [line for line in said.splitlines() if "macros" in line.lower() or "scope" in line.lower()]
    assert mine == []
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    assert sorted(paths["/api/v1/macros/"]) == ["get", "post"]
    assert sorted(paths["/api/v1/macros/{id}/"]) == ["delete", "get", "patch"]
    assert sorted(paths["/api/v1/tickets/{reference}/macros/{id}/apply/"]) == ["post"]
    assert sorted(paths["/api/v1/tickets/{reference}/macros/{id}/preview/"]) == ["get"]
    assert sorted(paths["/api/v1/canned-replies/{id}/render/"]) == ["get"]
    assert "MacroScopeEnum" in schema["components"]["schemas"]
