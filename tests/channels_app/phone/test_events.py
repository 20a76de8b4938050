"""POST /api/v1/phone/events/: signed generic CTI events, kept once, folded into one record whatever their order."""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from channels_app.phone.api import signature_make
from channels_app.phone.models import Call, CallEvent, CallOutcome, CallState, PhoneLine
from channels_app.phone.services import calls_fold_drain, calls_fold_pending, fold_keys, fold_redis
from channels_app.phone.tasks import call_fold_task, calls_fold_drain_task
from servicedesk.routing.models import AgentProfile
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Session, SessionChannel
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/phone/events/"
SECRET = "pbx-secret-for-tests"
LINE_NUMBER = "+35312345678"
CALLER = "+353861234567"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}


def post(client, event, *, secret: str = SECRET, stamp: int | None = None, signature: str | None = None):
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    header = signature if signature is not None else signature_make(body, secret, stamp or int(time.time()))
    return client.post(URL, data=body, content_type="application/json", HTTP_X_SERVICEDESK_SIGNATURE=header)


def at(seconds: int) -> str:
    return (timezone.now().replace(microsecond=0) - timedelta(hours=1) + timedelta(seconds=seconds)).isoformat()


def call_events(call_id: str, *, answered: bool = True, **extra):  # type: ignore[no-untyped-def]
    events = [
        {
            "event": "newCall",
            "call_id": call_id,
            "from": CALLER,
            "to": LINE_NUMBER,
            "direction": "in",
            "user": ["agent1@example.com"],
            "queue": "support",
            "at": at(0),
        },
        {"event": "hangup", "call_id": call_id, "cause": "normalClearing", "at": at(300), **extra},
    ]
    if answered:
        events.insert(1, {"event": "answer", "call_id": call_id, "answering_user": "agent1@example.com", "at": at(12)})
    return events


def record(call: Call) -> dict:
    fields = {f.attname: getattr(call, f.attname) for f in Call._meta.concrete_fields}
    # Each call is on a ticket of its own: which one is the only difference between two calls' records.
    for name in ("id", "call_id", "updated_at", "session_id", "ticket_id"):
        fields.pop(name)
    return fields


def test_a_signed_call_is_stored_with_its_caller_and_agent(client):
    agent = AgentFactory(email="agent1@example.com")
    for event in call_events("c-1"):
        response = post(client, event)
        assert response.status_code == 200, response.content
        assert response.json() == {"outcome": "stored"}
    call = Call.objects.get(call_id="c-1")
    assert (call.state, call.outcome, call.number, call.agent_id) == (
        CallState.ENDED,
        CallOutcome.ANSWERED,
        CALLER,
        agent.pk,
    )
    assert call.ringing == [agent.pk]
    assert (call.answered_at - call.rang_at, call.ended_at - call.rang_at) == (
        timedelta(seconds=12),
        timedelta(seconds=300),
    )
    assert Identity.objects.get(kind=IdentityKind.PHONE, value=CALLER).customer_id == call.customer_id
    assert call.line.key == "default"


@pytest.mark.parametrize(
    "signature",
    ["", "t=1,v1=00", "v1=abc", "t=abc,v1=abc", "sha256=deadbeef"],
)
def test_a_missing_or_malformed_signature_is_401_and_nothing_is_stored(client, signature):
    response = post(client, call_events("c-2")[0], signature=signature)
    assert response.status_code == 401
    assert "customer" not in response.content.decode()
    assert not Call.objects.exists() and not Customer.objects.exists()


def test_a_wrong_secret_or_an_old_signature_is_401(client):
    assert post(client, call_events("c-3")[0], secret="another").status_code == 401
    assert post(client, call_events("c-3")[0], stamp=int(time.time()) - 301).status_code == 401
    assert post(client, call_events("c-3")[0], stamp=int(time.time()) + 301).status_code == 401
    assert not Call.objects.exists()
    assert post(client, call_events("c-3")[0], stamp=int(time.time()) - 290).status_code == 200


def test_a_line_of_its_own_signs_with_its_secret_and_the_previous_one_while_it_is_kept(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": ""}
    line = PhoneLine(key="sales", name="Sales", number=LINE_NUMBER)
    line.secret_set("first")
    line.save()
    line.secret_set("second", previous_for=timedelta(hours=1))
    line.save()
    assert post(client, call_events("c-4")[0], secret="first").status_code == 200
    assert post(client, call_events("c-5")[0], secret="second").status_code == 200
    assert set(Call.objects.values_list("line__key", flat=True)) == {"sales"}
    line.secret_previous_until = timezone.now() - timedelta(seconds=1)
    line.save(update_fields=["secret_previous_until"])
    assert post(client, call_events("c-6")[0], secret="first").status_code == 401
    assert "secret" not in line.secret_encrypted and "second" not in line.secret_encrypted


def test_a_number_that_is_not_the_signing_lines_is_404(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": ""}
    line = PhoneLine(key="sales", name="Sales", number=LINE_NUMBER)
    line.secret_set("line-secret")
    line.save()
    event = {**call_events("c-7")[0], "to": "+35319999999"}
    assert post(client, event, secret="line-secret").status_code == 404
    assert not Call.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": "ringing"}, "event"),
        ({"from": "call me maybe"}, "from"),
        ({"at": "2026-03-02T09:00:00"}, "at"),
        ({"at": "1999-03-02T09:00:00+00:00"}, "at"),
        ({"at": (timezone.now() + timedelta(days=2)).isoformat()}, "at"),
        ({"direction": "sideways"}, "direction"),
        ({"call_id": "x" * 251}, "call_id"),
        ({"recording_url": "javascript:alert(1)"}, "recording_url"),
    ],
)
def test_bad_fields_are_400_with_the_reason_and_nothing_is_stored(client, change, field):
    response = post(client, {**call_events("c-8")[0], **change})
    assert response.status_code == 400
    assert field in response.json()
    assert not Call.objects.exists() and not CallEvent.objects.exists()


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000])
def test_a_body_that_is_no_json_object_is_400(client, body):
    assert post(client, body).status_code == 400
    assert not Call.objects.exists()


def test_the_same_event_twice_changes_nothing_even_without_its_time(client):
    event = {k: v for k, v in call_events("c-9")[0].items() if k != "at"}
    assert post(client, event).json() == {"outcome": "stored"}
    before = record(Call.objects.get())
    assert post(client, event).json() == {"outcome": "duplicate"}
    assert CallEvent.objects.count() == 1
    assert record(Call.objects.get()) == before


def test_every_order_and_every_duplicate_of_a_calls_events_gives_one_identical_record(client):
    AgentFactory(email="agent1@example.com")
    events = call_events("x", recording_url="https://pbx.example/rec/1.wav")
    records = []
    for n, order in enumerate(itertools.permutations(events)):
        call_id = f"perm-{n}"
        stream = [dict(e, call_id=call_id) for e in order]
        stream = stream + stream[:1] + stream[::-1]  # resent, the first again and everything backwards
        for event in stream:
            assert post(client, event).status_code == 200
        records.append(record(Call.objects.get(call_id=call_id)))
    assert all(r == records[0] for r in records)
    assert records[0]["outcome"] == CallOutcome.ANSWERED
    assert records[0]["recording_url"] == "https://pbx.example/rec/1.wav"
    assert CallEvent.objects.count() == 3 * len(records)
    sessions = {
        (s.customer_id, s.agent_id, s.requested_at, s.answered_at, s.abandoned_at, s.ended_at)
        for s in Session.objects.filter(call__call_id__startswith="perm-")
    }
    assert len(sessions) == 1 and Session.objects.count() == len(records)
    assert Customer.objects.count() == 1  # the caller, whichever event came first


def test_an_answer_after_the_hangup_is_ignored_and_the_call_was_missed(client):
    events = call_events("c-10", answered=False)
    late_answer = {"event": "answer", "call_id": "c-10", "answering_user": "agent1@example.com", "at": at(400)}
    for event in [events[1], late_answer, events[0]]:
        assert post(client, event).status_code == 200
    call = Call.objects.get()
    assert (call.state, call.outcome, call.answered_at, call.agent_id) == (
        CallState.ENDED,
        CallOutcome.MISSED,
        None,
        None,
    )


def test_a_voicemail_is_its_own_outcome(client):
    newcall, hangup = call_events("c-11", answered=False)
    hangup.update(cause="voicemail", voicemail_url="https://pbx.example/vm/1.wav", transcript="<b>Call me</b>")
    post(client, newcall)
    post(client, hangup)
    call = Call.objects.get()
    assert (call.outcome, call.voicemail_url, call.transcript) == (
        CallOutcome.VOICEMAIL,
        "https://pbx.example/vm/1.wav",
        "<b>Call me</b>",
    )


@pytest.mark.parametrize(
    "written", ["+353 86 123 4567", "0861234567", "00353861234567", "086/123 4567", "(086) 123-4567"]
)
def test_a_number_written_any_way_is_the_same_customer(client, written):
    customer = CustomerFactory(name="Ann")
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    post(client, {**call_events("c-12")[0], "from": written})
    call = Call.objects.get()
    assert (call.number, call.customer_id) == (CALLER, customer.pk)


@pytest.mark.parametrize("withheld", ["anonymous", "", "Restricted"])
def test_a_withheld_number_is_an_anonymous_caller(client, withheld):
    post(client, {**call_events("c-13")[0], "from": withheld})
    call = Call.objects.get()
    assert (call.number, call.customer_id) == ("", None)
    assert not Identity.objects.filter(kind=IdentityKind.PHONE).exists()


def test_ringing_agents_by_extension_or_address_and_unknown_names_left_out(client):
    by_extension = AgentFactory(email="two@example.com")
    AgentProfile.objects.update_or_create(user=by_extension, defaults={"phone_extension": "201"})
    by_address = AgentFactory(email="One@Example.com")
    post(client, {**call_events("c-14")[0], "user": ["201", "one@example.com", "999", "nobody@example.com"]})
    assert Call.objects.get().ringing == [by_extension.pk, by_address.pk]


def test_repeated_refusals_from_one_address_are_429_before_the_body_is_read(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_REFUSED_PER_MINUTE": 3}
    for _ in range(3):
        assert post(client, call_events("c-15")[0], secret="wrong").status_code == 401
    response = post(client, call_events("c-15")[0])
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


def test_an_answered_call_is_a_phone_session_of_its_caller_with_the_agent(client):
    agent = AgentFactory(email="agent1@example.com")
    for event in call_events("s-1"):
        post(client, event)
    call = Call.objects.select_related("session").get()
    session = call.session
    assert session is not None and session.channel == SessionChannel.PHONE
    assert (session.customer_id, session.agent_id) == (call.customer_id, agent.pk)
    assert (session.requested_at, session.answered_at, session.abandoned_at, session.ended_at) == (
        call.rang_at,
        call.answered_at,
        None,
        call.ended_at,
    )


def test_a_missed_inbound_call_is_an_abandoned_session_and_the_session_follows_late_events(client):
    newcall, hangup = call_events("s-2", answered=False)
    post(client, hangup)
    # A hang-up without the numbers: who called is not known yet, so no contact is counted.
    assert not Session.objects.exists() and not Customer.objects.exists()
    post(client, newcall)
    session = Session.objects.get()
    assert session.abandoned_at - session.requested_at == timedelta(seconds=300)
    assert (session.answered_at, session.agent_id) == (None, None)
    assert Session.objects.count() == 1


def test_a_withheld_caller_has_a_record_of_their_own_per_call(client):
    for call_id in ("s-3", "s-4"):
        for event in call_events(call_id, answered=False):
            post(client, {**event, "from": "anonymous"} if event["event"] == "newCall" else event)
    sessions = list(Session.objects.all())
    assert len(sessions) == 2 and sessions[0].customer_id != sessions[1].customer_id
    assert not Identity.objects.filter(customer_id__in=[s.customer_id for s in sessions]).exists()
    assert all(call.customer_id is None for call in Call.objects.all())


def test_an_unanswered_outbound_call_is_neither_answered_nor_abandoned(client):
    events = [
        {"event": "newCall", "call_id": "s-5", "from": LINE_NUMBER, "to": CALLER, "direction": "out", "at": at(0)},
        {"event": "hangup", "call_id": "s-5", "cause": "noAnswer", "at": at(30)},
    ]
    for event in events:
        assert post(client, event).status_code == 200
    call = Call.objects.select_related("session").get()
    assert (call.outcome, call.number) == (CallOutcome.NOT_ANSWERED, CALLER)
    assert (call.session.answered_at, call.session.abandoned_at) == (None, None)


def test_signed_events_are_not_held_to_the_anonymous_clients_limit(client):
    # A telephone system sends several events a call: far more than an anonymous client's 60 a minute.
    for n in range(70):
        assert post(client, {**call_events(f"busy-{n}")[0]}).status_code == 200


def test_two_long_call_ids_that_share_their_start_are_two_calls_and_two_sessions(client):
    for end in ("a", "b"):
        assert post(client, call_events("x" * 249 + end)[0]).status_code == 200
    assert Call.objects.count() == 2 and Session.objects.count() == 2


def test_a_database_that_cannot_be_reached_is_503_with_retry_after(client, monkeypatch):
    def unreachable(**kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    monkeypatch.setattr("channels_app.phone.api.call_event_store", unreachable)
    response = post(client, call_events("down")[0])
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "refused" not in response.content.decode()


def test_an_event_stored_while_the_fold_fails_is_folded_by_the_sweep(client, monkeypatch):
    """The database went away between the event's row and its call's: the event is kept,
    the telephone system is told so, and the pending-events sweep folds the call later."""

    def unreachable(**kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    AgentFactory(email="agent1@example.com")
    monkeypatch.setattr("channels_app.phone.api.call_fold_soon", unreachable)
    for event in call_events("late-fold"):
        assert post(client, event).json() == {"outcome": "stored"}
    assert CallEvent.objects.filter(call_key="late-fold", call__isnull=True).count() == 3
    assert not Call.objects.exists()
    # Too recent for the sweep (a task may still be on its way) ...
    assert calls_fold_pending() == 0
    CallEvent.objects.update(received_at=timezone.now() - timedelta(minutes=1))
    # ... until it waited long enough.
    assert calls_fold_pending() == 1
    call = Call.objects.get(call_id="late-fold")
    assert (call.state, call.outcome) == (CallState.ENDED, CallOutcome.ANSWERED)
    assert CallEvent.objects.filter(call=call).count() == 3
    assert calls_fold_pending() == 0


def test_with_the_fold_in_a_worker_the_answer_comes_before_the_fold(client, settings, monkeypatch):
    """The webhook puts the call in the set of calls to fold and enqueues one drain for the burst;
    the worker (run here by hand) folds the call once, whatever number of events it had."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    queued: list[str] = []
    monkeypatch.setattr(
        "channels_app.phone.services.task_enqueue", lambda task, *args: queued.append(task.name) or True
    )
    for event in call_events("queued"):
        assert post(client, event).json() == {"outcome": "stored"}
    assert not Call.objects.exists()
    line = PhoneLine.objects.get(key="default")
    pending, scheduled = fold_keys()
    assert queued == ["phone.calls_fold_drain"]
    assert fold_redis().smembers(pending) == {f"{line.pk}:queued".encode()}
    assert calls_fold_drain_task() == 1
    assert Call.objects.get(call_id="queued").outcome == CallOutcome.ANSWERED
    assert not fold_redis().exists(pending) and not fold_redis().exists(scheduled)
    # The drain cleared its flag: the next call's first event enqueues a drain again.
    assert post(client, call_events("next")[0]).json() == {"outcome": "stored"}
    assert queued == ["phone.calls_fold_drain"] * 2
    # A task queued by an earlier version still folds its call.
    assert call_fold_task(line.pk, "next") is True
    assert Call.objects.get(call_id="next").state == CallState.RINGING


def test_a_drain_gives_its_worker_back_after_a_share_and_leaves_the_rest_to_another(client, settings, monkeypatch):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    queued: list[str] = []
    monkeypatch.setattr(
        "channels_app.phone.services.task_enqueue", lambda task, *args: queued.append(task.name) or True
    )
    for key in ("d-1", "d-2", "d-3"):
        assert post(client, call_events(key)[0]).json() == {"outcome": "stored"}
    assert queued == ["phone.calls_fold_drain"]
    assert calls_fold_drain(most=2) == 2
    assert Call.objects.count() == 2
    assert queued == ["phone.calls_fold_drain"] * 2
    assert calls_fold_drain() == 1
    assert set(Call.objects.values_list("call_id", flat=True)) == {"d-1", "d-2", "d-3"}


def test_a_drain_that_finds_a_backlog_calls_in_a_second_worker(client, settings, monkeypatch):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    queued: list[str] = []
    monkeypatch.setattr(
        "channels_app.phone.services.task_enqueue", lambda task, *args: queued.append(task.name) or True
    )
    monkeypatch.setattr("channels_app.phone.services.FOLD_HELP_ABOVE", 2)
    for key in ("b-1", "b-2", "b-3"):
        post(client, call_events(key)[0])
    assert queued == ["phone.calls_fold_drain"]
    # Three waiting, over two: a helper is enqueued once, whoever gives a share back enqueues nothing more.
    assert calls_fold_drain(most=1) == 1
    assert queued == ["phone.calls_fold_drain"] * 2
    assert calls_fold_drain() == 2
    assert queued == ["phone.calls_fold_drain"] * 2
    assert Call.objects.count() == 3


def test_calls_a_failing_drain_took_go_back_to_the_set(client, settings, monkeypatch):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    monkeypatch.setattr("channels_app.phone.services.task_enqueue", lambda task, *args: True)
    for key in ("f-1", "f-2"):
        post(client, call_events(key)[0])

    def unreachable(**kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    monkeypatch.setattr("channels_app.phone.services.call_fold_run", unreachable)
    with pytest.raises(OperationalError):
        calls_fold_drain()
    assert len(fold_redis().smembers(fold_keys()[0])) == 2
    monkeypatch.undo()
    assert calls_fold_drain() == 2
    assert Call.objects.count() == 2


def test_with_redis_unreachable_the_call_is_folded_in_the_request(client, settings, monkeypatch):
    import redis

    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr("channels_app.phone.services.fold_redis", lambda: dead)
    for event in call_events("no-redis"):
        assert post(client, event).status_code == 200
    assert Call.objects.get(call_id="no-redis").outcome == CallOutcome.ANSWERED


def test_a_broker_that_cannot_take_the_fold_leaves_it_to_the_request(client, settings, monkeypatch):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_FOLD_IN_WORKER": True}
    monkeypatch.setattr("channels_app.phone.services.task_enqueue", lambda task, *args: False)
    for event in call_events("no-broker"):
        assert post(client, event).status_code == 200
    assert Call.objects.get(call_id="no-broker").outcome == CallOutcome.ANSWERED


def test_a_nul_character_anywhere_in_the_event_is_400(client):
    response = post(client, {**call_events("nul")[0], "transcript": "call me\x00back"})
    assert response.status_code == 400 and "detail" in response.json()
    assert not Call.objects.exists()


def test_a_line_made_in_the_admin_keeps_its_secret_encrypted_and_signs_with_it(admin_client, client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": ""}
    form = {
        "key": "sales",
        "name": "Sales",
        "number": LINE_NUMBER,
        "is_active": "on",
        "queue": "",
        "missed_calls": "all",
        "acknowledge": "on",
        "new_secret": "typed-in-the-admin",
    }
    response = admin_client.post(reverse("admin:phone_channel_phoneline_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    line = PhoneLine.objects.get(key="sales")
    assert line.secret_encrypted and "typed-in-the-admin" not in line.secret_encrypted
    page = admin_client.get(reverse("admin:phone_channel_phoneline_change", args=[line.pk])).content.decode()
    assert "typed-in-the-admin" not in page and line.secret_encrypted not in page
    assert post(client, call_events("admin-1")[0], secret="typed-in-the-admin").status_code == 200


def test_a_customer_who_signs_in_is_never_the_agent_the_telephone_system_names(client):
    """Only people who work in the desk are matched by address: a portal user with the address is not."""
    from servicedesk.accounts.models import User

    User.objects.create_user(username="portal", email="agent1@example.com", password="x")
    for event in call_events("portal-user"):
        post(client, event)
    call = Call.objects.get(call_id="portal-user")
    assert (call.agent_id, call.ringing) == (None, [])
    agent = AgentFactory(email="Agent1@Example.com")
    for event in call_events("desk-agent"):
        post(client, event)
    assert Call.objects.get(call_id="desk-agent").agent_id == agent.pk
