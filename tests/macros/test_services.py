"""Applying a macro: every action kind through the ticket services, each with its event, all in one
transaction; a refused action leaves the ticket as it was. Saving checks everything first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from servicedesk.core.errors import ApplicationError, NotFound, PermissionDenied
from servicedesk.macros.models import CannedReply, Macro, Scope
from servicedesk.macros.services import (
    MacroInput,
    MacroRefused,
    canned_reply_render,
    macro_apply,
    macro_preview,
    macro_save,
    scoped_delete,
)
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import DeliveryStatus, Message, MessageKind, Queue, Tag, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_status_change, ticket_tags_set
from tests.factories import AgentFactory, CustomerFactory, ticket_make

from .conftest import canned_make, macro_make

pytestmark = pytest.mark.django_db


def state(ticket: Ticket) -> tuple:
    fresh = Ticket.objects.get(pk=ticket.pk)
    return (
        fresh.status,
        fresh.priority,
        fresh.queue_id,
        fresh.assignee_id,
        sorted(fresh.tags.values_list("name", flat=True)),
        fresh.version,
        Message.objects.filter(ticket=fresh).count(),
        TicketEvent.objects.filter(ticket=fresh).count(),
    )


def new_events(ticket: Ticket, since: int) -> list[TicketEvent]:
    return list(TicketEvent.objects.filter(ticket=ticket, pk__gt=since).order_by("pk"))


def last_event_id(ticket: Ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket).order_by("-pk").values_list("pk", flat=True).first() or 0


def test_every_action_kind_goes_through_its_service_and_leaves_its_event(agent, ticket, colleague, billing):
    billing.members.add(colleague)
    ticket_tags_set(ticket=ticket, tags=["old", "vip"], actor=Actor.system())
    macro = macro_make(
        agent,
        [
            {"type": "status", "status": "open"},
            {"type": "priority", "priority": "high"},
            {"type": "assignee", "assignee": colleague.pk},
            {"type": "tags", "mode": "add", "tags": ["Refund"]},
            {"type": "tags", "mode": "remove", "tags": ["old"]},
            {"type": "reply", "text": 'Hello {{ customer.first_name|default:"there" }}, about {{ ticket.reference }}.'},
            {"type": "note", "text": "Refund for {{ customer.email }} by {{ agent.name }}"},
            {"type": "queue", "queue": "billing"},
            {"type": "status", "status": "pending"},
        ],
    )
    since = last_event_id(ticket)
    at = timezone.now() - timedelta(minutes=1)

    result = macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent, source="ui"), at=at)

    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.status, fresh.priority, fresh.queue.slug, fresh.assignee_id) == (
        "pending",
        "high",
        "billing",
        colleague.pk,
    )
    assert sorted(fresh.tags.values_list("name", flat=True)) == ["refund", "vip"]
    reply, note = result.messages
    assert (reply.kind, reply.text, reply.delivery_status) == (
        MessageKind.PUBLIC_AGENT,
        f"Hello Alice, about {ticket.reference}.",
        DeliveryStatus.QUEUED,
    )
    assert (note.kind, note.text) == (MessageKind.INTERNAL, "Refund for alice@example.com by Ann")
    assert reply.author_user == agent and note.author_user == agent
    kinds = [
        (event.kind, event.before, event.after)
        for event in new_events(ticket, since)
        if event.kind not in ("sla", "sla_target")
    ]
    assert [kind for kind, _b, _a in kinds] == [
        "status",
        "priority",
        "assignee",
        "tags",
        "tags",
        "message",
        "message",
        "queue",
        "status",
    ]
    assert kinds[0][1:] == ("new", "open")
    assert kinds[2][1:] == (None, colleague.pk)
    assert kinds[3][1:] == (["old", "vip"], ["old", "refund", "vip"])
    assert kinds[4][1:] == (["old", "refund", "vip"], ["refund", "vip"])
    assert kinds[7][1:] == ("support", "billing")
    events = new_events(ticket, since)
    assert {event.at for event in events} == {at}
    assert {event.actor_user_id for event in events} == {agent.pk}
    assert {event.source for event in events} == {"ui"}
    assert [step.kind for step in result.steps] == [a["type"] for a in macro.actions]
    assert (result.steps[1].before, result.steps[1].after) == ("Normal", "High")
    assert result.ticket.version == fresh.version


def test_tags_set_replaces_them_all_and_assignee_me_and_nobody(agent, ticket):
    ticket_tags_set(ticket=ticket, tags=["a", "b"], actor=Actor.system())
    macro = macro_make(
        agent,
        [
            {"type": "tags", "mode": "set", "tags": ["c"]},
            {"type": "assignee", "assignee": "me"},
        ],
    )
    macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (sorted(fresh.tags.values_list("name", flat=True)), fresh.assignee_id) == (["c"], agent.pk)

    unassign = macro_make(agent, [{"type": "assignee", "assignee": None}], name="Unassign")
    macro_apply(macro=unassign, ticket=ticket, actor=Actor.agent(agent))
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None


def test_a_refused_assignee_rolls_back_every_action_before_it(
    agent, outsider, ticket, django_capture_on_commit_callbacks
):
    macro = macro_make(
        agent,
        [
            {"type": "priority", "priority": "urgent"},
            {"type": "reply", "text": "We are on it."},
            {"type": "assignee", "assignee": outsider.pk},
            {"type": "status", "status": "solved"},
        ],
    )
    before = state(ticket)

    with django_capture_on_commit_callbacks(execute=False) as callbacks, pytest.raises(MacroRefused) as refused:
        macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))

    assert state(ticket) == before
    assert callbacks == []
    assert refused.value.index == 2
    assert refused.value.extra == {"action": 2}
    assert "Action 3 (Assign)" in refused.value.message
    assert "does not work in the ticket's queue" in refused.value.message
    assert [step.kind for step in refused.value.steps] == ["priority", "reply"]


def test_a_status_move_not_allowed_rolls_back_the_whole_macro(agent, ticket):
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    macro = macro_make(
        agent,
        [{"type": "tags", "mode": "add", "tags": ["x"]}, {"type": "status", "status": "pending"}],
    )
    before = state(ticket)
    with pytest.raises(MacroRefused, match="cannot go from Closed to Pending"):
        macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    assert state(ticket) == before
    assert not Tag.objects.filter(name="x", tickets__isnull=False).exists()


def test_a_queue_or_agent_gone_since_the_macro_was_saved_is_a_refusal_not_an_error(agent, colleague, ticket, billing):
    moves = macro_make(agent, [{"type": "queue", "queue": "billing"}])
    assigns = macro_make(agent, [{"type": "assignee", "assignee": colleague.pk}], name="Give")
    Queue.objects.filter(pk=billing.pk).delete()
    colleague.delete()
    before = state(ticket)
    with pytest.raises(MacroRefused, match="no longer exists"):
        macro_apply(macro=moves, ticket=ticket, actor=Actor.agent(agent))
    with pytest.raises(MacroRefused, match="no longer exists"):
        macro_apply(macro=assigns, ticket=ticket, actor=Actor.agent(agent))
    assert state(ticket) == before


def test_actions_changed_in_the_database_behind_the_services_are_refused(agent, ticket):
    macro = macro_make(agent, [{"type": "status", "status": "open"}])
    Macro.objects.filter(pk=macro.pk).update(actions=[{"type": "reply", "text": "{% if %}"}])
    macro.refresh_from_db()
    before = state(ticket)
    with pytest.raises(MacroRefused, match="not valid"):
        macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    assert state(ticket) == before


def test_a_reply_that_fills_in_empty_is_refused(agent, ticket):
    ticket.customer.name = ""
    ticket.customer.save(update_fields=["name"])
    macro = macro_make(agent, [{"type": "reply", "text": "{{ customer.first_name }}"}])
    with pytest.raises(MacroRefused, match="The message is empty"):
        macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))


def test_the_reply_is_in_the_customers_language_when_translated(agent, queue):
    macro = macro_make(
        agent,
        [
            {
                "type": "reply",
                "text": "Hello {{ customer.first_name }}, {{ ticket.priority }}",
                "translations": {"zh-hans": "{{ customer.name }}您好 {{ ticket.priority }}"},
            }
        ],
    )
    chinese = ticket_make(customer=CustomerFactory(name="王 小明"), queue=queue, language="zh-hans")
    french = ticket_make(customer=CustomerFactory(name="Jean Dupont"), queue=queue, language="fr")
    by_record = CustomerFactory(name="李 雷")
    by_record.language = "zh-hans"
    by_record.save(update_fields=["language"])
    recorded = ticket_make(customer=by_record, queue=queue)

    assert macro_apply(macro=macro, ticket=chinese, actor=Actor.agent(agent)).messages[0].text == "王 小明您好 普通"
    assert macro_apply(macro=macro, ticket=french, actor=Actor.agent(agent)).messages[0].text == "Hello Jean, Normal"
    assert macro_apply(macro=macro, ticket=recorded, actor=Actor.agent(agent)).messages[0].text == "李 雷您好 普通"


def test_a_customer_the_agent_may_not_see_fills_in_no_name(agent, manager, queue, customer):
    """A ticket an agent opened for an existing customer conceals that customer from agents
    (docs/architecture.md, "Access rules"): the text carries nothing of the record."""
    opened = ticket_make(customer=customer, queue=queue, actor=Actor.agent(manager), initiator="outbound")
    macro = macro_make(
        agent,
        [{"type": "note", "text": '{{ customer.first_name|default:"there" }} <{{ customer.email }}>'}],
        scope=Scope.PERSONAL,
    )
    shared = macro_make(
        manager, [{"type": "note", "text": '{{ customer.first_name|default:"there" }}'}], scope=Scope.GLOBAL
    )

    assert macro_apply(macro=macro, ticket=opened, actor=Actor.agent(agent)).messages[0].text == "there <>"
    assert macro_apply(macro=shared, ticket=opened, actor=Actor.agent(manager)).messages[0].text == "Alice"


def test_callable_from_a_task_without_an_agent(agent, manager, ticket):
    macro = macro_make(
        manager,
        [{"type": "note", "text": "Auto: {{ ticket.reference }}"}, {"type": "status", "status": "open"}],
        scope=Scope.GLOBAL,
    )
    result = macro_apply(macro=macro, ticket=ticket, actor=Actor.system(source="bulk"))
    assert result.messages[0].text == f"Auto: {ticket.reference}" and result.messages[0].author_user is None
    assert Ticket.objects.get(pk=ticket.pk).status == "open"
    me = macro_make(manager, [{"type": "assignee", "assignee": "me"}], scope=Scope.GLOBAL, name="Take")
    with pytest.raises(MacroRefused, match='"me"'):
        macro_apply(macro=me, ticket=ticket, actor=Actor.system())


def test_an_agent_applies_only_macros_and_tickets_they_may_see(agent, outsider, colleague, ticket, billing):
    theirs = macro_make(colleague, [{"type": "priority", "priority": "low"}])
    mine = macro_make(outsider, [{"type": "priority", "priority": "low"}])
    before = state(ticket)
    with pytest.raises(NotFound):
        macro_apply(macro=theirs, ticket=ticket, actor=Actor.agent(agent))
    with pytest.raises(NotFound):
        macro_apply(macro=mine, ticket=ticket, actor=Actor.agent(outsider))
    assert state(ticket) == before


def test_a_queue_macro_applies_to_that_queues_tickets_only(manager, agent, ticket, billing, customer):
    macro = macro_make(manager, [{"type": "priority", "priority": "low"}], scope=Scope.QUEUE, queue=billing)
    before = state(ticket)
    with pytest.raises(ApplicationError, match="another queue"):
        macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(manager))
    assert state(ticket) == before
    billing_ticket = ticket_make(customer=customer, queue=billing)
    macro_apply(macro=macro, ticket=billing_ticket, actor=Actor.agent(manager))
    assert Ticket.objects.get(pk=billing_ticket.pk).priority == "low"


def test_preview_shows_the_steps_and_keeps_nothing(agent, ticket, django_capture_on_commit_callbacks):
    macro = macro_make(
        agent,
        [
            {"type": "status", "status": "open"},
            {"type": "priority", "priority": "normal"},
            {"type": "reply", "text": "Hi {{ customer.first_name }}"},
        ],
    )
    before = state(ticket)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        preview = macro_preview(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    assert state(ticket) == before
    assert callbacks == []
    assert preview.refused is None
    status, priority, reply = preview.steps
    assert (status.before, status.after, status.changed) == ("New", "Open", True)
    assert priority.changed is False
    assert (reply.kind, reply.text) == ("reply", "Hi Alice")


def test_preview_names_the_refused_action(agent, outsider, ticket):
    macro = macro_make(agent, [{"type": "priority", "priority": "high"}, {"type": "assignee", "assignee": outsider.pk}])
    before = state(ticket)
    preview = macro_preview(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    assert state(ticket) == before
    assert preview.refused is not None and preview.refused.index == 1
    assert [step.kind for step in preview.steps] == ["priority"]


# ------------------------------------------------------------------ saving


@pytest.mark.parametrize(
    "actions, reason",
    [
        ([], "at least one action"),
        ("status", "a list"),
        ([{"type": "explode"}], "unknown type"),
        ([{"type": "status", "status": "gone"}], "Unknown status"),
        ([{"type": "priority", "priority": 5}], "Unknown priority"),
        ([{"type": "assignee", "assignee": "someone"}], "agent's id"),
        ([{"type": "assignee", "assignee": 1.5}], "agent's id"),
        ([{"type": "tags", "mode": "toggle", "tags": ["a"]}], "add, remove or set"),
        ([{"type": "tags", "mode": "add", "tags": []}], "at least one tag"),
        ([{"type": "reply", "text": "  "}], "cannot be empty"),
        ([{"type": "reply", "text": "Hi {% if %}"}], "not valid"),
        ([{"type": "note", "text": "{{ ticket.subject|bogus }}"}], "bogus"),
        ([{"type": "reply", "text": "ok", "translations": {"fr": "salut"}}], "Unknown language"),
        ([{"type": "reply", "text": "ok", "translations": {"zh-hans": "{% url 'x' %}"}}], "'url'"),
        ([{"type": "priority", "priority": "low"}] * 21, "at most 20"),
    ],
)
def test_bad_actions_are_refused_at_save_with_nothing_written(agent, actions, reason):
    with pytest.raises(ApplicationError) as refused:
        macro_save(data=MacroInput(name="Bad", scope=Scope.PERSONAL, actions=actions), user=agent)
    assert refused.value.field == "actions"
    assert reason in refused.value.message
    assert not Macro.objects.exists()


def test_template_errors_in_a_canned_reply_are_refused_at_save(agent):
    with pytest.raises(ApplicationError) as refused:
        canned_make(agent, "Hello {{ customer.first_name|nope }}")
    assert refused.value.field == "text" and "nope" in refused.value.message
    with pytest.raises(ApplicationError) as translation:
        canned_make(agent, "Hello", translations={"zh-hans": "{% debug %}"})
    assert translation.value.field == "translations"
    assert not CannedReply.objects.exists()


def test_agents_keep_personal_ones_and_managers_shared_ones(agent, manager, colleague, queue):
    with pytest.raises(PermissionDenied):
        macro_make(agent, [{"type": "priority", "priority": "low"}], scope=Scope.GLOBAL)
    with pytest.raises(PermissionDenied):
        canned_make(agent, "x", scope=Scope.QUEUE, queue=queue)
    with pytest.raises(ApplicationError) as no_queue:
        macro_make(manager, [{"type": "priority", "priority": "low"}], scope=Scope.QUEUE)
    assert no_queue.value.field == "queue"
    shared = macro_make(manager, [{"type": "priority", "priority": "low"}], scope=Scope.QUEUE, queue=queue)
    assert (shared.owner_id, shared.queue_id) == (None, queue.pk)
    personal = macro_make(agent, [{"type": "priority", "priority": "low"}])
    assert personal.owner_id == agent.pk

    data = MacroInput(name="Mine now", scope=Scope.PERSONAL, actions=[{"type": "priority", "priority": "low"}])
    with pytest.raises(PermissionDenied):
        macro_save(data=data, user=agent, macro=shared)
    with pytest.raises(PermissionDenied):
        macro_save(data=data, user=colleague, macro=personal)
    with pytest.raises(PermissionDenied):
        macro_save(data=data, user=manager, macro=personal)
    with pytest.raises(PermissionDenied):
        scoped_delete(item=personal, user=manager)
    assert Macro.objects.get(pk=personal.pk).name == "Macro"
    scoped_delete(item=personal, user=agent)
    assert not Macro.objects.filter(pk=personal.pk).exists()


def test_canned_reply_rendered_for_a_ticket(agent, ticket, outsider):
    canned = canned_make(
        agent, 'Hi {{ customer.first_name|default:"there" }} ({{ ticket.reference }})', translations={"zh-hans": "您好"}
    )
    rendered = canned_reply_render(canned=canned, ticket=ticket, user=agent)
    assert (rendered.text, rendered.language) == (f"Hi Alice ({ticket.reference})", "en")
    with pytest.raises(NotFound):
        canned_reply_render(canned=canned, ticket=ticket, user=outsider)
    Ticket.objects.filter(pk=ticket.pk).update(language="zh-hans")
    assert canned_reply_render(canned=canned, ticket=Ticket.objects.get(pk=ticket.pk), user=agent).text == "您好"


def test_names_are_cleaned_and_required(agent):
    with pytest.raises(ApplicationError) as refused:
        macro_make(agent, [{"type": "priority", "priority": "low"}], name="  \n ")
    assert refused.value.field == "name"
    saved = macro_make(agent, [{"type": "priority", "priority": "low"}], name="Close\nas   spam")
    assert saved.name == "Close as spam"


def test_another_agent_of_the_queue_is_a_valid_assignee(agent, queue, ticket):
    other = AgentFactory(username="ivy", queues=[queue])
    macro = macro_make(agent, [{"type": "assignee", "assignee": str(other.pk)}])
    assert macro.actions == [{"type": "assignee", "assignee": other.pk}]
    macro_apply(macro=macro, ticket=ticket, actor=Actor.agent(agent))
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == other.pk
