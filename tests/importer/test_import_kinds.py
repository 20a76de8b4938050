"""Each kind of record, imported through the command, with the exact rows it leaves."""

from datetime import UTC, datetime

import pytest
from django.core import mail

from servicedesk.accounts.models import User
from servicedesk.core.process_cache import ProcessCached
from servicedesk.tickets.models import (
    Customer,
    Identity,
    Message,
    Organization,
    Queue,
    Rating,
    Ticket,
    TicketEvent,
    Topic,
)
from tests.importer.conftest import FIXTURES

pytestmark = pytest.mark.django_db


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def imported(import_history):
    return import_history(str(FIXTURES / "history.jsonl"))


def events(ticket: Ticket) -> list[tuple]:
    return [
        (e.kind, e.at, e.actor_user_id, e.actor_customer_id, e.before, e.after, e.source)
        for e in TicketEvent.objects.filter(ticket=ticket).order_by("at", "id")
    ]


def test_summary(imported):
    assert imported.errors == []
    assert imported.summary.startswith("18 records read, 18 applied, 0 skipped as already imported, 0 errors, in ")


def test_agents(imported):
    ann = User.objects.get(external_id="a1")
    assert (ann.username, ann.email, ann.display_name) == ("ann@corp.example", "ann@corp.example", "Ann")
    assert ann.has_usable_password() is False
    assert list(ann.groups.values_list("name", flat=True)) == ["agent"]
    # Assigned in support (T1) and started the outbound ticket in billing (T2).
    assert sorted(ann.queues.values_list("slug", flat=True)) == ["billing", "support"]
    manager = User.objects.get(external_id="m1")
    assert list(manager.groups.values_list("name", flat=True)) == ["manager"]
    assert list(manager.queues.all()) == []


def test_customers_and_identity_merge(imported):
    alice = Customer.objects.get(external_id="alice")
    c2 = Customer.objects.get(external_id="c2")
    assert (alice.name, alice.organization.name, alice.organization.tier, alice.merged_into_id) == (
        "Alice Byrne",
        "Acme",
        "vip",
        None,
    )
    assert (c2.name, c2.organization_id, c2.merged_into_id) == ("A. Byrne", None, alice.pk)
    assert sorted(Identity.objects.values_list("customer_id", "kind", "value")) == [
        (alice.pk, "email", "ab@example.net"),
        (alice.pk, "email", "alice@example.com"),
        (alice.pk, "phone", "+353861234567"),
    ]
    assert Organization.objects.count() == 1
    assert sorted(Ticket.objects.values_list("external_id", "customer_id")) == [
        ("T1", alice.pk),
        ("T2", alice.pk),
        ("T3", alice.pk),
    ]
    assert sorted(
        TicketEvent.objects.filter(kind="customer").values_list("ticket__external_id", "at", "before", "after")
    ) == [
        ("T2", at("2025-10-27T12:00:00"), {"customer": c2.pk}, {"customer": alice.pk}),
        ("T3", at("2025-10-27T12:00:00"), {"customer": c2.pk}, {"customer": alice.pk}),
    ]


def test_ticket_messages_assign_priority_rating(imported):
    t1 = Ticket.objects.get(external_id="T1")
    alice = Customer.objects.get(external_id="alice")
    ann = User.objects.get(external_id="a1")
    assert (t1.reference, t1.subject, t1.channel, t1.initiator, t1.status, t1.priority) == (
        f"SD-{t1.pk + 1000}",
        "Invoice twice",
        "email",
        "inbound",
        "solved",
        "high",
    )
    assert (t1.queue.slug, t1.topic.slug, t1.topic.name, t1.assignee_id) == ("support", "billing", "Billing", ann.pk)
    assert (t1.created_at, t1.updated_at, t1.first_reply_at, t1.solved_at) == (
        # The rating the next morning is the ticket's latest change.
        at("2025-10-24T15:30:00"),
        at("2025-10-25T09:00:00"),
        at("2025-10-24T16:30:00"),
        at("2025-10-24T16:30:00"),
    )
    assert events(t1) == [
        (
            "created",
            at("2025-10-24T15:30:00"),
            None,
            alice.pk,
            None,
            {
                "status": "new",
                "priority": "normal",
                "channel": "email",
                "initiator": "inbound",
                "queue": "support",
                "topic": "billing",
                "assignee": None,
            },
            "import",
        ),
        (
            "message",
            at("2025-10-24T15:30:00"),
            None,
            alice.pk,
            None,
            {"kind": "public_enduser", "channel": "email", "automatic": False},
            "import",
        ),
        ("assignee", at("2025-10-24T15:40:00"), None, None, None, ann.pk, "import"),
        ("message", at("2025-10-24T16:00:00"), ann.pk, None, None, {"kind": "internal", "channel": "email"}, "import"),
        ("priority", at("2025-10-24T16:05:00"), None, None, "normal", "high", "import"),
        (
            "message",
            at("2025-10-24T16:30:00"),
            ann.pk,
            None,
            None,
            {"kind": "public_agent", "channel": "email"},
            "import",
        ),
        ("status", at("2025-10-24T16:30:00"), ann.pk, None, "new", "solved", "import"),
        ("rating", at("2025-10-25T09:00:00"), None, alice.pk, None, {"score": 5}, "import"),
    ]
    assert list(
        Message.objects.filter(ticket=t1).values_list(
            "kind",
            "channel",
            "external_id",
            "author_user_id",
            "author_customer_id",
            "created_at",
            "text",
            "delivery_status",
            "purpose",
        )
    ) == [
        (
            "public_enduser",
            "email",
            "import:m-1",
            None,
            alice.pk,
            at("2025-10-24T15:30:00"),
            "I was charged twice.",
            "",
            "",
        ),
        ("internal", "email", "import:m-2", ann.pk, None, at("2025-10-24T16:00:00"), "Checking the ledger.", "", ""),
        ("public_agent", "email", "import:m-3", ann.pk, None, at("2025-10-24T16:30:00"), "Refunded.", "", ""),
    ]
    assert list(Rating.objects.values_list("ticket_id", "score", "comment", "at", "external_key")) == [
        (t1.pk, 5, "Quick!", at("2025-10-25T09:00:00"), f"import:{t1.pk}:2025-10-25T09:00:00+00:00"),
    ]


def test_outbound_ticket_system_message_and_status(imported):
    t1 = Ticket.objects.get(external_id="T1")
    t2 = Ticket.objects.get(external_id="T2")
    ann = User.objects.get(external_id="a1")
    manager = User.objects.get(external_id="m1")
    assert (t2.channel, t2.initiator, t2.status, t2.queue.slug, t2.topic_id, t2.same_issue_as_id) == (
        "phone",
        "outbound",
        "pending",
        "billing",
        None,
        t1.pk,
    )
    assert Queue.objects.get(slug="billing").name == "Billing"
    assert [e[:7] for e in events(t2)][:3] == [
        (
            "created",
            at("2025-10-26T08:00:00"),
            ann.pk,
            None,
            None,
            {
                "status": "new",
                "priority": "normal",
                "channel": "phone",
                "initiator": "outbound",
                "queue": "billing",
                "topic": None,
                "assignee": None,
            },
            "import",
        ),
        ("message", at("2025-10-26T08:00:00"), None, None, None, {"kind": "system", "channel": "phone"}, "import"),
        ("status", at("2025-10-26T08:10:00"), manager.pk, None, "new", "pending", "import"),
    ]
    assert list(Message.objects.filter(ticket=t2).values_list("kind", "author_user_id", "author_customer_id")) == [
        ("system", None, None),
    ]
    assert t2.first_reply_at is None


def test_merge(imported):
    t2 = Ticket.objects.get(external_id="T2")
    t3 = Ticket.objects.get(external_id="T3")
    c2 = Customer.objects.get(external_id="c2")
    assert (t3.status, t3.merged_into_id, t3.solved_at, t3.is_spam, t3.is_deleted, t3.queue.slug) == (
        "closed",
        t2.pk,
        at("2025-10-26T10:00:00"),
        False,
        False,
        "support",
    )
    assert [(e[0], e[1], e[3], e[4], e[5]) for e in events(t3)][:5] == [
        (
            "created",
            at("2025-10-26T09:00:00"),
            c2.pk,
            None,
            {
                "status": "new",
                "priority": "normal",
                "channel": "web",
                "initiator": "inbound",
                "queue": "support",
                "topic": None,
                "assignee": None,
            },
        ),
        (
            "message",
            at("2025-10-26T09:00:00"),
            c2.pk,
            None,
            {"kind": "public_enduser", "channel": "web", "automatic": False},
        ),
        ("status", at("2025-10-26T09:00:00"), c2.pk, "new", "open"),
        ("status", at("2025-10-26T10:00:00"), None, "open", "closed"),
        ("merged", at("2025-10-26T10:00:00"), None, None, merge_record(f"SD-{t2.pk + 1000}")),
    ]
    assert list(TicketEvent.objects.filter(ticket=t2, kind="merged_in").values_list("at", "after")) == [
        (at("2025-10-26T10:00:00"), merge_record(f"SD-{t3.pk + 1000}")),
    ]


def merge_record(reference: str) -> dict:
    """A merge event's record: the other ticket and what moved (an imported merge moves nothing:
    the history places every message itself)."""
    moved = ("attachments", "followers", "mentions", "messages", "notes", "sessions", "tags")
    return {"reference": reference, **{name: [] for name in moved}}


def test_no_mail_no_acknowledgement_no_tasks(import_history, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        import_history(str(FIXTURES / "history.jsonl"))
    # The only work after commit: telling other processes that the imported queues changed.
    assert [c for c in callbacks if not isinstance(getattr(c, "__self__", None), ProcessCached)] == []
    assert mail.outbox == []
    assert Message.objects.filter(purpose="acknowledgement").count() == 0
    assert Message.objects.exclude(delivery_status="").count() == 0
    assert TicketEvent.objects.filter(kind__in=["acknowledged", "delivery"]).count() == 0


def test_topics_and_queues_created_once(imported):
    assert list(Topic.objects.values_list("slug", "name")) == [("billing", "Billing")]
    assert sorted(Queue.objects.values_list("slug", flat=True)) == ["billing", "support"]
