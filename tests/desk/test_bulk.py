"""Bulk actions on the inbox (docs/inbox.md, "Bulk actions"): every action through its service with
its own event, refusals listed and the rest applied, small selections in the request, large ones
as a job that re-checks access per ticket when it runs, runs once, can be cancelled and survives
a dead broker. The page's forms and their bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from servicedesk.desk import bulk
from servicedesk.desk.models import BulkJob, BulkJobItem, BulkJobStatus, BulkOutcome
from servicedesk.desk.pushes import bulk_job_frame
from servicedesk.macros.models import Scope
from servicedesk.macros.services import MacroInput, macro_save
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, MessageKind, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_status_change, ticket_tags_set
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets(queue, customer):
    """Three new tickets of one customer in support."""
    return [ticket_make(customer=customer, queue=queue, subject=f"Question {n}") for n in range(3)]


def fresh(ticket: Ticket) -> Ticket:
    return Ticket.objects.get(pk=ticket.pk)


def events(ticket: Ticket, kind: str) -> list[TicketEvent]:
    return list(TicketEvent.objects.filter(ticket=ticket, kind=kind).order_by("pk"))


def post_bulk(client, action: str, ids, *, back: str = "", **fields):
    data = {"action": action, "scope": "selected", "ids": [t.pk for t in ids], "back": back, **fields}
    return client.post("/desk/bulk/", data)


def submit(user, data):
    checked = bulk.bulk_request_check(user=user, data=data)
    return bulk.bulk_submit(user=user, request=checked)


# --- Every action, in the request ------------------------------------------------


def test_status_for_the_ticked_tickets_each_with_its_own_event(agent_client, agent, tickets):
    response = post_bulk(agent_client, "status", tickets[:2], status="open", back="status=new")

    assert response.status_code == 302
    assert response["Location"] == "/desk/?status=new"
    assert [fresh(t).status for t in tickets] == ["open", "open", "new"]
    for ticket in tickets[:2]:
        [event] = events(ticket, "status")
        assert (event.before, event.after, event.actor_user_id, event.source) == ("new", "open", agent.pk, "ui")
    assert events(tickets[2], "status") == []
    page = agent_client.get("/desk/?status=new").content.decode()
    assert "Done: 2 tickets changed, 0 already so, 0 refused, 0 skipped (no longer visible)." in page


def test_priority_assignee_queue_and_spam(agent_client, agent, manager, tickets, queue):
    billing = QueueFactory(slug="billing", name="Billing")
    billing.members.add(agent)

    post_bulk(agent_client, "priority", tickets, priority="urgent")
    post_bulk(agent_client, "assignee", tickets[:1], assignee="me")
    post_bulk(agent_client, "assignee", tickets[1:2], assignee=str(manager.pk))
    post_bulk(agent_client, "queue", tickets[2:], queue="billing")

    assert [fresh(t).priority for t in tickets] == ["urgent"] * 3
    assert [fresh(t).assignee_id for t in tickets] == [agent.pk, manager.pk, None]
    assert fresh(tickets[2]).queue_id == billing.pk
    assert [e.after for e in events(tickets[2], "queue")] == ["billing"]
    assert [len(events(t, "priority")) for t in tickets] == [1, 1, 1]

    post_bulk(agent_client, "spam", tickets[:2], spam="1")
    assert [fresh(t).is_spam for t in tickets] == [True, True, False]
    assert [e.after for e in events(tickets[0], "spam")] == [True]
    post_bulk(agent_client, "spam", tickets[:1], spam="0")
    assert fresh(tickets[0]).is_spam is False


def test_tags_are_added_and_removed_keeping_the_others(agent_client, tickets):
    system = Actor.system()
    ticket_tags_set(ticket=tickets[0], tags=["billing", "old"], actor=system)
    ticket_tags_set(ticket=tickets[1], tags=["vip"], actor=system)

    post_bulk(agent_client, "tags", tickets, tags_add="Urgent, VIP", tags_remove="old")

    assert [sorted(fresh(t).tags.values_list("name", flat=True)) for t in tickets] == [
        ["billing", "urgent", "vip"],
        ["urgent", "vip"],
        ["urgent", "vip"],
    ]
    assert [e.after for e in events(tickets[0], "tags")][-1] == ["billing", "urgent", "vip"]


def test_merge_into_the_target_the_agent_names(agent_client, tickets):
    target = tickets[0]

    response = post_bulk(agent_client, "merge", tickets, target=target.reference.lower())

    assert response.status_code == 302
    assert [fresh(t).merged_into_id for t in tickets] == [None, target.pk, target.pk]
    assert [fresh(t).status for t in tickets[1:]] == ["closed", "closed"]
    assert [e.after["reference"] for e in events(target, "merged_in")] == [tickets[1].reference, tickets[2].reference]


def test_a_macro_is_applied_to_each_ticket(agent_client, agent, tickets):
    macro = macro_save(
        data=MacroInput(
            name="Close politely",
            scope=Scope.PERSONAL,
            queue=None,
            actions=[{"type": "note", "text": "Closed in bulk."}, {"type": "status", "status": "solved"}],
        ),
        user=agent,
    )

    post_bulk(agent_client, "macro", tickets[:2], macro=str(macro.pk))

    assert [fresh(t).status for t in tickets] == ["solved", "solved", "new"]
    notes = Message.objects.filter(kind=MessageKind.INTERNAL, text="Closed in bulk.")
    assert sorted(notes.values_list("ticket_id", flat=True)) == sorted(t.pk for t in tickets[:2])


# --- Refusals are listed, the others applied -------------------------------------------


def test_refusals_and_unchanged_are_in_the_summary_and_the_others_apply(agent, tickets, customer):
    ticket_status_change(ticket=tickets[1], status="closed", actor=Actor.system())
    ticket_status_change(ticket=tickets[2], status="pending", actor=Actor.system())

    submitted = submit(agent, {"action": "status", "parameters": {"status": "pending"}, "ids": [t.pk for t in tickets]})

    summary = submitted.summary.as_dict()
    assert submitted.job is None
    assert summary["total"] == 3
    assert (summary["changed"], summary["unchanged"], summary["failed"], summary["skipped"]) == (1, 1, 1, 0)
    assert summary["failures"] == [
        {
            "ticket": tickets[1].pk,
            "reference": tickets[1].reference,
            "reason": "A ticket cannot go from Closed to Pending.",
        }
    ]
    assert [fresh(t).status for t in tickets] == ["pending", "closed", "pending"]


def test_a_merge_across_customers_is_refused_for_that_ticket_only(agent, tickets, queue):
    stranger = ticket_make(customer=CustomerFactory(), queue=queue)
    target = tickets[0]

    summary = submit(
        agent, {"action": "merge", "parameters": {"target": target.reference}, "ids": [tickets[1].pk, stranger.pk]}
    ).summary.as_dict()

    assert (summary["changed"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["reference"] == stranger.reference
    assert summary["failures"][0]["reason"] == "Only tickets of the same customer can be merged."
    assert fresh(stranger).merged_into_id is None
    assert events(stranger, "merged") == []


def test_an_assignee_outside_a_tickets_queue_is_refused_there(agent, tickets):
    billing = QueueFactory(slug="billing", name="Billing")
    bob = AgentFactory(username="bob", queues=[billing])
    elsewhere = ticket_make(customer=CustomerFactory(), queue=billing)
    agent_in_both = AgentFactory(username="both", queues=[tickets[0].queue, billing])

    summary = submit(
        agent_in_both, {"action": "assignee", "parameters": {"assignee": bob.pk}, "ids": [tickets[0].pk, elsewhere.pk]}
    ).summary.as_dict()

    assert (summary["changed"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["reason"] == "This agent does not work in the ticket's queue."
    assert fresh(elsewhere).assignee_id == bob.pk
    assert fresh(tickets[0]).assignee_id is None


# --- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"action": "explode", "scope": "selected"}, "action", "Unknown action."),
        ({"action": "status", "status": "done"}, "status", "Choose a status."),
        ({"action": "priority", "priority": ""}, "priority", "Choose a priority."),
        ({"action": "queue", "queue": "billing"}, "queue", "Choose one of your queues."),
        ({"action": "assignee", "assignee": "99999"}, "assignee", "Choose an active agent."),
        ({"action": "tags", "tags_add": "", "tags_remove": ""}, "tags", "Give the tags to add or to remove."),
        ({"action": "spam", "spam": "maybe"}, "spam", "Choose spam or not spam."),
        ({"action": "merge", "target": "SD-999999"}, "target", "Give the reference of a ticket you can see"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_changes(agent_client, tickets, data, field, message):
    before = TicketEvent.objects.count()

    response = agent_client.post("/desk/bulk/", {"ids": [t.pk for t in tickets], **data})

    assert response.status_code == 400
    assert 'id="bulk-errors"' in response.content.decode()
    assert message in response.content.decode()
    assert TicketEvent.objects.count() == before
    # What was ticked stays ticked on the page that answers.
    assert (
        f'id="bulk-select-{tickets[0].pk}" aria-label="Select {tickets[0].reference}" checked'
        in response.content.decode()
    )


def test_ids_the_agent_does_not_see_are_a_400_and_nothing_changes(agent, agent_client, tickets):
    billing = QueueFactory(slug="billing", name="Billing")
    hidden = ticket_make(customer=CustomerFactory(), queue=billing)

    response = agent_client.post(
        "/desk/bulk/", {"action": "status", "status": "open", "ids": [tickets[0].pk, hidden.pk]}
    )

    assert response.status_code == 400
    assert f"Tickets not found: {hidden.pk}." in response.content.decode()
    assert fresh(tickets[0]).status == "new"
    with pytest.raises(bulk.InvalidInput) as refused:
        bulk.bulk_request_check(user=agent, data={"action": "status", "parameters": {"status": "open"}, "ids": ["1.5"]})
    assert refused.value.errors == {"ids": ["Give ticket ids, whole numbers."]}


def test_nothing_ticked_is_a_400(agent_client, tickets):
    response = agent_client.post("/desk/bulk/", {"action": "status", "status": "open", "scope": "selected"})

    assert response.status_code == 400
    assert "Choose at least one ticket." in response.content.decode()


def test_the_bulk_form_needs_its_csrf_token(agent, tickets):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)

    refused = browser.post("/desk/bulk/", {"action": "status", "status": "open", "ids": [tickets[0].pk]})
    assert refused.status_code == 403
    assert fresh(tickets[0]).status == "new"

    page = browser.get("/desk/")
    token = page.cookies["csrftoken"].value
    accepted = browser.post(
        "/desk/bulk/", {"action": "status", "status": "open", "ids": [tickets[0].pk], "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 302
    assert fresh(tickets[0]).status == "open"


# --- Large selections: jobs -------------------------------------------------------------


@pytest.fixture
def many(queue, customer, settings):
    """Six tickets, with the request's limit at two so that three or more make a job."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "BULK_SYNC_MAX": 2}
    return [ticket_make(customer=customer, queue=queue, subject=f"Case {n}") for n in range(6)]


def test_all_matching_the_filter_is_a_job_that_evaluates_the_filter_when_it_runs(
    agent_client, agent, many, django_capture_on_commit_callbacks
):
    ticket_tags_set(ticket=many[5], tags=["vip"], actor=Actor.system())
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = agent_client.post(
            "/desk/bulk/",
            {"action": "priority", "priority": "high", "scope": "matching", "filter": "status=new", "count": "6"},
        )
    assert response.status_code == 302
    job = BulkJob.objects.get()
    assert (job.status, job.filters, job.seen_count, job.ticket_ids) == ("queued", {"status": ["new"]}, 6, None)
    assert [fresh(t).priority for t in many] == ["normal"] * 6

    # Between choosing and running, one ticket stops matching and another starts.
    ticket_status_change(ticket=many[0], status="open", actor=Actor.system())
    late = ticket_make(customer=many[1].customer, queue=many[1].queue, subject="Late")
    for callback in enqueued:
        callback()  # the task, run eagerly as the test settings do

    job.refresh_from_db()
    assert job.status == BulkJobStatus.DONE
    assert (job.total, job.done, job.changed, job.failed, job.skipped) == (6, 6, 6, 0, 0)
    assert job.ticket_ids == sorted([t.pk for t in many[1:]] + [late.pk])
    assert fresh(many[0]).priority == "normal"
    assert [fresh(t).priority for t in [*many[1:], late]] == ["high"] * 6
    assert job.result["failures"] == []
    page = agent_client.get("/desk/").content.decode()
    assert f'id="bulk-job-{job.pk}-progress" class="bulk-progress" max="6" value="6"' in page
    assert "6 of 6 processed: 6 changed, 0 refused, 0 skipped. (6 were shown when you chose them.)" not in page


def test_access_is_checked_again_per_ticket_when_the_job_runs(agent, many, queue):
    billing = QueueFactory(slug="billing", name="Billing")
    billing.members.add(agent)
    moved = many[:2]
    for ticket in moved:
        ticket.queue = billing
        ticket.save(update_fields=["queue"])
    submitted = submit(agent, {"action": "status", "parameters": {"status": "pending"}, "ids": [t.pk for t in many]})
    job = submitted.job
    assert job is not None and job.status == "queued"

    # The agent leaves billing before the worker gets to the job.
    billing.members.remove(agent)
    assert bulk.bulk_job_run(job_id=job.pk) == "done"

    job.refresh_from_db()
    assert (job.done, job.changed, job.skipped, job.failed) == (6, 4, 2, 0)
    assert [fresh(t).status for t in moved] == ["new", "new"]
    assert all(events(t, "status") == [] for t in moved)
    assert [fresh(t).status for t in many[2:]] == ["pending"] * 4
    skipped = BulkJobItem.objects.filter(job=job, outcome=BulkOutcome.SKIPPED)
    assert sorted(skipped.values_list("ticket_id", flat=True)) == sorted(t.pk for t in moved)
    assert set(skipped.values_list("reason", flat=True)) == {"You can no longer see this ticket."}
    assert job.result["skipped"] == 2


def test_a_job_delivered_twice_changes_each_ticket_once(agent, many):
    job = submit(agent, {"action": "priority", "parameters": {"priority": "low"}, "ids": [t.pk for t in many]}).job

    assert bulk.bulk_job_run(job_id=job.pk) == "done"
    assert bulk.bulk_job_run(job_id=job.pk) == "done"

    assert [len(events(t, "priority")) for t in many] == [1] * 6
    assert BulkJobItem.objects.filter(job=job).count() == 6
    job.refresh_from_db()
    assert (job.done, job.changed) == (6, 6)


def test_a_running_job_is_left_to_its_worker_and_taken_over_only_after_the_lease(agent, many):
    job = submit(agent, {"action": "priority", "parameters": {"priority": "low"}, "ids": [t.pk for t in many]}).job
    now = timezone.now()
    # A worker claimed it and processed the first two tickets, then was lost.
    BulkJob.objects.filter(pk=job.pk).update(status="running", claimed_at=now, heartbeat_at=now)
    for ticket in many[:2]:
        ticket_status_change(ticket=ticket, status="open", actor=Actor.system())
        BulkJobItem.objects.create(job=job, ticket=ticket, outcome=BulkOutcome.CHANGED, at=now)
    BulkJob.objects.filter(pk=job.pk).update(done=2, changed=2)

    assert bulk.bulk_job_run(job_id=job.pk) == "running"  # a live claim: nothing done
    assert [len(events(t, "priority")) for t in many] == [0] * 6

    stale = now - bulk.JOB_LEASE - timedelta(seconds=1)
    BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    assert bulk.bulk_jobs_pending_dispatch() == 1  # enqueued again, run eagerly here
    job.refresh_from_db()
    assert job.status == "done"
    assert (job.done, job.changed) == (6, 6)
    assert [len(events(t, "priority")) for t in many] == [0, 0, 1, 1, 1, 1]


def test_a_cancelled_job_stops_before_its_next_ticket(agent, many, monkeypatch):
    job = submit(agent, {"action": "priority", "parameters": {"priority": "high"}, "ids": [t.pk for t in many]}).job
    real = bulk._process
    calls = []

    def process_then_cancel(**kwargs):
        outcome = real(**kwargs)
        calls.append(kwargs["ticket_id"])
        if len(calls) == 2:
            bulk.bulk_job_cancel(job=job, user=agent)
        return outcome

    monkeypatch.setattr(bulk, "_process", process_then_cancel)

    assert bulk.bulk_job_run(job_id=job.pk) == "cancelled"

    job.refresh_from_db()
    assert [fresh(t).priority for t in many] == ["high", "high", "normal", "normal", "normal", "normal"]
    assert (job.done, job.changed) == (2, 2)
    assert job.result["not_processed"] == 4
    assert [len(events(t, "priority")) for t in many] == [1, 1, 0, 0, 0, 0]
    monkeypatch.undo()
    assert bulk.bulk_job_run(job_id=job.pk) == "cancelled"
    assert [fresh(t).priority for t in many].count("high") == 2


def test_a_dead_broker_keeps_the_job_and_the_sweep_enqueues_it(
    agent, many, monkeypatch, django_capture_on_commit_callbacks
):
    from servicedesk.desk.tasks import bulk_job_run_task

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(bulk_job_run_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = submit(agent, {"action": "priority", "parameters": {"priority": "high"}, "ids": [t.pk for t in many]}).job
    job.refresh_from_db()
    assert job.status == "queued"
    assert bulk.bulk_jobs_pending_dispatch() == 0  # too young, and the broker is down anyway
    assert bulk.bulk_jobs_pending_dispatch(now=timezone.now() + timedelta(minutes=2)) == 0

    monkeypatch.undo()
    assert bulk.bulk_jobs_pending_dispatch(now=timezone.now() + timedelta(minutes=2)) == 1
    job.refresh_from_db()
    assert job.status == "done"
    assert [fresh(t).priority for t in many] == ["high"] * 6


def test_a_job_whose_parameters_no_longer_hold_fails_and_changes_nothing(agent, many):
    billing = QueueFactory(slug="billing", name="Billing")
    billing.members.add(agent)
    job = submit(agent, {"action": "queue", "parameters": {"queue": "billing"}, "ids": [t.pk for t in many]}).job
    billing.members.remove(agent)

    assert bulk.bulk_job_run(job_id=job.pk) == "failed"

    job.refresh_from_db()
    assert job.error == "Choose one of your queues."
    assert [fresh(t).queue.slug for t in many] == ["support"] * 6


def test_the_cancel_form_and_the_progress_endpoint(agent_client, agent, many, manager):
    job = submit(agent, {"action": "priority", "parameters": {"priority": "high"}, "ids": [t.pk for t in many]}).job

    state = agent_client.get(f"/desk/bulk/jobs/{job.pk}/").json()["job"]
    assert (state["status"], state["total"], state["done"], state["active"]) == ("queued", 6, 0, True)
    page = agent_client.get("/desk/").content.decode()
    assert f'id="bulk-job-{job.pk}-cancel"' in page

    response = agent_client.post(f"/desk/bulk/jobs/{job.pk}/cancel/", {"back": "status=new"})
    assert response.status_code == 302
    assert response["Location"] == "/desk/?status=new"
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert bulk.bulk_job_run(job_id=job.pk) == "cancelled"
    assert [fresh(t).priority for t in many] == ["normal"] * 6

    colleague = AgentFactory(username="cleo", queues=[many[0].queue])
    agent_client.force_login(colleague)
    assert agent_client.get(f"/desk/bulk/jobs/{job.pk}/").status_code == 404
    assert agent_client.post(f"/desk/bulk/jobs/{job.pk}/cancel/").status_code == 404


def test_the_progress_push_answers_the_owner_and_admins_only(agent, many):
    job = submit(agent, {"action": "priority", "parameters": {"priority": "high"}, "ids": [t.pk for t in many]}).job
    admin = AgentFactory(username="ada", role="admin")
    colleague = AgentFactory(username="cleo", queues=[many[0].queue])

    frame = bulk_job_frame(agent, {"job": job.pk})
    assert frame["type"] == "bulk_job"
    assert (frame["job"]["id"], frame["job"]["status"], frame["job"]["total"]) == (job.pk, "queued", 6)
    assert bulk_job_frame(admin, {"job": job.pk})["job"]["id"] == job.pk
    assert bulk_job_frame(colleague, {"job": job.pk}) is None
    assert bulk_job_frame(agent, {"job": "x"}) is None
