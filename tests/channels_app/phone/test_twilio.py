"""Twilio's voice webhook and status callbacks, checked with X-Twilio-Signature as Twilio documents it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.db import OperationalError
from django.utils import timezone

from channels_app.phone.models import Call, CallDirection, CallEvent, CallOutcome, CallState
from servicedesk.tickets.models import Identity, IdentityKind
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

TOKEN = "twilio-auth-token-for-tests"
VOICE = "/api/v1/phone/twilio/voice/"
STATUS = "/api/v1/phone/twilio/status/"
CALLER = "+353861234567"
LINE = "+35312345678"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "TWILIO_AUTH_TOKEN": TOKEN, "PHONE_REGION": "IE"}
    settings.SITE_URL = "https://desk.example.com"


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    """As Twilio's docs: the full URL, then each POST parameter's name and value, sorted by name;
    HMAC-SHA1 under the auth token; base64."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), data.encode("utf-8"), hashlib.sha1).digest()).decode()


def post(client, path: str, params: dict[str, str], *, token: str = TOKEN, signature: str | None = None):
    header = signature if signature is not None else sign("https://desk.example.com" + path, params, token)
    return client.post(path, data=params, HTTP_X_TWILIO_SIGNATURE=header)


def params(sid: str = "CA1", **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC1", "From": CALLER, "To": LINE, "Direction": "inbound", **extra}


# One instant for the whole test run: stamps taken a moment apart never straddle a second.
_BASE = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def stamp(seconds: int) -> str:
    return format_datetime(_BASE + timedelta(seconds=seconds))


def test_an_incoming_call_is_queued_and_recorded_with_its_caller(client):
    customer = CustomerFactory()
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    response = post(client, VOICE, params(CallStatus="ringing"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    body = response.content.decode()
    assert "<Enqueue" in body and "step=after-queue" in body
    call = Call.objects.get()
    assert (call.state, call.direction, call.number, call.customer_id) == (
        CallState.RINGING,
        CallDirection.INBOUND,
        CALLER,
        customer.pk,
    )


@pytest.mark.parametrize("signature", ["", "bm90IGl0", None])
def test_a_missing_or_wrong_signature_is_403_and_nothing_is_stored(client, signature):
    if signature is None:
        response = post(client, VOICE, params(CallStatus="ringing"), token="another token")
    else:
        response = post(client, VOICE, params(CallStatus="ringing"), signature=signature)
    assert response.status_code == 403
    assert not Call.objects.exists()


def test_a_signature_over_other_parameters_is_403(client):
    signed = params(CallStatus="ringing")
    header = sign("https://desk.example.com" + VOICE, signed)
    response = client.post(VOICE, data={**signed, "From": "+353869999999"}, HTTP_X_TWILIO_SIGNATURE=header)
    assert response.status_code == 403
    assert not Call.objects.exists()


def test_without_an_auth_token_every_request_is_403(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "TWILIO_AUTH_TOKEN": ""}
    assert post(client, VOICE, params(CallStatus="ringing"), token="").status_code == 403


def test_a_caller_left_in_the_queue_is_asked_for_a_voicemail_which_the_call_ends_with(client):
    post(client, VOICE, params(CallStatus="ringing", Timestamp=stamp(0)))
    response = post(client, VOICE + "?step=after-queue", params(CallStatus="in-progress", QueueResult="hangup"))
    assert "<Record" in response.content.decode()
    post(client, VOICE + "?step=voicemail", params(CallStatus="completed", RecordingUrl="https://api.twilio.com/r/RE1"))
    post(client, STATUS, params(CallStatus="completed", Timestamp=stamp(95)))
    call = Call.objects.get()
    assert (call.state, call.outcome, call.voicemail_url) == (
        CallState.ENDED,
        CallOutcome.VOICEMAIL,
        "https://api.twilio.com/r/RE1",
    )


def test_status_callbacks_in_any_order_and_repeated_give_one_record(client):
    def stream(sid: str) -> list[tuple[str, dict[str, str]]]:
        return [
            (VOICE, params(sid, CallStatus="ringing", Timestamp=stamp(0))),
            (STATUS, params(sid, CallStatus="in-progress", Timestamp=stamp(1))),
            (VOICE + "?step=after-queue", params(sid, CallStatus="in-progress", QueueResult="bridged", QueueTime="14")),
            (STATUS, params(sid, CallStatus="completed", Timestamp=stamp(200), CallDuration="200")),
        ]

    records = []
    for n, order in enumerate(itertools.permutations(range(4))):
        sid = f"CA-perm-{n}"
        events = stream(sid)
        for index in [*order, order[0], order[-1]]:
            path, sent = events[index]
            assert post(client, path, sent).status_code == 200
        call = Call.objects.get(call_id=sid)
        records.append((call.state, call.outcome, call.answered_at - call.rang_at, call.ended_at - call.rang_at))
    # The bridged answer is timed QueueTime after the ring, whenever the ring arrives.
    assert records[0] == (CallState.ENDED, CallOutcome.ANSWERED, timedelta(seconds=14), timedelta(seconds=200))
    assert [n for n, r in enumerate(records) if r != records[0]] == [], records
    assert CallEvent.objects.filter(call__call_id="CA-perm-0").count() == 3


def test_an_inbound_in_progress_is_twilio_answering_not_an_agent(client):
    post(client, VOICE, params(CallStatus="ringing", Timestamp=stamp(0)))
    post(client, STATUS, params(CallStatus="in-progress", Timestamp=stamp(1)))
    post(client, STATUS, params(CallStatus="completed", Timestamp=stamp(40)))
    call = Call.objects.get()
    assert (call.outcome, call.answered_at) == (CallOutcome.MISSED, None)


def test_an_outbound_call_is_answered_when_twilio_says_in_progress(client):
    out = {"From": LINE, "To": CALLER, "Direction": "outbound-api"}
    post(client, STATUS, params("CA-out", CallStatus="ringing", Timestamp=stamp(0), **out))
    post(client, STATUS, params("CA-out", CallStatus="in-progress", Timestamp=stamp(9), **out))
    post(client, STATUS, params("CA-out", CallStatus="completed", Timestamp=stamp(70), **out))
    call = Call.objects.get()
    assert (call.direction, call.number, call.outcome) == (CallDirection.OUTBOUND, CALLER, CallOutcome.ANSWERED)
    assert call.answered_at - call.rang_at == timedelta(seconds=9)


@pytest.mark.parametrize(
    "change",
    [{"CallStatus": "exploded"}, {"From": "not a number"}, {"CallSid": ""}, {"Timestamp": "yesterday"}],
)
def test_bad_parameters_are_400_and_nothing_is_stored(client, change):
    response = post(client, STATUS, {**params(CallStatus="ringing"), **change})
    assert response.status_code == 400
    assert not Call.objects.exists()


def test_the_voicemail_prompt_is_spoken_in_the_desks_language(client):
    post(client, VOICE, params(CallStatus="ringing"))
    sent = params(CallStatus="in-progress", QueueResult="leave")
    path = VOICE + "?step=after-queue"
    header = sign("https://desk.example.com" + path, sent)
    english = client.post(path, data=sent, HTTP_X_TWILIO_SIGNATURE=header).content.decode()
    chinese = client.post(
        path, data=sent, HTTP_X_TWILIO_SIGNATURE=header, HTTP_ACCEPT_LANGUAGE="zh-CN"
    ).content.decode()
    assert '<Say language="en-US">Please leave a message after the tone.</Say>' in english
    assert '<Say language="zh-CN">请在提示音后留言。</Say>' in chinese


def test_repeated_refusals_from_one_address_are_429(client, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_REFUSED_PER_MINUTE": 2}
    for _ in range(2):
        assert post(client, STATUS, params(CallStatus="ringing"), token="wrong").status_code == 403
    response = post(client, STATUS, params(CallStatus="ringing"))
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert not Call.objects.exists()


def test_a_database_that_cannot_be_reached_is_503_for_twilio_to_retry(client, monkeypatch):
    def unreachable(**kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    monkeypatch.setattr("channels_app.phone.twilio.call_event_receive", unreachable)
    response = post(client, STATUS, params(CallStatus="ringing"))
    assert response.status_code == 503 and response["Retry-After"] == "5"


AGENT = "/api/v1/phone/twilio/agent/"


def test_an_agents_leg_takes_the_next_caller_and_the_call_names_that_agent(client):
    from channels_app.phone.models import PhoneLine
    from tests.factories import AgentFactory, QueueFactory

    support = QueueFactory(slug="support")
    PhoneLine.objects.create(key="default", name="Main", number=LINE, queue=support)
    ann = AgentFactory(username="ann", email="ann@example.com", queues=[support])
    post(client, VOICE, params(sid="CA-q", CallStatus="ringing", Timestamp=stamp(0)))
    # Ann's softphone calls in: the answer dials the queue, and names Ann in the bridge's signed address.
    leg = post(client, AGENT, {"CallSid": "CA-ann", "AccountSid": "AC1", "From": "client:ann@example.com", "To": LINE})
    body = leg.content.decode()
    assert leg.status_code == 200 and "<Dial><Queue url=" in body and ">support</Queue>" in body
    bridge = f"https://desk.example.com{VOICE}?step=bridge&amp;agent={ann.pk}"
    assert bridge in body
    # Twilio takes the caller off the queue for Ann after 12 s and asks the bridge.
    path = f"{VOICE}?step=bridge&agent={ann.pk}"
    answered = post(
        client,
        path,
        params(sid="CA-q", CallStatus="in-progress", QueueTime="12", DequeingCallSid="CA-ann", Timestamp=stamp(12)),
    )
    assert answered.status_code == 200 and answered.content.decode().endswith("<Response></Response>")
    # The queue's own report of the bridge, without the agent, comes too.
    post(client, f"{VOICE}?step=after-queue", params(sid="CA-q", QueueResult="bridged", QueueTime="12"))
    call = Call.objects.get(call_id="CA-q")
    assert call.agent_id == ann.pk and call.state == CallState.ANSWERED
    assert (call.answered_at - call.rang_at) == timedelta(seconds=12)


def test_an_agents_leg_that_is_nobodys_or_unsigned_is_refused(client):
    assert (
        post(client, AGENT, {"CallSid": "CA-x", "From": "client:nobody@example.com"})
        .content.decode()
        .count("<Hangup/>")
        == 1
    )
    # A phone number is no agent's name (agents are named client:<email or extension>).
    assert "<Hangup/>" in post(client, AGENT, {"CallSid": "CA-x", "From": "+353861234567"}).content.decode()
    assert (
        post(client, AGENT, {"CallSid": "CA-x", "From": "client:ann@example.com"}, signature="forged").status_code
        == 403
    )
    # A bridge for an id that is no agent, or changed after Twilio signed it, records nothing.
    assert post(client, f"{VOICE}?step=bridge&agent=999999", params(sid="CA-b", QueueTime="3")).status_code == 400
    signed_for_one = sign(f"https://desk.example.com{VOICE}?step=bridge&agent=1", params(sid="CA-b"))
    assert post(client, f"{VOICE}?step=bridge&agent=2", params(sid="CA-b"), signature=signed_for_one).status_code == 403
    assert not Call.objects.filter(call_id="CA-b").exists()
