"""A call's events sent at the same moment, several times over, on PostgreSQL: one call, each event once."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.phone.models import Call, CallEvent, CallOutcome, PhoneLine
from channels_app.phone.services import CallEventIn, call_event_receive
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Session
from tests.concurrency import run_at_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

CALLER = "+353861234567"


def event(kind: str, seconds: int, **extra) -> CallEventIn:  # type: ignore[no-untyped-def]
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1) + timedelta(seconds=seconds)
    sent = {"event": kind, "call_id": "race", "at": at.isoformat(), **extra}
    return CallEventIn(
        kind=kind,
        call_id="race",
        direction="in",
        from_number=CALLER if kind == "newCall" else "",
        to_number="+35312345678" if kind == "newCall" else "",
        at=at,
        sent=sent,
        cause=extra.get("cause", ""),
    )


def test_events_of_a_new_call_arriving_together_make_one_call_one_caller_and_each_event_once():
    line = PhoneLine.objects.create(key="default", name="Default line")
    events = [event("newCall", 0), event("hangup", 45, cause="cancel")]
    # Eight requests at once: each event four times, the call not yet known to any of them.
    stream = list(itertools.islice(itertools.cycle(events), 8))
    results = run_at_once(len(stream), lambda i: call_event_receive(line=line, event=stream[i]))
    assert sorted(r.duplicate for r in results) == [False, False] + [True] * 6
    call = Call.objects.get()
    assert (call.outcome, call.ended_at - call.rang_at) == (CallOutcome.MISSED, timedelta(seconds=45))
    assert CallEvent.objects.count() == 2
    assert Identity.objects.filter(kind=IdentityKind.PHONE, value=CALLER).count() == 1
    assert Customer.objects.count() == 1 and Session.objects.count() == 1
