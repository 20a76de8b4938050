"""Calls from telephone systems' events: each event kept once, the call's record folded from them.

A telephone system sends ``newCall``, ``answer`` and ``hangup`` events, late,
twice or out of order (docs/phone.md). ``call_event_receive`` keeps each
event once (its digest is unique per call) and computes the call's record
again from every event it has (``call_fold``): the record depends on the set
of events, never on the order they came in. An answer timed after the hangup
is ignored, as telephone systems send one when a call was picked up as it
ended.

The caller's number is written in E.164 (``identity_normalize``, with the
region ``SD_PHONE_REGION`` for numbers written the national way); a withheld
number is an anonymous caller; any other number is the customer who has it
as a phone identity, a new customer when nobody has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone

from servicedesk.accounts.roles import ROLES
from servicedesk.core.enqueue import task_enqueue
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import Customer, IdentityKind, Session, SessionChannel
from servicedesk.tickets.services.customers import identity_normalize, sender_resolve
from servicedesk.webhooks.emit import call_ended_emit

from .models import Call, CallDirection, CallEvent, CallEventKind, CallOutcome, CallState, PhoneLine
from .pushes import call_push_after_commit
from .tickets import call_tickets_sync

log = logging.getLogger(__name__)

# What telephone systems send for a number they do not show.
# Twilio writes a withheld caller as +266696687 ("ANONYMOUS" on a keypad).
WITHHELD = frozenset(
    {"", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable", "+266696687", "266696687"}
)
_KIND_ORDER: dict[str, int] = {CallEventKind.NEW_CALL: 0, CallEventKind.ANSWER: 1, CallEventKind.HANGUP: 2}


def phone_number(value: str) -> str:
    """``value`` in E.164, or '' for a withheld number; InvalidIdentity when it is no phone number."""
    value = (value or "").strip()
    if value.lower() in WITHHELD:
        return ""
    return identity_normalize(kind=IdentityKind.PHONE, value=value)


@dataclass(frozen=True)
class CallEventIn:
    """One event as a telephone system sent it, checked (``api.CtiEventSerializer``).

    ``sent`` holds the fields as they were sent (``at`` only when it was), and
    is what makes two copies of one event the same (``digest``).
    """

    kind: str
    call_id: str
    direction: str
    from_number: str
    to_number: str
    at: datetime
    sent: dict[str, Any] = field(default_factory=dict)
    users: tuple[str, ...] = ()
    answering_user: str = ""
    cause: str = ""
    queue: str = ""
    recording_url: str = ""
    voicemail_url: str = ""
    transcript: str = ""
    # An answer timed by how long after the ring it came (Twilio's QueueTime), when the ring may come later.
    after_ring: int | None = None

    def digest(self) -> str:
        canonical = json.dumps(self.sent, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def data(self) -> dict[str, Any]:
        """What the call's record is folded from (``CallEvent.data``)."""
        return {
            "direction": self.direction,
            "from": self.from_number,
            "to": self.to_number,
            "users": list(self.users),
            "answering_user": self.answering_user,
            "cause": self.cause,
            "queue": self.queue,
            "recording_url": self.recording_url,
            "voicemail_url": self.voicemail_url,
            "transcript": self.transcript,
            "after_ring": self.after_ring,
        }


@dataclass(frozen=True)
class Received:
    call: Call | None
    duplicate: bool


def call_event_receive(*, line: PhoneLine, event: CallEventIn, received_at: datetime | None = None) -> Received:
    """Keep ``event`` (``call_event_store``) and fold its call at once (``call_fold_run``).

    The webhooks store the event and leave the fold to a worker
    (``call_fold_soon``); this does both in the caller's thread (Twilio's
    answers need the call's record).
    """
    received_at = received_at or timezone.now()
    stored = call_event_store(line=line, event=event, received_at=received_at)
    call = call_fold_run(line=line, call_key=event.call_id, received_at=received_at) if stored else None
    if call is None:
        call = Call.objects.filter(line=line, call_id=event.call_id).first()
    return Received(call=call, duplicate=not stored)


_INSERT_ONCE: dict[str, str] = {}


def call_event_store(*, line: PhoneLine, event: CallEventIn, received_at: datetime) -> bool:
    """Keep the event under its line and call id, in one statement; False when it is kept already.

    Idempotency key: (line, call id, the event's digest), unique: the same
    event sent again, also at the same moment, is one row. Its call is folded
    later (``call_fold_run``).
    """
    connection = connections[CallEvent.objects.db]
    sql, values = event_insert(line_id=line.pk, event=event, received_at=received_at, connection=connection)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone() is not None


def event_insert(*, line_id: int, event: CallEventIn, received_at: datetime, connection: Any) -> tuple[str, list[Any]]:
    """The statement that keeps an event once (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``), and its values.

    Also run by the web server's direct route (``phone/asgi.py``) on a
    connection of its own; ``connection`` (Django's) only prepares the values.
    """
    row = CallEvent(
        line_id=line_id,
        call_key=event.call_id,
        kind=event.kind,
        at=event.at,
        data=event.data(),
        digest=event.digest(),
        received_at=received_at,
    )
    fields = [f for f in CallEvent._meta.concrete_fields if not f.primary_key]
    sql = _INSERT_ONCE.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        # Names from the model's own metadata; every value is a parameter.
        sql = (
            f"INSERT INTO {quote(CallEvent._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({quote('line_id')}, {quote('call_key')}, {quote('digest')}) DO NOTHING "
            f"RETURNING {quote(CallEvent._meta.pk.column)}"
        )
        _INSERT_ONCE[connection.vendor] = sql
    return sql, [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]


# Calls waiting to be folded by a worker (a Redis set of "<line id>:<call id>"), and the flag that says a
# drain task is queued and has not started yet (``call_fold_soon``, ``calls_fold_drain``).
FOLD_PENDING_KEY = "phone:fold:pending"
FOLD_SCHEDULED_KEY = "phone:fold:scheduled"
FOLD_SCHEDULED_SECONDS = 60
FOLD_HELP_ABOVE = 50
_REDIS: dict[str, Any] = {}
_REDIS_LOCK = threading.Lock()


def fold_redis() -> Any:
    """The Redis client of the fold's set (``REDIS_URL``, the broker's), made once per process."""
    import redis

    url = settings.REDIS_URL
    client = _REDIS.get(url)
    if client is None:
        # One per process: a second client made by a thread at the same moment, dropped, would close
        # the connections of the pool it made, under the thread still using them.
        with _REDIS_LOCK:
            client = _REDIS.get(url)
            if client is None:
                client = _REDIS[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return client


def fold_keys() -> tuple[str, str]:
    """The set's and the flag's keys, under the site's cache prefix (several sites may share a Redis)."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "sd"
    return f"{prefix}:{FOLD_PENDING_KEY}", f"{prefix}:{FOLD_SCHEDULED_KEY}"


def fold_member(line_id: int, call_key: str) -> str:
    return f"{line_id}:{call_key}"


def call_fold_soon(*, line_id: int, call_key: str) -> None:
    """Fold the call of a just stored event: in a worker (``phone.calls_fold_drain``), else here.

    With ``PHONE_FOLD_IN_WORKER`` the call joins the set of calls to fold, and
    a drain task is enqueued unless one is queued and not started yet (the
    flag): a burst of events costs one task, not one each, and events of one
    call that wait together are folded once. The event is stored before the
    call joins the set, and a drain clears the flag before it reads the set,
    so a call either joins a set a drain is still to read, or sets the flag
    and enqueues a drain itself.

    Here when ``PHONE_FOLD_IN_WORKER`` is off (the zero-setup default, whose
    file-based queue is polled once a second: a screen pop would wait for
    it), or Redis or the broker cannot take it. A drain lost after it took
    calls from the set is covered by ``phone.events_fold_pending``, which
    folds what is left unfolded.
    """
    if settings.SERVICEDESK["PHONE_FOLD_IN_WORKER"] and _fold_later(line_id, call_key):
        return
    call_fold_run(line=PhoneLine.objects.get(pk=line_id), call_key=call_key)


def _fold_later(line_id: int, call_key: str) -> bool:
    import redis

    from .tasks import calls_fold_drain_task

    pending, scheduled = fold_keys()
    try:
        pipe = fold_redis().pipeline(transaction=False)
        pipe.sadd(pending, fold_member(line_id, call_key))
        pipe.set(scheduled, "1", nx=True, ex=FOLD_SCHEDULED_SECONDS)
        _added, flagged = pipe.execute()
    except (redis.RedisError, OSError):
        # OSError: a connection redis-py was still setting up when it failed.
        log.warning("Call %s of line %s folded in the request: Redis is unreachable", call_key, line_id, exc_info=True)
        return False
    return drain_enqueue(calls_fold_drain_task) if flagged else True


def drain_enqueue(task: Any) -> bool:
    """Enqueue a drain whose flag was just set; the flag is cleared again when the broker refuses it."""
    import redis

    if task_enqueue(task):
        return True
    with contextlib.suppress(redis.RedisError, OSError):
        fold_redis().delete(fold_keys()[1])
    return False


def calls_fold_drain(*, most: int = 500, seconds: float = 10.0) -> int:
    """Fold the calls of the set until it is empty (a worker's task); returns how many were folded.

    A drain that finds over ``FOLD_HELP_ABOVE`` calls waiting enqueues one
    more (unless one is queued already), which does the same: a backlog is
    folded by as many worker processes as are free. After ``most`` calls or
    ``seconds`` the worker is given back to other tasks and a new drain is
    enqueued for the rest. Calls taken from the set that are not folded
    because the database failed go back into it.
    """
    import time

    from .tasks import calls_fold_drain_task

    client = fold_redis()
    pending, scheduled = fold_keys()
    client.delete(scheduled)
    if client.scard(pending) > FOLD_HELP_ABOVE and client.set(scheduled, "1", nx=True, ex=FOLD_SCHEDULED_SECONDS):
        drain_enqueue(calls_fold_drain_task)
    started = time.monotonic()
    folded = 0
    lines: dict[int, PhoneLine | None] = {}
    while True:
        taken = [m.decode() for m in client.spop(pending, min(50, most - folded)) or []]
        if not taken:
            return folded
        for index, member in enumerate(taken):
            line_id, _sep, call_key = member.partition(":")
            try:
                if int(line_id) not in lines:
                    lines[int(line_id)] = PhoneLine.objects.filter(pk=int(line_id)).first()
                line = lines[int(line_id)]
                if line is not None:
                    call_fold_run(line=line, call_key=call_key)
            except Exception:
                client.sadd(pending, *taken[index:])
                raise
            folded += 1
        if folded >= most or time.monotonic() - started > seconds:
            if client.set(scheduled, "1", nx=True, ex=FOLD_SCHEDULED_SECONDS):
                drain_enqueue(calls_fold_drain_task)
            return folded


def call_fold_run(*, line: PhoneLine, call_key: str, received_at: datetime | None = None) -> Call | None:
    """Fold the call ``call_key`` of ``line`` from every event it has (made on its first event of any kind).

    Takes the events not folded yet onto the call and computes its record,
    session, ticket and entry again (``call_fold``; the result depends on the
    set of events, never their order), then tells the agents concerned. None
    when the call has no event. Running it twice, or at once in two workers,
    gives the same record: the call's row is locked.
    """
    received_at = received_at or timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _fold(line, call_key, received_at)
        except IntegrityError:
            # A simultaneous first fold made the call's row, or the caller's record
            # (``sender_resolve``): the transaction runs again and finds them.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _fold(line: PhoneLine, call_key: str, received_at: datetime) -> Call | None:
    events = CallEvent.objects.filter(line=line, call_key=call_key)
    call = Call.objects.filter(line=line, call_id=call_key).only("pk").first()
    if call is None:
        first = events.order_by("at", "pk").first()
        if first is None:
            return None
        call = Call(
            line=line,
            call_id=call_key,
            direction=first.data.get("direction") or CallDirection.INBOUND,
            rang_at=first.at,
        )
        call.save(force_insert=True)
    call = row_lock(Call, call.pk)
    if not events.filter(call__isnull=True).update(call=call):
        # Folded already, with every event it has.
        return call
    folded = call_fold(events)
    number_before, customer_before = call.number, call.customer_id
    ringing_before, agent_before = set(call.ringing or ()), call.agent_id
    for name, value in folded.fields.items():
        setattr(call, name, value)
    call.ringing = agents_named(folded.ringing)
    call.agent_id = next(iter(agents_named([folded.answering])), None) if folded.answering else None
    if call.number != number_before or customer_before is None:
        # The caller: the customer with that number (new when nobody has it); nobody when withheld.
        call.customer = (
            sender_resolve(kind=IdentityKind.PHONE, value=call.number, at=call.rang_at).customer
            if call.number
            else None
        )
    call.updated_at = received_at
    call.line = line
    _session_sync(call)
    call_tickets_sync(call, now=received_at)
    call.save()
    _call_ended_event(call)
    call_push_after_commit(call, before=ringing_before | {agent_before})
    return call


def _call_ended_event(call: Call) -> None:
    """The webhook event of a call that ended, once its ticket is settled (docs/webhooks.md); once per call."""
    if call.state == CallState.ENDED and call.settles_at is None:
        call_ended_emit(
            call_id=call.pk,
            direction=call.direction,
            outcome=call.outcome,
            rang_at=call.rang_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            agent_id=call.agent_id,
            customer_id=call.customer_id,
            ticket_id=call.ticket_id,
        )


def calls_fold_pending(*, older_than: timedelta = timedelta(seconds=20), limit: int = 500) -> int:
    """Fold the calls whose events wait unfolded for longer than ``older_than`` (a lost task). Returns how many."""
    pending = (
        CallEvent.objects.filter(call__isnull=True, received_at__lt=timezone.now() - older_than)
        .order_by()
        .values_list("line_id", "call_key")
        .distinct()[:limit]
    )
    folded = 0
    lines: dict[int, PhoneLine] = {}
    for line_id, call_key in list(pending):
        line = lines.get(line_id) or lines.setdefault(line_id, PhoneLine.objects.get(pk=line_id))
        call_fold_run(line=line, call_key=call_key)
        folded += 1
    return folded


def call_settle(*, call_pk: int, now: datetime | None = None) -> Call | None:
    """Make the callback ticket of a missed call whose wait for a late answer is over (``Call.settles_at``).

    None when nothing was due: the call was answered, attached or settled
    meanwhile, or its time has not come (a task run early).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Call.objects.filter(pk=call_pk, settles_at__lte=now).exists():
            return None
        call = row_lock(Call, call_pk)
        if call.settles_at is None or call.settles_at > now:
            return None
        before = set(call.ringing or ()) | {call.agent_id}
        call_tickets_sync(call, now=now)
        call.updated_at = now
        call.save()
        _call_ended_event(call)
        call_push_after_commit(call, before=before)
    return call


def calls_settle_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Settle the missed calls that are due (the beat's sweep behind each call's own task); how many."""
    now = now or timezone.now()
    due = Call.objects.filter(settles_at__lte=now).order_by("settles_at").values_list("pk", flat=True)[:limit]
    return sum(1 for pk in list(due) if call_settle(call_pk=pk, now=now) is not None)


def _session_sync(call: Call) -> None:
    """The call's ``Session`` as the call now is (made once an event has given the numbers).

    Requested at the first ring (or the queue entry); answered when an agent
    answered; an inbound call that ended unanswered was abandoned when it
    ended; an outbound call nobody answered is neither. A caller whose number
    was withheld is a customer record of their own for that call, without an
    identity: nothing links two withheld calls to one person.
    """
    if not (call.from_number or call.to_number):
        # No event with the numbers yet (a hang-up before its ring): who called is not known.
        return
    if call.customer_id is None:
        if call.session_id is not None:
            customer_id = Session.objects.filter(pk=call.session_id).values_list("customer_id", flat=True).first()
        else:
            customer_id = None
        if customer_id is None:
            customer_id = Customer.objects.create(name="", created_at=call.rang_at).pk
    else:
        customer_id = call.customer_id
    abandoned = (
        call.ended_at
        if call.state == CallState.ENDED and call.answered_at is None and call.direction == CallDirection.INBOUND
        else None
    )
    fields = {
        "customer_id": customer_id,
        "agent_id": call.agent_id if call.answered_at else None,
        "requested_at": call.rang_at,
        "answered_at": call.answered_at,
        "abandoned_at": abandoned,
        "ended_at": call.ended_at,
    }
    if call.session_id is None:
        external_id = f"phone:{call.line_id}:{call.call_id}"
        if len(external_id) > 200:
            # Call ids run to 250 characters: a long one by its digest, never cut (two would meet).
            external_id = f"phone:{call.line_id}:sha256:{hashlib.sha256(call.call_id.encode()).hexdigest()}"
        call.session = Session.objects.create(channel=SessionChannel.PHONE, external_id=external_id, **fields)
    else:
        Session.objects.filter(pk=call.session_id).update(**fields)


@dataclass(frozen=True)
class Folded:
    """A call as its events tell it: its fields, and the agents as the events name them."""

    fields: dict[str, Any]
    ringing: tuple[str, ...]
    answering: str


def call_fold(events: Iterable[CallEvent]) -> Folded:
    """The call's fields from its events, whatever order they came in (see the module)."""
    ordered = sorted(events, key=lambda e: (e.at, _KIND_ORDER.get(e.kind, 9), e.digest))
    if not ordered:
        raise ValueError("a call has at least one event")
    rings = [e for e in ordered if e.kind == CallEventKind.NEW_CALL]
    base = rings[0] if rings else ordered[0]
    hangup = next((e for e in ordered if e.kind == CallEventKind.HANGUP), None)

    def answered_at(e: CallEvent) -> datetime:
        after = e.data.get("after_ring")
        return base.at + timedelta(seconds=after) if isinstance(after, int) and rings else e.at

    answers = sorted((e for e in ordered if e.kind == CallEventKind.ANSWER), key=lambda e: (answered_at(e), e.digest))
    answer = next((e for e in answers if hangup is None or answered_at(e) <= hangup.at), None)
    direction = base.data.get("direction") or CallDirection.INBOUND
    other = base.data.get("from") if direction == CallDirection.INBOUND else base.data.get("to")

    def last(key: str) -> str:
        return next((e.data[key] for e in reversed(ordered) if e.data.get(key)), "")

    if hangup is None:
        outcome = ""
    elif answer is not None:
        outcome = CallOutcome.ANSWERED
    elif hangup.data.get("cause") == "voicemail" or last("voicemail_url"):
        outcome = CallOutcome.VOICEMAIL
    elif direction == CallDirection.INBOUND:
        outcome = CallOutcome.MISSED
    else:
        outcome = CallOutcome.NOT_ANSWERED
    fields = {
        "direction": direction,
        "from_number": base.data.get("from", ""),
        "to_number": base.data.get("to", ""),
        "number": phone_number(other or ""),
        "queue_name": last("queue"),
        "rang_at": base.at,
        "answered_at": answered_at(answer) if answer else None,
        "ended_at": hangup.at if hangup else None,
        "cause": hangup.data.get("cause", "") if hangup else "",
        "state": CallState.ENDED if hangup else CallState.ANSWERED if answer else CallState.RINGING,
        "outcome": outcome,
        "recording_url": last("recording_url"),
        "voicemail_url": last("voicemail_url"),
        "transcript": last("transcript"),
    }
    ringing = sorted({user for e in rings for user in e.data.get("users", [])})
    return Folded(
        fields=fields,
        ringing=tuple(ringing),
        # Who answered: the first answer in time that names someone (Twilio reports the queue's
        # bridge without the agent, and the agent's leg with them, at the same moment).
        answering=next(
            (
                a.data["answering_user"]
                for a in answers
                if a.data.get("answering_user") and (hangup is None or answered_at(a) <= hangup.at)
            ),
            "",
        )
        if answer
        else "",
    )


def agents_named(names: Iterable[str]) -> list[int]:
    """The ids of the active agents the telephone system names by email address or extension, in the names' order.

    Two users with one address (addresses are not unique): the one with the lowest id.
    """
    from servicedesk.accounts.models import User

    wanted = [n.strip() for n in names if n and n.strip()]
    if not wanted:
        return []
    emails = {n.lower() for n in wanted if "@" in n}
    extensions = {n for n in wanted if "@" not in n}
    # Only people who work in the desk: a customer who signs in to the portal is never the agent.
    desk_role = Exists(User.groups.through.objects.filter(user_id=OuterRef("pk"), group__name__in=ROLES))
    rows = (
        User.objects.filter(Q(is_superuser=True) | Q(desk_role), is_active=True)
        .annotate(email_key=Lower("email"))
        .filter(Q(email_key__in=emails) | Q(agent_profile__phone_extension__in=extensions))
        .order_by("pk")
        .values_list("pk", "email", "agent_profile__phone_extension")
    )
    by_name: dict[str, int] = {}
    for pk, email, extension in rows:
        if email:
            by_name.setdefault(email.lower(), pk)
        if extension:
            by_name.setdefault(extension, pk)
    found: list[int] = []
    for name in wanted:
        match = by_name.get(name.lower() if "@" in name else name)
        if match is not None and match not in found:
            found.append(match)
    return found
