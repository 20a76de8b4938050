"""The caller log at /desk/calls/: the calls an agent may see, its filters, and "mark seen"."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.phone.models import Call, CallDirection, CallOutcome, CallState, PhoneLine
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_delete_set, ticket_merge, ticket_status_change
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db

URL = "/desk/calls/"
BASE = timezone.now().replace(microsecond=0) - timedelta(days=1)
_ids = itertools.count(1)


def call_make(line: PhoneLine | None, *, minute: int = 0, **fields) -> Call:  # type: ignore[no-untyped-def]
    """An ended inbound call that an agent answered, ``minute`` minutes after BASE, unless ``fields`` say otherwise."""
    rang_at = BASE + timedelta(minutes=minute)
    values = {
        "call_id": f"c-{next(_ids)}",
        "direction": CallDirection.INBOUND,
        "number": "+353861234567",
        "state": CallState.ENDED,
        "outcome": CallOutcome.ANSWERED,
        "rang_at": rang_at,
        "answered_at": rang_at + timedelta(seconds=12),
        "ended_at": rang_at + timedelta(seconds=312),
    }
    if fields.get("outcome") in (CallOutcome.MISSED, CallOutcome.VOICEMAIL, CallOutcome.NOT_ANSWERED):
        values["answered_at"] = None
        values["ended_at"] = rang_at + timedelta(seconds=40)
    values.update(fields)
    return Call.objects.create(line=line, **values)


def shown(response) -> list[int]:
    """Ids of the call rows on the page, in display order."""
    return [int(pk) for pk in re.findall(r'<tr class="call-row" data-call="(\d+)"', response.content.decode())]


def ids(*calls: Call) -> list[int]:
    return [call.pk for call in calls]


@pytest.fixture
def billing(db):
    return QueueFactory(slug="billing", name="Billing")


@pytest.fixture
def line_support(queue):
    return PhoneLine.objects.create(key="support-line", name="Support line", number="+35312345678", queue=queue)


@pytest.fixture
def line_billing(billing):
    return PhoneLine.objects.create(key="billing-line", name="Billing line", number="+35312345679", queue=billing)


@pytest.fixture
def bob(billing):
    return AgentFactory(username="bob", display_name="Bob Agent", queues=[billing])


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def log(queue, billing, line_support, line_billing, agent, bob, customer):
    """Calls of every kind on two lines, one minute apart (the first the oldest)."""
    open_ticket = ticket_make(customer=customer, queue=queue, subject="Call back please")
    solved_ticket = ticket_make(customer=customer, queue=queue, subject="Called back")
    ticket_status_change(ticket=solved_ticket, status="solved", actor=Actor.system())
    deleted_ticket = ticket_make(customer=customer, queue=queue, subject="Deleted callback")
    ticket_delete_set(ticket=deleted_ticket, deleted=True, actor=Actor.system())
    merged_ticket = ticket_make(customer=customer, queue=queue, subject="Merged callback")
    ticket_merge(source=merged_ticket, target=open_ticket, actor=Actor.system())
    missed_outcome = {"outcome": CallOutcome.MISSED}
    calls = {
        "answered": call_make(line_support, minute=1, agent=agent, customer=customer),
        "missed": call_make(line_support, minute=2, **missed_outcome),
        "voicemail_seen": call_make(
            line_billing, minute=3, outcome=CallOutcome.VOICEMAIL, seen_at=BASE + timedelta(hours=2), seen_by=bob
        ),
        "out_voicemail": call_make(
            line_support, minute=4, direction=CallDirection.OUTBOUND, outcome=CallOutcome.VOICEMAIL, agent=agent
        ),
        "out_not_answered": call_make(
            line_billing, minute=5, direction=CallDirection.OUTBOUND, outcome=CallOutcome.NOT_ANSWERED, agent=bob
        ),
        "callback_open": call_make(line_support, minute=6, callback=True, ticket=open_ticket, **missed_outcome),
        "callback_solved": call_make(line_support, minute=7, callback=True, ticket=solved_ticket, **missed_outcome),
        "callback_deleted": call_make(line_support, minute=8, callback=True, ticket=deleted_ticket, **missed_outcome),
        "callback_merged": call_make(line_support, minute=9, callback=True, ticket=merged_ticket, **missed_outcome),
        "billing_answered": call_make(line_billing, minute=10, agent=bob),
        "ringing": call_make(
            line_support, minute=11, state=CallState.RINGING, outcome="", answered_at=None, ended_at=None
        ),
    }
    return calls


def named(log, *names: str) -> list[int]:
    return [log[name].pk for name in names]


# --- The list and its filters ----------------------------------------------------------------


def test_a_manager_sees_every_call_newest_first(manager_client, log):
    response = manager_client.get(URL)

    assert response.status_code == 200
    assert shown(response) == [call.pk for call in sorted(log.values(), key=lambda c: c.rang_at, reverse=True)]
    assert "11 calls" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Inbound calls that ended without an agent; an outbound call that reached voicemail is not one.
        (
            "show=missed",
            ["callback_merged", "callback_deleted", "callback_solved", "callback_open", "voicemail_seen", "missed"],
        ),
        ("show=unseen", ["callback_merged", "callback_deleted", "callback_solved", "callback_open", "missed"]),
        # Callbacks whose ticket is still to be worked: not solved, deleted or merged away.
        ("show=callbacks", ["callback_open"]),
        ("direction=out", ["out_not_answered", "out_voicemail"]),
        ("direction=in&show=missed&line=billing-line", ["voicemail_seen"]),
        ("line=billing-line", ["billing_answered", "out_not_answered", "voicemail_seen"]),
        ("line=support-line&direction=out", ["out_voicemail"]),
        (
            "show=all&line=support-line&show=missed",
            ["callback_merged", "callback_deleted", "callback_solved", "callback_open", "missed"],
        ),
    ],
)
def test_each_filter_lists_exactly_its_calls(manager_client, log, query, expected):
    response = manager_client.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert shown(response) == named(log, *expected)


def test_the_agent_filter(manager_client, log, agent, bob):
    assert shown(manager_client.get(f"{URL}?agent={agent.pk}")) == named(log, "out_voicemail", "answered")
    assert shown(manager_client.get(f"{URL}?agent={bob.pk}")) == named(log, "billing_answered", "out_not_answered")
    assert shown(manager_client.get(f"{URL}?agent={bob.pk}&show=missed")) == []


def test_the_form_shows_the_chosen_filters_and_the_lines_and_agents(manager_client, log, agent):
    content = manager_client.get(f"{URL}?show=missed&line=billing-line&agent={agent.pk}").content.decode()

    assert '<option value="missed" selected>' in content
    assert '<option value="billing-line" selected>Billing line</option>' in content
    assert f'<option value="{agent.pk}" selected>{agent}</option>' in content
    assert '<option value="support-line">Support line</option>' in content


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("show=everything", "show"),
        ("direction=sideways", "direction"),
        ("line=no-such-line", "line"),
        ("agent=abc", "agent"),
        ("agent=99999999999999999999999", "agent"),
        ("agent=1.5", "agent"),
    ],
)
def test_a_bad_filter_value_is_a_form_error_with_status_400(manager_client, log, query, field):
    response = manager_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    content = response.content.decode()
    assert "Select a valid choice." in content
    assert 'class="errorlist" role="alert"' in content
    assert response.context["form"].errors.keys() == {field}
    assert shown(response) == []


def test_a_user_who_is_no_agent_is_no_choice_for_the_agent_filter(manager_client, log, customer):
    outsider = UserFactory(username="carla")

    response = manager_client.get(f"{URL}?agent={outsider.pk}")

    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {"agent"}


def test_nothing_matching_says_so(manager_client, log, bob):
    response = manager_client.get(f"{URL}?agent={bob.pk}&direction=in&show=callbacks")

    assert response.status_code == 200
    assert "No calls match these filters." in response.content.decode()


def test_fifty_calls_a_page_newest_first(manager_client, line_support):
    calls = [call_make(line_support, minute=minute) for minute in range(51)]

    first = manager_client.get(URL)
    second = manager_client.get(f"{URL}?page=2")

    assert shown(first) == [call.pk for call in reversed(calls[1:])]
    assert shown(second) == [calls[0].pk]
    assert manager_client.get(f"{URL}?page=3").status_code == 404


# --- Each row --------------------------------------------------------------------------------


def row_of(response, call: Call) -> str:
    content = response.content.decode()
    match = re.search(rf'<tr class="call-row" data-call="{call.pk}">(.*?)</tr>', content, re.S)
    assert match, f"no row for call {call.pk}"
    return match.group(1)


def test_a_row_shows_the_call(agent_client, log, customer, agent):
    call = log["callback_open"]

    row = row_of(agent_client.get(URL), call)

    assert "+353861234567" in row
    assert "Support line" in row
    assert "Missed" in row and "Callback" in row
    assert "40 s" in row  # waited until the caller hung up
    assert f'<a class="ticket-link" href="/desk/tickets/{call.ticket.reference}/">{call.ticket.reference}</a>' in row
    assert f'action="/desk/calls/{call.pk}/seen/"' in row
    assert 'name="csrfmiddlewaretoken"' in row
    assert '<input type="hidden" name="next" value="/desk/calls/">' in row

    answered = row_of(agent_client.get(URL), log["answered"])
    assert f'<a href="/desk/customers/{customer.pk}/">Alice Byrne</a>' in answered
    assert str(agent) in answered
    assert "12 s" in answered and "300 s" in answered
    assert "Mark seen" not in answered


def test_a_withheld_number_and_a_seen_call(manager_client, log, bob):
    withheld = call_make(log["missed"].line, minute=30, outcome=CallOutcome.MISSED, number="")

    response = manager_client.get(URL)

    assert "Withheld" in row_of(response, withheld)
    seen_row = row_of(response, log["voicemail_seen"])
    assert "Seen by Bob Agent at" in seen_row
    assert "Mark seen" not in seen_row


def test_the_time_is_in_the_agents_time_zone(client, log, agent):
    agent.time_zone = "Asia/Shanghai"
    agent.save(update_fields=["time_zone"])
    client.force_login(agent)
    call = log["answered"]

    row = row_of(client.get(URL), call)

    local = call.rang_at.astimezone(timezone.get_fixed_timezone(8 * 60))
    assert f"{local:%Y-%m-%d %H:%M} CST" in row


def test_a_customer_and_a_ticket_the_agent_may_not_see_are_not_shown(agent_client, line_support, billing):
    hidden = CustomerFactory(name="Dora Billing", email="dora@example.com")
    billing_ticket = ticket_make(customer=hidden, queue=billing, subject="Billing case")
    call = call_make(line_support, customer=hidden, ticket=billing_ticket)

    response = agent_client.get(URL)

    row = row_of(response, call)
    assert "Dora" not in response.content.decode()
    assert f'<span class="customer-concealed">#{hidden.pk}</span>' in row
    assert f"/desk/customers/{hidden.pk}/" not in row
    assert billing_ticket.reference not in response.content.decode()


def test_the_number_and_the_customer_name_are_text(manager_client, line_support):
    customer = CustomerFactory(name="<script>alert('name')</script>", email="x@example.com")
    call = call_make(line_support, number="<script>alert(1)</script>", customer=customer)

    content = manager_client.get(URL).content.decode()

    assert "<script>alert" not in content
    row = row_of(manager_client.get(URL), call)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in row


def test_queries_do_not_grow_with_the_rows(agent_client, line_support, queue, billing, agent, bob):
    def add_calls(count: int) -> None:
        for n in range(count):
            customer = CustomerFactory()
            ticket = ticket_make(customer=customer, queue=queue if n % 2 else billing)
            call_make(
                line_support,
                minute=n,
                customer=customer,
                ticket=ticket,
                agent=agent if n % 2 else bob,
                seen_at=BASE if n % 3 else None,
                seen_by=bob if n % 3 else None,
                outcome=CallOutcome.ANSWERED if n % 4 else CallOutcome.MISSED,
            )

    add_calls(1)
    agent_client.get(URL)  # what a process reads once (the default queue) is read before counting
    with CaptureQueriesContext(connection) as one:
        response = agent_client.get(URL)
    assert len(shown(response)) == 1
    add_calls(29)
    with CaptureQueriesContext(connection) as thirty:
        response = agent_client.get(URL)
    assert len(shown(response)) == 30

    assert len(thirty) == len(one), [q["sql"] for q in thirty.captured_queries]


# --- Who may see the log ---------------------------------------------------------------------


def test_an_agent_sees_the_calls_of_their_queues_lines_only(agent_client, log):
    response = agent_client.get(URL)

    assert set(shown(response)) == set(ids(*log.values())) - set(
        named(log, "voicemail_seen", "out_not_answered", "billing_answered")
    )
    assert "Billing line" not in response.content.decode()


def test_an_agent_of_another_queue_cannot_filter_their_way_in(agent_client, log):
    response = agent_client.get(f"{URL}?line=billing-line")

    assert response.status_code == 400
    assert shown(response) == []


def test_the_other_queues_agent_sees_their_own(client, log, bob):
    client.force_login(bob)

    response = client.get(URL)

    assert set(shown(response)) == set(named(log, "voicemail_seen", "out_not_answered", "billing_answered"))


def test_a_visitor_is_sent_to_sign_in(client, log):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/desk/login/")


def test_a_signed_in_customer_gets_not_found(client, log, customer):
    user = UserFactory(username="alice")
    customer.user = user
    customer.save(update_fields=["user"])
    client.force_login(user)

    assert client.get(URL).status_code == 404
    call = log["missed"]
    assert client.post(f"/desk/calls/{call.pk}/seen/").status_code == 404
    call.refresh_from_db()
    assert (call.seen_at, call.seen_by_id) == (None, None)


# --- Mark seen -------------------------------------------------------------------------------


def test_mark_seen_records_who_and_when_once(client, log, agent, manager):
    call = log["missed"]
    client.force_login(agent)

    response = client.post(f"/desk/calls/{call.pk}/seen/", {"next": "/desk/calls/?show=unseen"})

    assert response.status_code == 302
    assert response["Location"] == "/desk/calls/?show=unseen"
    call.refresh_from_db()
    assert call.seen_by_id == agent.pk
    first_seen = call.seen_at
    assert first_seen is not None and timezone.now() - first_seen < timedelta(minutes=1)

    client.post(f"/desk/calls/{call.pk}/seen/")
    client.force_login(manager)
    client.post(f"/desk/calls/{call.pk}/seen/")

    call.refresh_from_db()
    assert (call.seen_at, call.seen_by_id) == (first_seen, agent.pk)
    assert call.pk not in shown(client.get(f"{URL}?show=unseen"))
    assert "Seen by Ann at" in row_of(client.get(URL), call)


def test_mark_seen_of_a_call_the_agent_may_not_see_is_not_found(agent_client, log):
    call = log["voicemail_seen"]
    hidden = call_make(call.line, minute=40, outcome=CallOutcome.MISSED)

    for target in (hidden, call):
        before = Call.objects.filter(pk=target.pk).values().get()
        assert agent_client.post(f"/desk/calls/{target.pk}/seen/").status_code == 404
        assert Call.objects.filter(pk=target.pk).values().get() == before
    assert agent_client.post("/desk/calls/999999999/seen/").status_code == 404


def test_mark_seen_needs_a_post_and_a_signed_in_agent(client, log):
    call = log["missed"]

    response = client.post(f"/desk/calls/{call.pk}/seen/")

    assert response.status_code == 302
    assert response["Location"].startswith("/desk/login/")
    call.refresh_from_db()
    assert call.seen_at is None


def test_mark_seen_refuses_a_get(agent_client, log):
    call = log["missed"]

    assert agent_client.get(f"/desk/calls/{call.pk}/seen/").status_code == 405
    call.refresh_from_db()
    assert call.seen_at is None


@pytest.mark.parametrize("target", ["https://evil.example/desk/calls/", "//evil.example/", "javascript:alert(1)", ""])
def test_mark_seen_goes_back_only_to_this_site(agent_client, log, target):
    call = log["missed"]

    response = agent_client.post(f"/desk/calls/{call.pk}/seen/", {"next": target})

    assert response.status_code == 302
    assert response["Location"] == "/desk/calls/"


def test_the_desk_menu_links_to_the_log(agent_client, log):
    content = agent_client.get("/desk/").content.decode()

    assert '<a href="/desk/calls/">Calls</a>' in content
