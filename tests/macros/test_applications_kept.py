"""A macro application's key is kept SD_MACRO_APPLICATION_KEY_DAYS days: within them the same request
again applies nothing; afterwards the key is forgotten (hourly, oldest first, in bounded batches) and
the request applies the macro again (docs/macros.md#applying-once)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from servicedesk.macros.models import MacroApplication
from servicedesk.macros.services import macro_applications_prune, macro_apply
from servicedesk.macros.tasks import macro_applications_prune_task
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message
from tests.api.conftest import client_for

from .conftest import macro_make

NOTE = [{"type": "note", "text": "Checked."}]


def aged(key: str, days: float) -> None:
    MacroApplication.objects.filter(key=key).update(created_at=timezone.now() - timedelta(days=days))


def notes(ticket) -> int:  # type: ignore[no-untyped-def]
    return Message.objects.filter(ticket=ticket, kind="internal").count()


@pytest.mark.django_db
def test_a_key_within_its_days_applies_once_and_one_past_them_applies_again(agent, ticket):
    assert settings.SERVICEDESK["MACRO_APPLICATION_KEY_DAYS"] == 7
    macro = macro_make(agent, NOTE)
    api = client_for(agent)
    url = f"/api/v1/tickets/{ticket.reference}/macros/{macro.pk}/apply/"

    def apply(key: str) -> int:
        return api.post(url, {}, format="json", headers={"Idempotency-Key": key}).status_code

    assert (apply("old"), apply("recent")) == (200, 200)
    aged("old", 7.01)
    aged("recent", 6.99)

    assert macro_applications_prune() == 1
    assert macro_applications_prune() == 0

    assert list(MacroApplication.objects.values_list("key", flat=True)) == ["recent"]
    assert notes(ticket) == 2  # what the forgotten application did stays
    assert apply("recent") == 200 and notes(ticket) == 2  # answered from the first
    assert apply("old") == 200 and notes(ticket) == 3  # applied again


@pytest.mark.django_db
def test_keys_go_oldest_first_in_bounded_batches_and_the_setting_sets_the_days(agent, ticket, settings):
    macro = macro_make(agent, NOTE)
    actor = Actor.agent(agent, source="api")
    for n in range(5):
        macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key=f"k-{n}", request_digest="d")
        aged(f"k-{n}", 3 - n * 0.1)
    macro_apply(macro=macro, ticket=ticket, actor=actor, idempotency_key="today", request_digest="d")
    settings.SERVICEDESK = {**settings.SERVICEDESK, "MACRO_APPLICATION_KEY_DAYS": 2}

    # Two statements of two rows: the four oldest; the next run takes the fifth.
    assert macro_applications_prune(batch=2, batches=2) == 4
    assert sorted(MacroApplication.objects.values_list("key", flat=True)) == ["k-4", "today"]
    assert macro_applications_prune_task.delay().get() == 1
    assert list(MacroApplication.objects.values_list("key", flat=True)) == ["today"]
    assert macro_applications_prune(days=0) == 1


def test_it_runs_hourly_from_the_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["macros-applications-prune"]
    assert entry["task"] == macro_applications_prune_task.name == "macros.applications_prune"
    assert entry["schedule"] == timedelta(hours=1)
