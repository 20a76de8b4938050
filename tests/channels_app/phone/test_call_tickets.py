"""Every call on a ticket: a ticket on answer, callback and voicemail tickets, the call's entry, the wrap-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from channels_app.phone.models import Call, MissedCalls, PhoneLine
from servicedesk.tickets.models import (
    Customer,
    Identity,
    IdentityKind,
    Message,
    MessageKind,
    Session,
    Ticket,
)
from servicedesk.tickets.statuses import Status
from tests.channels_app.phone.test_events import CALLER, LINE_NUMBER, SECRET, call_events, post
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}


@pytest.fixture
def support():
    queue = QueueFactory(slug="support")
    line = PhoneLine.objects.create(key="default", name="Main line", number=LINE_NUMBER, queue=queue)
    return queue, line


def known_caller(*, email: str | None = "caller@example.com", created_ago: timedelta = timedelta(days=30)) -> Customer:
    customer = CustomerFactory(name="Maeve Byrne", email=email or "x@example.com")
    if email is None:
        customer.identities.all().delete()
    Customer.objects.filter(pk=customer.pk).update(created_at=timezone.now() - created_ago)
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    return customer


def send(client, events):
    for event in events:
        response = post(client, event)
        assert response.status_code == 200, response.content


def entry_of(call: Call) -> Message:
    return Message.objects.get(channel="phone", external_id=f"call:{call.pk}")


def test_an_answered_call_opens_a_ticket_assigned_to_the_agent_with_the_call_entry(client, support):
    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    customer = known_caller()
    send(client, call_events("a-1", recording_url="https://pbx.example/rec/1.wav"))
    call = Call.objects.select_related("ticket", "session").get(call_id="a-1")
    ticket = call.ticket
    assert (ticket.channel, ticket.initiator, ticket.customer_id, ticket.assignee_id, ticket.queue_id) == (
        "phone",
        "inbound",
        customer.pk,
        agent.pk,
        queue.pk,
    )
    assert call.session.ticket_id == ticket.pk
    assert call.callback is False
    entry = entry_of(call)
    assert (entry.ticket_id, entry.kind, entry.purpose, entry.author_customer_id) == (
        ticket.pk,
        MessageKind.PUBLIC_ENDUSER,
        "call",
        customer.pk,
    )
    assert entry.facts["wait_seconds"] == 12
    assert entry.facts["talk_seconds"] == 288
    assert entry.facts["outcome"] == "answered"
    assert entry.facts["recording_url"] == "https://pbx.example/rec/1.wav"
    assert "https://pbx.example/rec/1.wav" in entry.text
    # The caller was on the phone: no acknowledgement by email.
    assert not Message.objects.filter(ticket=ticket, purpose="acknowledgement").exists()
    assert Ticket.objects.filter(channel="phone").count() == 1
    # Dated from the ring; the answer is the agent's reply, so the first reply time is the wait.
    assert ticket.created_at == call.rang_at and entry.created_at == call.rang_at
    answer = Message.objects.get(external_id=f"call:{call.pk}:answer")
    assert (answer.ticket_id, answer.kind, answer.author_user_id, answer.purpose) == (
        ticket.pk,
        MessageKind.PUBLIC_AGENT,
        agent.pk,
        "call",
    )
    assert answer.delivery_status == ""
    assert ticket.first_reply_at == call.answered_at


def test_a_missed_call_becomes_a_callback_ticket_acknowledged_by_email(
    client, support, django_capture_on_commit_callbacks
):
    known_caller()
    with django_capture_on_commit_callbacks(execute=True):
        send(client, call_events("m-1", answered=False))
    call = Call.objects.select_related("ticket").get(call_id="m-1")
    assert call.callback is True
    assert call.ticket.channel == "phone"
    assert call.ticket.subject == "Call back Maeve Byrne"
    assert call.ticket.assignee_id is None
    assert entry_of(call).facts["outcome"] == "missed"
    ack = Message.objects.get(ticket=call.ticket, purpose="acknowledgement")
    assert ack.kind == MessageKind.SYSTEM


def test_a_line_that_does_not_acknowledge_sends_nothing(client, support):
    _queue, line = support
    line.acknowledge = False
    line.save()
    known_caller()
    send(client, call_events("m-2", answered=False))
    call = Call.objects.get(call_id="m-2")
    assert call.ticket_id is not None
    assert not Message.objects.filter(ticket_id=call.ticket_id, purpose="acknowledgement").exists()


def test_a_second_missed_call_within_the_hour_joins_the_callback_ticket_and_a_later_one_does_not(client, support):
    known_caller()
    send(client, call_events("m-3", answered=False))
    first = Call.objects.get(call_id="m-3")

    def later(call_id: str, minutes: int) -> list[dict]:
        stamp = lambda s: (first.rang_at + timedelta(minutes=minutes, seconds=s)).isoformat()  # noqa: E731
        return [
            {
                "event": "newCall",
                "call_id": call_id,
                "from": CALLER,
                "to": LINE_NUMBER,
                "direction": "in",
                "at": stamp(0),
            },
            {"event": "hangup", "call_id": call_id, "cause": "cancel", "at": stamp(20)},
        ]

    send(client, later("m-4", 30))
    second = Call.objects.get(call_id="m-4")
    assert second.ticket_id == first.ticket_id
    assert second.callback is True
    assert Message.objects.filter(ticket_id=first.ticket_id, purpose="call").count() == 2
    send(client, later("m-5", 30 + 61))
    third = Call.objects.get(call_id="m-5")
    assert third.ticket_id not in (None, first.ticket_id)


def test_a_solved_callback_ticket_is_not_joined(client, support):
    known_caller()
    send(client, call_events("m-6", answered=False))
    first = Call.objects.get(call_id="m-6")
    Ticket.objects.filter(pk=first.ticket_id).update(status=Status.SOLVED)
    send(client, [dict(e, call_id="m-7") for e in call_events("x", answered=False)])
    assert Call.objects.get(call_id="m-7").ticket_id not in (None, first.ticket_id)


def test_which_missed_calls_make_tickets_follows_the_line(client, support):
    _queue, line = support
    line.missed_calls = MissedCalls.KNOWN
    line.save()
    # A number never seen: its caller is a new customer, not a known one.
    send(client, call_events("k-1", answered=False))
    assert Call.objects.get(call_id="k-1").ticket_id is None
    Customer.objects.filter(pk=Call.objects.get(call_id="k-1").customer_id).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    send(client, [dict(e, call_id="k-2") for e in call_events("x", answered=False)])
    assert Call.objects.get(call_id="k-2").ticket_id is not None
    line.missed_calls = MissedCalls.NONE
    line.save()
    send(client, [dict(e, call_id="k-3") for e in call_events("x", answered=False)])
    call = Call.objects.get(call_id="k-3")
    assert (call.ticket_id, call.callback) == (None, False)
    # Still a contact: its session is counted as abandoned.
    assert Session.objects.get(pk=call.session_id).abandoned_at is not None


def test_a_withheld_caller_gets_no_callback_but_a_voicemail_is_a_ticket(client, support):
    events = call_events("w-1", answered=False)
    events[0]["from"] = "anonymous"
    send(client, events)
    assert Call.objects.get(call_id="w-1").ticket_id is None
    voicemail = call_events("w-2", answered=False)
    voicemail[0]["from"] = "anonymous"
    voicemail[-1].update(
        cause="voicemail",
        voicemail_url="https://pbx.example/vm/2.wav",
        transcript="Please call me back <script>alert(1)</script>",
    )
    send(client, voicemail)
    call = Call.objects.select_related("ticket").get(call_id="w-2")
    assert call.ticket.subject == "Voicemail from withheld number"
    entry = entry_of(call)
    assert entry.facts["voicemail_url"] == "https://pbx.example/vm/2.wav"
    assert entry.facts["transcript"].startswith("Please call me back")
    assert "https://pbx.example/vm/2.wav" in entry.text


def test_an_answer_reported_after_the_hangup_clears_the_callback(client, support):
    AgentFactory(email="agent1@example.com")
    known_caller()
    new_call, answer, hangup = call_events("l-1")
    send(client, [new_call, hangup])
    call = Call.objects.get(call_id="l-1")
    assert call.callback is True
    ticket_id = call.ticket_id
    send(client, [answer])
    call.refresh_from_db()
    assert (call.callback, call.ticket_id, call.outcome) == (False, ticket_id, "answered")
    assert entry_of(call).facts["outcome"] == "answered"
    assert Message.objects.filter(external_id=f"call:{call.pk}:answer", ticket_id=ticket_id).exists()


def test_an_answered_outbound_call_is_the_agents_reply_on_an_outbound_ticket(client, support):
    agent = AgentFactory(email="agent1@example.com")
    known_caller()
    events = [
        {"event": "newCall", "call_id": "o-1", "from": LINE_NUMBER, "to": CALLER, "direction": "out",
         "user": ["agent1@example.com"], "at": call_events("x")[0]["at"]},
        {"event": "answer", "call_id": "o-1", "answering_user": "agent1@example.com", "at": call_events("x")[1]["at"]},
        {"event": "hangup", "call_id": "o-1", "cause": "normalClearing", "at": call_events("x")[2]["at"]},
    ]  # fmt: skip
    send(client, events)
    call = Call.objects.select_related("ticket").get(call_id="o-1")
    assert (call.ticket.initiator, call.ticket.assignee_id) == ("outbound", agent.pk)
    entry = entry_of(call)
    assert (entry.kind, entry.author_user_id) == (MessageKind.INTERNAL, agent.pk)
    # The customer picked up: the agent spoke to them, the ticket's reply.
    answer = Message.objects.get(external_id=f"call:{call.pk}:answer")
    assert (answer.kind, answer.author_user_id, answer.created_at) == (
        MessageKind.PUBLIC_AGENT,
        agent.pk,
        call.answered_at,
    )


def test_an_unanswered_outbound_call_makes_no_ticket(client, support):
    AgentFactory(email="agent1@example.com")
    events = [
        {"event": "newCall", "call_id": "o-2", "from": LINE_NUMBER, "to": CALLER, "direction": "out",
         "user": ["agent1@example.com"], "at": call_events("x")[0]["at"]},
        {"event": "hangup", "call_id": "o-2", "cause": "noAnswer", "at": call_events("x")[2]["at"]},
    ]  # fmt: skip
    send(client, events)
    call = Call.objects.get(call_id="o-2")
    assert (call.ticket_id, call.callback, call.outcome) == (None, False, "not_answered")


def test_the_acknowledgement_of_a_callback_reaches_the_caller_by_email(
    client, support, django_capture_on_commit_callbacks
):
    known_caller(email="maeve@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        send(client, call_events("e-1", answered=False))
    call = Call.objects.select_related("ticket").get(call_id="e-1")
    ack = Message.objects.get(ticket_id=call.ticket_id, purpose="acknowledgement")
    assert ack.delivery_status == "sent"
    assert call.ticket.reference in ack.text
    [sent] = mail.outbox
    assert [address.rsplit("<", 1)[-1].rstrip(">") for address in sent.to] == ["maeve@example.com"]
    assert call.ticket.reference in sent.subject


def test_a_customer_without_an_address_gets_no_acknowledgement(client, support):
    known_caller(email=None)
    send(client, call_events("e-2", answered=False))
    call = Call.objects.get(call_id="e-2")
    assert call.ticket_id is not None
    assert not Message.objects.filter(ticket_id=call.ticket_id, purpose="acknowledgement").exists()


def test_the_ticket_page_shows_the_call_entry_as_text(client, support):
    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    known_caller()
    send(
        client,
        call_events(
            "t-1",
            recording_url="https://pbx.example/rec/<b>1</b>.wav",
            transcript="<script>alert('x')</script> call me",
        ),
    )
    call = Call.objects.select_related("ticket").get(call_id="t-1")
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{call.ticket.reference}/").content.decode()
    assert f"Inbound call from {CALLER}" in page
    assert "Talk time" in page and "4 min 48 s" in page and "12 s" in page
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; call me" in page
    assert 'href="https://pbx.example/rec/&lt;b&gt;1&lt;/b&gt;.wav"' in page


def test_a_link_that_is_not_http_is_not_a_link_in_the_entry(client, support):
    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    ticket = ticket_make(queue=queue)
    Message.objects.create(
        ticket=ticket,
        kind=MessageKind.PUBLIC_ENDUSER,
        channel="phone",
        purpose="call",
        facts={"direction": "in", "number": CALLER, "recording_url": "javascript:alert(1)", "outcome": "answered"},
        created_at=timezone.now(),
    )
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert "javascript:alert(1)" not in page
    assert "Answered" in page


def test_an_outbound_call_that_reached_the_customers_voicemail_makes_no_voicemail_ticket(client, support):
    AgentFactory(email="agent1@example.com")
    events = [
        {"event": "newCall", "call_id": "o-3", "from": LINE_NUMBER, "to": CALLER, "direction": "out",
         "user": ["agent1@example.com"], "at": call_events("x")[0]["at"]},
        {"event": "hangup", "call_id": "o-3", "cause": "voicemail", "at": call_events("x")[2]["at"]},
    ]  # fmt: skip
    send(client, events)
    call = Call.objects.get(call_id="o-3")
    assert (call.outcome, call.ticket_id) == ("voicemail", None)


def test_an_answer_the_events_take_back_takes_its_reply_with_it(client, support):
    """An answer first, then a hang-up timed before it: the call was missed after all."""
    AgentFactory(email="agent1@example.com")
    known_caller()
    new_call, answer, hangup = call_events("r-1")
    send(client, [new_call, answer])
    call = Call.objects.get(call_id="r-1")
    assert Message.objects.filter(external_id=f"call:{call.pk}:answer").exists()
    send(client, [dict(hangup, at=new_call["at"])])
    call.refresh_from_db()
    assert call.answered_at is None
    assert not Message.objects.filter(external_id=f"call:{call.pk}:answer").exists()


def test_a_call_solved_in_its_wrap_up_is_a_first_contact_resolution_in_the_report(client, support):
    """The phone's FCR (docs/metrics.md#fcr): one interaction, the first call, solved by its end (with
    its after-contact work); a call solved a day later is not."""
    from datetime import date

    from channels_app.phone.tickets import call_wrap_up
    from reports.services import report_compute
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.services.tickets import ticket_status_change

    queue, _line = support
    agent = AgentFactory(email="agent1@example.com", queues=[queue])
    known_caller()
    send(client, call_events("f-1"))
    solved_in_call = Call.objects.get(call_id="f-1")
    call_wrap_up(call=solved_in_call, agent=agent, status="solved", at=solved_in_call.ended_at + timedelta(seconds=30))
    other = CustomerFactory(name="Other caller")
    Identity.objects.create(customer=other, kind=IdentityKind.PHONE, value="+353871111111")
    send(
        client,
        [
            dict(e, call_id="f-2", **({"from": "+353871111111"} if e["event"] == "newCall" else {}))
            for e in call_events("x")
        ],
    )
    solved_later = Call.objects.select_related("ticket").get(call_id="f-2")
    ticket_status_change(
        ticket=solved_later.ticket, status="solved", actor=Actor.system(), at=solved_later.ended_at + timedelta(days=1)
    )
    as_of = timezone.now() + timedelta(days=9)
    report = report_compute(start=date(2020, 1, 1), end=date(2030, 1, 1), as_of=as_of)
    assert report["by_channel"]["phone"]["fcr"]["eligible"] == 2
    assert report["by_channel"]["phone"]["fcr"]["success"] == 1
