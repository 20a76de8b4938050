"""Twilio's voice webhooks: ``POST /api/v1/phone/twilio/voice/`` and ``.../twilio/status/`` (docs/phone.md).

Each request is checked with ``X-Twilio-Signature``, as Twilio documents it:
base64 of HMAC-SHA1, under the account's auth token (``SD_TWILIO_AUTH_TOKEN``),
of the public address of the request (``SITE_URL`` and the path with its
query) followed by each POST parameter's name and value, sorted by name. A
wrong or missing signature is 403 and nothing is stored.

The voice webhook answers an incoming call with TwiML that puts the caller
in the line's queue; when the caller leaves the queue unanswered, it asks for
a voicemail. Requests and status callbacks become the generic events
(``newCall``, ``answer``, ``hangup``) of the same call, folded as any other
(``services.call_event_receive``); the table is in docs/phone.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.throttles import Refusals
from servicedesk.tickets.models import Queue
from servicedesk.tickets.services.customers import InvalidIdentity

from .models import DEFAULT_LINE_KEY, CallDirection, CallEventKind, PhoneLine
from .services import CallEventIn, agents_named, call_event_receive, phone_number

SIGNATURE_HEADER = "X-Twilio-Signature"
# Refused signatures count with the generic form's: one limit per client address.
REFUSALS = Refusals("phone-events-refused")
PARAMS_MAX = 100
VOICEMAIL_SECONDS_MAX = 120

# Twilio's CallStatus as the generic events (and a hang-up's cause).
STATUS_EVENTS: dict[str, tuple[str, str]] = {
    "queued": (CallEventKind.NEW_CALL, ""),
    "initiated": (CallEventKind.NEW_CALL, ""),
    "ringing": (CallEventKind.NEW_CALL, ""),
    "in-progress": (CallEventKind.ANSWER, ""),
    "completed": (CallEventKind.HANGUP, "normalClearing"),
    "busy": (CallEventKind.HANGUP, "busy"),
    "failed": (CallEventKind.HANGUP, "congestion"),
    "no-answer": (CallEventKind.HANGUP, "noAnswer"),
    "canceled": (CallEventKind.HANGUP, "cancel"),
}


def twilio_signature(url: str, params: Iterable[tuple[str, str]], token: str) -> str:
    """Twilio's signature of a form POST: base64(HMAC-SHA1(token, url + name1 + value1 + ...)), names sorted."""
    pairs = sorted(set(params))
    payload = url + "".join(name + value for name, value in pairs)
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _signed(request: HttpRequest) -> bool:
    token = settings.SERVICEDESK.get("TWILIO_AUTH_TOKEN") or ""
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not token or not given:
        return False
    url = settings.SITE_URL + request.get_full_path()
    params = [(name, value) for name in request.POST for value in request.POST.getlist(name)]
    expected = twilio_signature(url, params, token)
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def _twiml(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
        content_type="text/xml; charset=utf-8",
        status=status,
    )


def _line(number: str) -> PhoneLine | None:
    """The line of the called number, else the default line (Twilio numbers of one account)."""
    if number:
        line = PhoneLine.objects.filter(number=number, is_active=True).first()
        if line is not None:
            return line
    line, _created = PhoneLine.objects.get_or_create(key=DEFAULT_LINE_KEY, defaults={"name": "Default line"})
    return line if line.is_active else None


def _event(request: HttpRequest) -> tuple[PhoneLine, CallEventIn | None] | HttpResponse:
    """The request as a call event of its line (None: nothing to record), or the answer that refuses it.

    An inbound call runs our TwiML from its first second, so Twilio calls it
    ``in-progress`` while the caller waits in the queue: its answer is the
    queue's ``bridged`` result instead (timed ``QueueTime`` seconds after the
    ring). An outbound call is answered when Twilio says ``in-progress``.
    """
    post = request.POST
    if len(post) > PARAMS_MAX:
        return HttpResponse("Too many parameters.", status=400, content_type="text/plain")
    call_sid = post.get("CallSid", "").strip()
    if not call_sid or len(call_sid) > 250:
        return HttpResponse("CallSid is missing.", status=400, content_type="text/plain")
    status = post.get("CallStatus", "ringing")
    if status not in STATUS_EVENTS:
        return HttpResponse("Unknown CallStatus.", status=400, content_type="text/plain")
    inbound = post.get("Direction", "inbound") == "inbound"
    try:
        ours = phone_number(post.get("To", "") if inbound else post.get("From", ""))
        phone_number(post.get("From", ""))
        phone_number(post.get("To", ""))
    except InvalidIdentity:
        return HttpResponse("From or To is not a phone number.", status=400, content_type="text/plain")
    line = _line(ours)
    if line is None:
        return HttpResponse("No such line.", status=404, content_type="text/plain")
    at = timezone.now()
    if post.get("Timestamp"):
        try:
            at = parsedate_to_datetime(post["Timestamp"])
        except (TypeError, ValueError):
            return HttpResponse("Timestamp is not a date.", status=400, content_type="text/plain")
        if timezone.is_naive(at):
            return HttpResponse("Timestamp has no offset.", status=400, content_type="text/plain")
    step = request.GET.get("step", "")
    kind, cause = STATUS_EVENTS[status]
    after_ring: int | None = None
    answering = ""
    voicemail = post.get("RecordingUrl", "") if step == "voicemail" else ""
    if step == "voicemail":
        if not voicemail.startswith("https://"):
            return line, None
        kind, cause = CallEventKind.HANGUP, "voicemail"
    elif step == "bridge":
        # Twilio asks the dequeued caller's <Queue url> as an agent's leg takes them (``agent``):
        # that agent answers, QueueTime seconds after the ring. The address, agent included, is signed.
        agent = _agent_by_pk(request.GET.get("agent", ""))
        if agent is None:
            return HttpResponse("No such agent.", status=400, content_type="text/plain")
        try:
            after_ring = max(0, int(post.get("QueueTime", "0")))
        except ValueError:
            return HttpResponse("QueueTime is not a number.", status=400, content_type="text/plain")
        kind, cause, answering = CallEventKind.ANSWER, "", agent.email
    elif step == "after-queue":
        if post.get("QueueResult", "") != "bridged":
            return line, None  # the voicemail or the hang-up says how it ended
        try:
            after_ring = max(0, int(post.get("QueueTime", "0")))
        except ValueError:
            return HttpResponse("QueueTime is not a number.", status=400, content_type="text/plain")
        kind, cause = CallEventKind.ANSWER, ""
    elif step == "":
        if request.path.endswith("/voice/"):
            kind, cause = CallEventKind.NEW_CALL, ""
        elif inbound and kind == CallEventKind.ANSWER:
            return line, None  # Twilio runs our TwiML: not an agent's answer
    else:
        return HttpResponse("Unknown step.", status=400, content_type="text/plain")
    recording = post.get("RecordingUrl", "") if not voicemail else ""
    sent: dict[str, Any] = {name: post.getlist(name) for name in sorted(post)}
    sent["step"] = step
    sent["path"] = request.path
    return line, CallEventIn(
        kind=kind,
        call_id=call_sid,
        direction=CallDirection.INBOUND if inbound else CallDirection.OUTBOUND,
        from_number=post.get("From", ""),
        to_number=post.get("To", ""),
        at=at,
        sent=sent,
        cause=cause,
        answering_user=answering,
        queue=line.queue.slug if line.queue_id and line.queue else "",
        recording_url=recording if recording.startswith("https://") else "",
        voicemail_url=voicemail,
        transcript=post.get("TranscriptionText", "")[:100_000],
        after_ring=after_ring,
    )


def _refused(request: HttpRequest) -> HttpResponse | None:
    """429 for an address with too many refused signatures this minute, 403 for a bad signature, else None."""
    retry_after = REFUSALS.blocked(request, limit=settings.SERVICEDESK["PHONE_REFUSED_PER_MINUTE"])
    if retry_after is not None:
        response = HttpResponse("Too many refused requests.", status=429, content_type="text/plain")
        response["Retry-After"] = str(retry_after)
        return response
    if not _signed(request):
        REFUSALS.count(request)
        return HttpResponse("Invalid signature.", status=403, content_type="text/plain")
    return None


def _receive(request: HttpRequest) -> tuple[PhoneLine, CallEventIn | None] | HttpResponse:
    refused = _refused(request)
    if refused is not None:
        return refused
    made = _event(request)
    if isinstance(made, HttpResponse):
        return made
    line, event = made
    if event is None:
        return made
    try:
        call_event_receive(line=line, event=event)
    except (OperationalError, InterfaceError):
        response = HttpResponse("Temporarily unavailable.", status=503, content_type="text/plain")
        response["Retry-After"] = "5"
        return response
    return made


@csrf_exempt
@require_POST
def voice(request: HttpRequest) -> HttpResponse:
    """An incoming call: into the line's queue; out of the queue unanswered: a voicemail."""
    made = _receive(request)
    if isinstance(made, HttpResponse):
        return made
    line, _event_in = made
    here = settings.SITE_URL + request.path
    step = request.GET.get("step", "")
    if step in ("voicemail", "bridge"):
        return _twiml("")
    if step == "after-queue":
        if request.POST.get("QueueResult", "") == "bridged":
            return _twiml("")
        spoken = "zh-CN" if translation.get_language() == "zh-hans" else "en-US"
        prompt = escape(gettext("Please leave a message after the tone."))
        return _twiml(
            f"<Say language={quoteattr(spoken)}>{prompt}</Say>"
            f'<Record maxLength={quoteattr(str(VOICEMAIL_SECONDS_MAX))} playBeep="true" '
            f'action={quoteattr(here + "?step=voicemail")} transcribe="true" '
            f"transcribeCallback={quoteattr(here + '?step=voicemail')}/>"
        )
    queue = line.queue.slug if line.queue_id and line.queue else "support"
    return _twiml(f"<Enqueue action={quoteattr(here + '?step=after-queue')}>{escape(queue)}</Enqueue>")


def _agent_by_pk(value: str) -> Any:
    """An active desk user by id (the bridge's ``agent``, which the signature covers), else None."""
    if not value.isdigit():
        return None
    user = User.objects.filter(pk=int(value), is_active=True).first()
    return user if user is not None and is_agent(user) else None


@csrf_exempt
@require_POST
def agent(request: HttpRequest) -> HttpResponse:
    """An agent's leg (a Twilio Client app or softphone whose voice URL is this one): take the next caller.

    The agent is the caller of this leg, ``client:<email or extension>``, as
    the generic form names agents; ``?queue=<slug>`` says which queue (default:
    the default line's). The answer dials the queue; as Twilio takes a caller
    off it, it asks ``voice/?step=bridge&agent=<id>``, which records that
    agent's answer of that call.
    """
    refused = _refused(request)
    if refused is not None:
        return refused
    caller = request.POST.get("From", "").strip()
    named = agents_named([caller.removeprefix("client:")]) if caller.startswith("client:") else []
    queue = request.GET.get("queue", "").strip()
    if not queue:
        line = PhoneLine.objects.filter(key=DEFAULT_LINE_KEY).select_related("queue").first()
        queue = line.queue.slug if line is not None and line.queue_id and line.queue else "support"
    if not named or not Queue.objects.filter(slug=queue).exists():
        spoken = "zh-CN" if translation.get_language() == "zh-hans" else "en-US"
        refusal = escape(gettext("This phone is not an agent's, or the queue does not exist."))
        return _twiml(f"<Say language={quoteattr(spoken)}>{refusal}</Say><Hangup/>")
    bridge = f"{settings.SITE_URL}{reverse('phone_api:twilio-voice')}?step=bridge&agent={named[0]}"
    return _twiml(f"<Dial><Queue url={quoteattr(bridge)}>{escape(queue)}</Queue></Dial>")


@csrf_exempt
@require_POST
def status(request: HttpRequest) -> HttpResponse:
    """A status callback of a call (queued, ringing, in-progress, completed, busy, failed, no-answer, canceled)."""
    made = _receive(request)
    if isinstance(made, HttpResponse):
        return made
    return _twiml("")
