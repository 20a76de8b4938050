"""Applying a macro once: under the API's Idempotency-Key or the ticket page form's one-time
submission_id, the same request again answers with what the first one did and applies nothing; the
same key with another request is refused with nothing written; two requests with one key at once
apply the macro once (docs/macros.md#applying-once)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core import mail

from servicedesk.macros.models import MacroApplication, Scope
from servicedesk.macros.services import MacroRefused, macro_apply
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket, TicketEvent
from servicedesk.tickets.services.idempotency import IdempotencyKeyReused, request_digest
from tests.api.conftest import client_for
from tests.concurrency import run_at_once
from tests.factories import ticket_make

from .conftest import macro_make

REUSED = (
    "This Idempotency-Key was already used with a different request (method, address or body). "
    "Send the same request to repeat it, or use a new key for a new request."
)
REPLY_AND_SOLVE = [
    {"type": "reply", "text": "Hello {{ customer.first_name }}, the refund is on its way."},
    {"type": "status", "status": "open"},
    {"type": "priority", "priority": "low"},
]


def replies(ticket: Ticket) -> list[str]:
    return list(Message.objects.filter(ticket=ticket, kind="public_agent").values_list("text", flat=True))


def written(ticket: Ticket) -> tuple[int, int, int]:
    """The ticket's version, its events and its messages: what an application adds to."""
    fresh = Ticket.objects.get(pk=ticket.pk)
    return fresh.version, TicketEvent.objects.filter(ticket=fresh).count(), Message.objects.filter(ticket=fresh).count()


def apply_url(ticket: Ticket, macro) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/tickets/{ticket.reference}/macros/{macro.pk}/apply/"


# ------------------------------------------------------------------ the service


@pytest.mark.django_db
def test_the_same_key_and_digest_apply_once_and_return_the_first_result(
    agent, ticket, django_capture_on_commit_callbacks
):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    actor = Actor.agent(agent, source="api")
    with django_capture_on_commit_callbacks(execute=True):
        first = macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key="k-1", request_digest="d")
    after_first = written(ticket)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key="k-1", request_digest="d")

    assert (first.replayed, again.replayed) == (False, True)
    assert callbacks == []  # nothing delivered again
    assert written(ticket) == after_first
    assert replies(ticket) == ["Hello Alice, the refund is on its way."]
    assert len(mail.outbox) == 1
    assert again.version == first.version == after_first[0]
    assert again.ticket.pk == ticket.pk
    assert again.steps == first.steps
    assert [step.message for step in again.steps] == [first.steps[0].message, None, None]
    record = MacroApplication.objects.get()
    assert (record.user, record.key, record.request_digest, record.ticket_id, record.macro) == (
        agent,
        "k-1",
        "d",
        ticket.pk,
        macro,
    )


@pytest.mark.django_db
def test_the_same_key_with_another_digest_is_refused_and_writes_nothing(agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    actor = Actor.agent(agent)
    macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key="k-2", request_digest="one")
    before = written(ticket)

    with pytest.raises(IdempotencyKeyReused) as refused:
        macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key="k-2", request_digest="two")

    assert refused.value.status_code == 422 and refused.value.message == REUSED
    assert written(ticket) == before
    assert len(replies(ticket)) == 1


@pytest.mark.django_db
def test_without_a_key_applying_twice_writes_twice(agent, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "Checked."}])
    macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))

    assert Message.objects.filter(ticket=ticket, kind="internal").count() == 2
    assert MacroApplication.objects.count() == 0


@pytest.mark.django_db
def test_a_refused_macro_leaves_the_key_unused(agent, outsider, ticket):
    refused = macro_make(agent, [{"type": "note", "text": "x"}, {"type": "assignee", "assignee": outsider.pk}])
    fine = macro_make(agent, [{"type": "note", "text": "Fine."}], name="Fine")

    with pytest.raises(MacroRefused):
        macro_apply(macro=refused, ticket=ticket, actor=Actor.agent(agent), idempotency_key="k-3", request_digest="a")
    assert MacroApplication.objects.count() == 0
    result = macro_apply(macro=fine, ticket=ticket, actor=Actor.agent(agent), idempotency_key="k-3", request_digest="b")

    assert result.replayed is False
    assert list(Message.objects.filter(ticket=ticket, kind="internal").values_list("text", flat=True)) == ["Fine."]


@pytest.mark.django_db
def test_keys_are_each_agents_own(agent, colleague, manager, ticket):
    macro = macro_make(manager, [{"type": "note", "text": "Seen."}], name="Shared", scope=Scope.GLOBAL)
    macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent), idempotency_key="same", request_digest="d")
    other = macro_apply(
        macro=macro, ticket=ticket, actor=Actor.agent(colleague), idempotency_key="same", request_digest="d"
    )

    assert other.replayed is False
    assert Message.objects.filter(ticket=ticket, kind="internal").count() == 2


@pytest.mark.django_db
def test_a_key_needs_an_agent(agent, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "x"}])
    with pytest.raises(ValueError):
        macro_apply(macro=macro, ticket=ticket, actor=Actor.system(), idempotency_key="k", request_digest="d")
    assert MacroApplication.objects.count() == 0


# ------------------------------------------------------------------ the API


@pytest.mark.django_db
def test_api_same_key_same_body_applies_once_and_answers_the_same(agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    api = client_for(agent)
    headers = {"Idempotency-Key": "order-77"}

    first = api.post(apply_url(ticket, macro), {"note": "a", "n": 1}, format="json", headers=headers)
    after_first = written(ticket)
    second = api.post(apply_url(ticket, macro), {"n": 1, "note": "a"}, format="json", headers=headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert first.json()["version"] == after_first[0]
    assert [step["type"] for step in first.json()["steps"]] == ["reply", "status", "priority"]
    assert first.json()["steps"][0]["message"] == Message.objects.get(ticket=ticket, kind="public_agent").pk
    assert written(ticket) == after_first
    assert replies(ticket) == ["Hello Alice, the refund is on its way."]
    record = MacroApplication.objects.get()
    assert record.request_digest == request_digest(
        method="POST", path=apply_url(ticket, macro), body={"note": "a", "n": 1}
    )


@pytest.mark.django_db
def test_api_same_key_with_another_body_ticket_or_macro_is_422_and_applies_nothing(agent, queue, customer, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    other_macro = macro_make(agent, [{"type": "note", "text": "x"}], name="Other")
    other_ticket = ticket_make(customer=customer, queue=queue, subject="Other")
    api = client_for(agent)
    headers = {"Idempotency-Key": "k-9"}
    assert api.post(apply_url(ticket, macro), {}, format="json", headers=headers).status_code == 200
    before = (written(ticket), written(other_ticket))

    answers = [
        api.post(apply_url(ticket, macro), {"again": True}, format="json", headers=headers),
        api.post(apply_url(ticket, other_macro), {}, format="json", headers=headers),
        api.post(apply_url(other_ticket, macro), {}, format="json", headers=headers),
    ]

    assert [answer.status_code for answer in answers] == [422, 422, 422]
    assert all(answer.json() == {"detail": REUSED, "Idempotency-Key": [REUSED]} for answer in answers)
    assert (written(ticket), written(other_ticket)) == before
    assert MacroApplication.objects.count() == 1


@pytest.mark.django_db
def test_api_without_a_key_applies_each_time_and_an_overlong_key_is_400(agent, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "Again."}])
    api = client_for(agent)
    assert api.post(apply_url(ticket, macro)).status_code == 200
    assert api.post(apply_url(ticket, macro)).status_code == 200

    overlong = api.post(apply_url(ticket, macro), headers={"Idempotency-Key": "k" * 201})

    assert overlong.status_code == 400
    message = "The Idempotency-Key header is longer than 200 characters."
    assert overlong.json() == {"detail": message, "Idempotency-Key": [message]}
    assert Message.objects.filter(ticket=ticket, kind="internal").count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_api_concurrent_requests_with_one_key_apply_once(agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    clients = [client_for(agent) for _ in range(4)]

    responses = run_at_once(
        4, lambda i: clients[i].post(apply_url(ticket, macro), headers={"Idempotency-Key": "at-once"})
    )

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert len(replies(ticket)) == 1
    assert Ticket.objects.get(pk=ticket.pk).priority == "low"
    assert MacroApplication.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_concurrent_requests_with_different_keys_each_apply(agent, ticket):
    macro = macro_make(agent, [{"type": "note", "text": "Each."}])
    clients = [client_for(agent) for _ in range(4)]

    responses = run_at_once(
        4, lambda i: clients[i].post(apply_url(ticket, macro), headers={"Idempotency-Key": f"key-{i}"})
    )

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert Message.objects.filter(ticket=ticket, kind="internal").count() == 4
    assert MacroApplication.objects.count() == 4


# ------------------------------------------------------------------ the ticket page


def panel_submission_id(page: str) -> str:
    form = re.search(r'<form method="post" action="[^"]*" id="macro-apply-form">.*?</form>', page, re.S).group(0)
    return re.search(r'<input type="hidden" name="submission_id" value="([^"]+)">', form).group(1)


@pytest.mark.django_db
def test_the_ticket_page_form_and_the_palette_carry_one_fresh_submission_id(client, agent, ticket):
    macro_make(agent, REPLY_AND_SOLVE)
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    again = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()

    submission_id = panel_submission_id(page)
    palette = json.loads(
        re.search(r'<script id="macro-palette-data" type="application/json">(.*?)</script>', page).group(1)
    )
    assert str(uuid.UUID(submission_id)) == submission_id
    assert palette["submission_id"] == submission_id
    assert panel_submission_id(again) != submission_id


@pytest.mark.django_db
def test_the_ticket_page_form_posted_twice_applies_the_macro_once(client, agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE, name="Refund sent")
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    form = {"macro": macro.pk, "submission_id": panel_submission_id(page)}

    first = client.post(f"/desk/macros/apply/{ticket.reference}/", form, follow=True)
    after_first = written(ticket)
    second = client.post(f"/desk/macros/apply/{ticket.reference}/", form, follow=True)

    assert first.redirect_chain == second.redirect_chain == [(f"/desk/tickets/{ticket.reference}/", 302)]
    assert "The macro Refund sent was applied (3 changes)." in first.content.decode()
    assert (
        "The macro Refund sent was already applied from this form; it was not applied again." in second.content.decode()
    )
    assert written(ticket) == after_first
    assert replies(ticket) == ["Hello Alice, the refund is on its way."]


@pytest.mark.django_db
def test_the_same_form_sent_with_another_macro_applies_nothing(client, agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    other = macro_make(agent, [{"type": "note", "text": "Other."}], name="Other")
    client.force_login(agent)
    submission_id = str(uuid.uuid4())
    client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": macro.pk, "submission_id": submission_id})
    before = written(ticket)

    response = client.post(
        f"/desk/macros/apply/{ticket.reference}/", {"macro": other.pk, "submission_id": submission_id}, follow=True
    )

    assert response.redirect_chain == [(f"/desk/tickets/{ticket.reference}/", 302)]
    assert "This form was already sent with another macro, so nothing was applied." in response.content.decode()
    assert written(ticket) == before
    assert not Message.objects.filter(ticket=ticket, kind="internal").exists()


@pytest.mark.django_db
def test_the_preview_pages_apply_form_carries_its_own_submission_id_and_applies_once(client, agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    client.force_login(agent)
    page = client.get(f"/desk/macros/preview/{ticket.reference}/?macro={macro.pk}").content.decode()
    submission_id = re.search(r'<input type="hidden" name="submission_id" value="([^"]+)">', page).group(1)
    form = {"macro": macro.pk, "submission_id": submission_id}

    for _twice in range(2):
        assert client.post(f"/desk/macros/apply/{ticket.reference}/", form).status_code == 302

    assert len(replies(ticket)) == 1


@pytest.mark.django_db
def test_a_damaged_submission_id_is_400_and_applies_nothing(client, agent, ticket):
    macro = macro_make(agent, REPLY_AND_SOLVE)
    client.force_login(agent)
    before = written(ticket)

    response = client.post(
        f"/desk/macros/apply/{ticket.reference}/", {"macro": macro.pk, "submission_id": "not-a-uuid"}
    )

    assert response.status_code == 400
    assert "The form is damaged: reload the ticket and apply the macro again." in response.content.decode()
    assert written(ticket) == before


@pytest.mark.django_db
def test_another_agent_posting_the_same_submission_id_applies_for_themselves(client, agent, colleague, manager, ticket):
    macro = macro_make(manager, [{"type": "note", "text": "Seen."}], name="Shared", scope=Scope.GLOBAL)
    submission_id = str(uuid.uuid4())
    for user in (agent, colleague):
        client.force_login(user)
        client.post(f"/desk/macros/apply/{ticket.reference}/", {"macro": macro.pk, "submission_id": submission_id})

    assert list(Message.objects.filter(ticket=ticket, kind="internal").values_list("author_user", flat=True)) == [
        agent.pk,
        colleague.pk,
    ]
