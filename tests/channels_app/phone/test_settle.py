"""A missed call waits for an answer reported late before it becomes a callback ticket (docs/phone.md)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from channels_app.phone.models import Call, MissedCalls, PhoneLine
from channels_app.phone.services import call_settle, calls_settle_due
from channels_app.phone.tasks import call_settle_task, events_fold_pending_task
from channels_app.phone.tickets import call_attach
from servicedesk.tickets.models import Message, MessageKind, Ticket
from tests.channels_app.phone.test_call_tickets import known_caller, send
from tests.channels_app.phone.test_events import LINE_NUMBER, SECRET, call_events
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

WAIT = 60


@pytest.fixture(autouse=True)
def _settle(settings):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "PHONE_WEBHOOK_SECRET": SECRET,
        "PHONE_REGION": "IE",
        "PHONE_CALLBACK_SETTLE_SECONDS": WAIT,
    }


@pytest.fixture
def support():
    queue = QueueFactory(slug="support")
    line = PhoneLine.objects.create(key="default", name="Main line", number=LINE_NUMBER, queue=queue)
    return queue, line


def later(seconds: int = WAIT + 1):
    return timezone.now() + timedelta(seconds=seconds)


def ticket_record(call: Call) -> tuple:
    """What an agent sees of the call's ticket: everything but its id and reference."""
    ticket = Ticket.objects.get(pk=call.ticket_id)
    messages = sorted(
        (m.kind, m.purpose, m.created_at, m.author_user_id, m.author_customer_id)
        for m in Message.objects.filter(ticket=ticket)
    )
    return (
        ticket.subject,
        ticket.channel,
        ticket.initiator,
        ticket.status,
        ticket.queue_id,
        ticket.assignee_id,
        ticket.customer_id,
        ticket.created_at,
        ticket.first_reply_at,
        tuple(messages),
    )


def test_every_order_of_an_answered_calls_events_gives_the_same_ticket_once_the_wait_is_over(client, support):
    queue, _line = support
    AgentFactory(email="agent1@example.com", queues=[queue])
    known_caller()
    events = call_events("x")
    records = []
    for n, order in enumerate(itertools.permutations(events)):
        call_id = f"order-{n}"
        send(client, [dict(e, call_id=call_id) for e in order])
        assert calls_settle_due(now=later()) == 0  # nothing waits: each call was answered
        call = Call.objects.get(call_id=call_id)
        assert (call.callback, call.settles_at) == (False, None)
        records.append(ticket_record(call))
    assert all(r == records[0] for r in records), records
    subject, *_rest, messages = records[0]
    assert subject == "Call from Maeve Byrne"
    assert sorted(m[:2] for m in messages) == [(MessageKind.PUBLIC_AGENT, "call"), (MessageKind.PUBLIC_ENDUSER, "call")]
    assert Ticket.objects.count() == len(records)
    assert not Ticket.objects.filter(subject__startswith="Call back").exists()
    assert not mail.outbox


def test_a_missed_call_waits_and_then_its_task_or_the_sweep_makes_the_callback_ticket(
    client, support, django_capture_on_commit_callbacks
):
    known_caller()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send(client, call_events("m-1", answered=False))
    # Its task was queued (run at once here, before it is due: it does nothing).
    assert callbacks
    call = Call.objects.get(call_id="m-1")
    assert call.ticket_id is None and call.callback is False
    assert timedelta(seconds=WAIT - 5) < call.settles_at - timezone.now() <= timedelta(seconds=WAIT)
    assert call_settle_task(call.pk) is False
    assert call_settle(call_pk=call.pk, now=call.settles_at - timedelta(seconds=1)) is None
    assert not Ticket.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert call_settle(call_pk=call.pk, now=call.settles_at) is not None
    call.refresh_from_db()
    assert (call.callback, call.settles_at) == (True, None)
    ticket = Ticket.objects.get(pk=call.ticket_id)
    assert ticket.subject == "Call back Maeve Byrne" and ticket.created_at == call.ended_at
    assert Message.objects.filter(ticket=ticket, purpose="acknowledgement").count() == 1
    # Settled once: the sweep and the task find nothing more to do.
    assert calls_settle_due(now=later(3600)) == 0
    assert call_settle_task(call.pk) is False
    assert Ticket.objects.count() == 1


def test_the_beats_sweep_settles_a_call_whose_task_the_broker_refused(client, support, monkeypatch):
    known_caller()

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("broker down")

    monkeypatch.setattr(call_settle_task, "apply_async", refused)
    send(client, call_events("m-2", answered=False))
    call = Call.objects.get(call_id="m-2")
    assert call.settles_at is not None and call.ticket_id is None
    Call.objects.filter(pk=call.pk).update(settles_at=timezone.now() - timedelta(seconds=1))
    assert events_fold_pending_task() == 1
    call.refresh_from_db()
    assert call.callback is True and call.ticket_id is not None and call.settles_at is None


def test_an_answer_reported_late_within_the_wait_makes_no_callback_ticket(client, support):
    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    known_caller()
    newcall, answer, hangup = call_events("m-3")
    send(client, [newcall, hangup])
    assert Call.objects.get(call_id="m-3").settles_at is not None
    send(client, [answer])
    call = Call.objects.select_related("ticket").get(call_id="m-3")
    assert (call.callback, call.settles_at, call.ticket.assignee_id) == (False, None, agent.pk)
    assert call.ticket.subject == "Call from Maeve Byrne"
    assert calls_settle_due(now=later()) == 0
    assert Ticket.objects.count() == 1


def test_a_missed_call_an_agent_attaches_while_it_waits_makes_no_callback_ticket(client, support):
    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    customer = known_caller()
    ticket = ticket_make(customer=customer, queue=queue)
    send(client, call_events("m-4", answered=False))
    call = Call.objects.get(call_id="m-4")
    call_attach(call=call, ticket=ticket, agent=agent, at=timezone.now())
    call.refresh_from_db()
    assert (call.ticket_id, call.settles_at, call.callback) == (ticket.pk, None, False)
    assert calls_settle_due(now=later()) == 0
    assert Ticket.objects.count() == 1


def test_a_line_that_stops_taking_callbacks_during_the_wait_makes_none_and_stops_waiting(client, support):
    _queue, line = support
    known_caller()
    send(client, call_events("m-5", answered=False))
    line.missed_calls = MissedCalls.NONE
    line.save()
    assert calls_settle_due(now=later()) == 1
    call = Call.objects.get(call_id="m-5")
    assert (call.ticket_id, call.settles_at, call.callback) == (None, None, False)
    assert calls_settle_due(now=later(3600)) == 0


def test_an_answer_reported_after_the_callback_ticket_is_never_earlier_than_the_ticket(client, support, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_CALLBACK_SETTLE_SECONDS": 0}
    queue, _line = support
    AgentFactory(email="agent1@example.com", queues=[queue])
    known_caller()
    newcall, answer, hangup = call_events("m-6")
    send(client, [newcall, hangup])
    call = Call.objects.get(call_id="m-6")
    assert call.callback is True and call.settles_at is None
    send(client, [answer])
    call.refresh_from_db()
    ticket = Ticket.objects.get(pk=call.ticket_id)
    reply = Message.objects.get(external_id=f"call:{call.pk}:answer")
    assert call.callback is False and call.answered_at < ticket.created_at
    assert reply.created_at == ticket.created_at == ticket.first_reply_at
