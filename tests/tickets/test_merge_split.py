"""Merging a duplicate into another ticket and splitting a message off (services/merging.py, docs/merging.md):
what moves, the events, refusals with nothing written, idempotency, two merges at once, mail threading
after a merge through the real intake, the customer told, the API, and the reports' duplicate counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Attachment, Message, Session, Ticket, TicketEvent, TicketFollower
from servicedesk.tickets.services.followups import ticket_follow
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.merging import InvalidSplit, ticket_merge_preview, ticket_split
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import InvalidMerge, ticket_merge, ticket_tags_set
from tests.api.conftest import client_for
from tests.concurrency import run_at_once
from tests.factories import AgentFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def inbound(**kwargs) -> InboundMessage:  # type: ignore[no-untyped-def]
    defaults = dict(
        channel="email",
        external_id=str(uuid.uuid4()),
        sender=SenderIdentity("email", "ada@example.net", "Ada Lind"),
        subject="Invoice twice",
        text="I was charged twice.",
    )
    defaults.update(kwargs)
    return InboundMessage(**defaults)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def pair(queue, agent):  # type: ignore[no-untyped-def]
    """Ada's first mail (with a PDF, a reply and a note) and her second mail, an hour later."""
    source = inbound_message_receive(
        inbound=inbound(
            rfc_message_id="<first@example.com>",
            received_at=h(0),
            attachments=(InboundAttachment("invoice.pdf", "application/pdf", PDF),),
        )
    ).ticket
    ticket_reply_create(ticket=source, author=agent, text="Looking into it.", at=h(0.5), deliver=False)
    ticket_note_create(ticket=source, author=agent, text="Checked the ledger.", at=h(0.6))
    target = inbound_message_receive(inbound=inbound(subject="Charged twice again", received_at=h(1))).ticket
    source.refresh_from_db()
    target.refresh_from_db()
    return source, target


def thread(ticket: Ticket) -> list[tuple[str, str]]:
    return list(Message.objects.filter(ticket=ticket).order_by("created_at", "id").values_list("kind", "text"))


# --- Merge ------------------------------------------------------------------------------------


def test_merge_moves_the_conversation_into_the_target_in_time_order(pair, agent):
    source, target = pair
    ticket_tags_set(ticket=source, tags=["billing", "refund"], actor=Actor.agent(agent), at=h(1.1))
    ticket_tags_set(ticket=target, tags=["billing"], actor=Actor.agent(agent), at=h(1.1))
    ticket_follow(ticket=source, user=agent, at=h(1.2))
    session = Session.objects.create(channel="chat", customer=source.customer, ticket=source, requested_at=h(0))
    moved_ids = sorted(
        Message.objects.filter(ticket=source).exclude(purpose="acknowledgement").values_list("pk", flat=True)
    )
    attachment = Attachment.objects.get(ticket=source)

    ticket_merge(source=source, target=target, actor=Actor.agent(agent), at=h(2))

    source.refresh_from_db()
    target.refresh_from_db()
    texts = [text for _kind, text in thread(target) if _kind != "system"]
    assert texts == ["I was charged twice.", "Looking into it.", "Checked the ledger.", "I was charged twice."]
    assert (source.status, source.merged_into_id) == ("closed", target.pk)
    assert not Message.objects.filter(ticket=source).exclude(purpose="acknowledgement").exists()
    attachment.refresh_from_db()
    assert attachment.ticket_id == target.pk and attachment.message.ticket_id == target.pk
    session.refresh_from_db()
    assert session.ticket_id == target.pk
    assert sorted(target.tags.values_list("name", flat=True)) == ["billing", "refund"]
    assert TicketFollower.objects.filter(ticket=target, user=agent).exists()
    assert target.first_reply_at == h(0.5)

    merged = TicketEvent.objects.get(ticket=source, kind="merged")
    merged_in = TicketEvent.objects.get(ticket=target, kind="merged_in")
    assert merged.after["reference"] == target.reference and merged_in.after["reference"] == source.reference
    assert sorted(merged.after["messages"] + merged.after["notes"]) == moved_ids
    assert merged.after["attachments"] == [attachment.pk]
    assert merged.after["sessions"] == [session.pk]
    assert merged.after["tags"] == ["refund"] and merged.after["followers"] == [agent.pk]
    assert {**merged_in.after, "reference": None} == {**merged.after, "reference": None}
    assert (merged.at, merged_in.at) == (h(2), h(2))


def test_merge_is_idempotent_for_the_same_pair(pair, agent):
    source, target = pair
    ticket_merge(source=source, target=target, actor=Actor.agent(agent), at=h(2))
    events = TicketEvent.objects.count()
    messages = thread(target)

    again = ticket_merge(source=source, target=target, actor=Actor.agent(agent), at=h(3))

    assert again.pk == target.pk
    assert TicketEvent.objects.count() == events
    assert thread(target) == messages


@pytest.mark.parametrize("case", ["itself", "other_customer", "already_merged", "target_merged", "target_deleted"])
def test_merge_refusals_write_nothing(pair, agent, manager, case):
    from servicedesk.tickets.services.tickets import ticket_delete_set

    source, target = pair
    other = inbound_message_receive(inbound=inbound(sender=SenderIdentity("email", "bob@example.com", "Bob"))).ticket
    third = inbound_message_receive(inbound=inbound(subject="Third")).ticket
    if case == "already_merged":
        ticket_merge(source=source, target=third, actor=Actor.agent(agent))
    if case == "target_merged":
        ticket_merge(source=target, target=third, actor=Actor.agent(agent))
    if case == "target_deleted":
        ticket_delete_set(ticket=target, deleted=True, actor=Actor.agent(manager))
    source.refresh_from_db()
    target.refresh_from_db()
    events, messages = TicketEvent.objects.count(), sorted(Message.objects.values_list("pk", "ticket_id"))
    into = {"itself": source, "other_customer": other}.get(case, target)

    with pytest.raises(InvalidMerge) as refused:
        ticket_merge(source=source, target=into, actor=Actor.agent(agent))

    assert refused.value.field == "target"
    assert TicketEvent.objects.count() == events
    assert sorted(Message.objects.values_list("pk", "ticket_id")) == messages


def test_preview_lists_what_would_move_and_writes_nothing(pair):
    source, target = pair
    events = TicketEvent.objects.count()

    preview = ticket_merge_preview(source=source, target=target)

    assert [m.text for m in preview.thread if m.kind != "system"] == [
        "I was charged twice.",
        "Looking into it.",
        "Checked the ledger.",
    ]
    assert [a.filename for a in preview.attachments] == ["invoice.pdf"]
    assert len(preview.moves.notes) == 1
    assert TicketEvent.objects.count() == events
    assert Message.objects.filter(ticket=source).count() == 4


def test_telling_the_customer_sends_a_reply_in_the_target_thread_by_email(
    pair, agent, django_capture_on_commit_callbacks
):
    source, target = pair
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        ticket_merge(source=source, target=target, actor=Actor.agent(agent), notify_customer=True)

    notice = Message.objects.filter(ticket=target, kind="public_agent").order_by("-id").first()
    assert notice is not None and source.reference in notice.text and target.reference in notice.text
    assert notice.author_user_id == agent.pk
    assert [m.to for m in mail.outbox] == [["Ada Lind <ada@example.net>"]]
    assert target.reference in mail.outbox[0].subject


def test_the_notice_is_in_the_customers_language(pair):
    from django.utils import translation

    from servicedesk.tickets.services.merging import merge_notice_text

    source, target = pair
    target.language = "zh-hans"
    with translation.override("zh-hans"):
        expected = translation.gettext(
            "Your request %(source)s was about the same matter as this one, so we have combined them: "
            "we will continue here, under %(target)s. You do not need to do anything."
        ) % {"source": source.reference, "target": target.reference}
    assert merge_notice_text(target, source_reference=source.reference) == expected


# --- Mail threading after a merge, through the intake -----------------------------------------


@pytest.mark.parametrize("hint", ["thread_key", "subject_tag"])
def test_a_reply_to_the_old_thread_lands_on_the_target(pair, agent, hint):
    source, target = pair
    ticket_merge(source=source, target=target, actor=Actor.agent(agent), at=h(2))
    hints = {
        "thread_key": {"thread_keys": ("<first@example.com>",)},
        "subject_tag": {"ticket_reference": source.reference},
    }[hint]

    result = inbound_message_receive(inbound=inbound(text="Any news?", received_at=h(3), **hints))

    assert (result.outcome, result.ticket.pk) == (IntakeOutcome.APPENDED, target.pk)
    assert [text for kind, text in thread(target) if kind == "public_enduser"][-1] == "Any news?"


# --- Two merges at once ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_two_merges_at_once_in_opposite_directions_neither_deadlock_nor_cycle(queue, agent):
    first = inbound_message_receive(inbound=inbound()).ticket
    second = inbound_message_receive(inbound=inbound(subject="Again")).ticket

    def merge(i: int) -> str:
        source, target = (first, second) if i == 0 else (second, first)
        try:
            ticket_merge(source=source, target=target, actor=Actor.agent(agent))
        except InvalidMerge:
            return "refused"
        return "merged"

    outcomes = run_at_once(2, merge)

    assert sorted(outcomes) == ["merged", "refused"]
    first.refresh_from_db()
    second.refresh_from_db()
    merged = [t for t in (first, second) if t.merged_into_id]
    assert len(merged) == 1
    live = second if merged[0] == first else first
    assert live.merged_into_id is None
    assert TicketEvent.objects.filter(kind="merged").count() == 1
    assert Message.objects.filter(ticket=merged[0], kind="public_enduser").count() == 0
    assert Message.objects.filter(ticket=live, kind="public_enduser").count() == 2


# --- Split ---------------------------------------------------------------------------------------


@pytest.fixture
def two_messages(queue, agent):  # type: ignore[no-untyped-def]
    first = inbound_message_receive(inbound=inbound(received_at=h(0)))
    second = inbound_message_receive(
        inbound=inbound(
            text="Also: my password reset mail never came.\nThanks",
            ticket_reference=first.ticket.reference,
            received_at=h(1),
            attachments=(InboundAttachment("screen.pdf", "application/pdf", PDF),),
        )
    )
    assert second.ticket.pk == first.ticket.pk
    return first.ticket, second.message


def test_split_moves_the_message_and_its_attachments_to_a_new_ticket(two_messages, agent):
    ticket, message = two_messages
    attachment = Attachment.objects.get(message=message)

    new = ticket_split(ticket=ticket, message=message, actor=Actor.agent(agent), at=h(2))

    assert new.pk != ticket.pk
    assert (new.customer_id, new.queue_id, new.status) == (ticket.customer_id, ticket.queue_id, "new")
    assert new.subject == "Also: my password reset mail never came."
    assert thread(new) == [("public_enduser", message.text)]
    assert [text for kind, text in thread(ticket) if kind == "public_enduser"] == ["I was charged twice."]
    attachment.refresh_from_db()
    assert attachment.ticket_id == new.pk
    split = TicketEvent.objects.get(ticket=ticket, kind="split")
    split_from = TicketEvent.objects.get(ticket=new, kind="split_from")
    assert split.after == {"reference": new.reference, "message": message.pk, "attachments": [attachment.pk]}
    assert split_from.before == {"reference": ticket.reference, "message": message.pk, "attachments": [attachment.pk]}
    assert split.message_id == split_from.message_id == message.pk


def test_split_with_a_typed_subject_and_another_queue_and_twice_is_once(two_messages, agent):
    ticket, message = two_messages
    billing = QueueFactory(slug="billing", name="Billing")

    new = ticket_split(
        ticket=ticket, message=message, actor=Actor.agent(agent), subject="Password reset", queue=billing
    )
    again = ticket_split(ticket=ticket, message=message, actor=Actor.agent(agent), subject="Other")

    assert again.pk == new.pk
    assert (new.subject, new.queue_id) == ("Password reset", billing.pk)
    assert TicketEvent.objects.filter(kind="split").count() == 1
    assert Ticket.objects.count() == 2


@pytest.mark.parametrize("case", ["only_message", "agent_reply", "note"])
def test_split_refusals_write_nothing(queue, agent, case):
    ticket = inbound_message_receive(inbound=inbound()).ticket
    message = Message.objects.get(ticket=ticket, kind="public_enduser")
    if case == "agent_reply":
        message = ticket_reply_create(ticket=ticket, author=agent, text="Hello", deliver=False)
    if case == "note":
        message = ticket_note_create(ticket=ticket, author=agent, text="Hm")
    tickets, events = Ticket.objects.count(), TicketEvent.objects.count()

    with pytest.raises(InvalidSplit) as refused:
        ticket_split(ticket=ticket, message=message, actor=Actor.agent(agent))

    assert refused.value.field == "message"
    assert (Ticket.objects.count(), TicketEvent.objects.count()) == (tickets, events)
    message.refresh_from_db()
    assert message.ticket_id == ticket.pk


# --- API ----------------------------------------------------------------------------------------------


def test_api_merge_and_the_old_reference(pair, agent):
    source, target = pair
    api = client_for(agent)

    answer = api.post(
        f"/api/v1/tickets/{source.reference}/merge/",
        {"target": target.reference, "notify_customer": False},
        format="json",
    )
    repeat = api.post(f"/api/v1/tickets/{source.reference}/merge/", {"target": target.reference}, format="json")
    old = api.get(f"/api/v1/tickets/{source.reference}/")

    assert answer.status_code == 200 and answer.json()["reference"] == target.reference
    assert repeat.status_code == 200 and repeat.json()["reference"] == target.reference
    assert (old.status_code, old.json()["merged_into"], old.json()["status"]) == (200, target.reference, "closed")
    assert TicketEvent.objects.filter(kind="merged").count() == 1


def test_api_merge_refusals_and_hidden_tickets(pair, agent, manager):
    source, target = pair
    api = client_for(agent)
    billing = QueueFactory(slug="billing", name="Billing")
    hidden = inbound_message_receive(inbound=inbound(subject="Elsewhere", queue=billing.slug)).ticket
    assert hidden.queue_id == billing.pk

    itself = api.post(f"/api/v1/tickets/{source.reference}/merge/", {"target": source.reference}, format="json")
    missing = api.post(f"/api/v1/tickets/{source.reference}/merge/", {}, format="json")
    bad_flag = api.post(
        f"/api/v1/tickets/{source.reference}/merge/",
        {"target": target.reference, "notify_customer": "maybe"},
        format="json",
    )
    into_hidden = api.post(f"/api/v1/tickets/{source.reference}/merge/", {"target": hidden.reference}, format="json")
    from_hidden = api.post(f"/api/v1/tickets/{hidden.reference}/merge/", {"target": target.reference}, format="json")

    assert (itself.status_code, list(itself.json())) == (400, ["detail", "target"])
    assert missing.status_code == 400 and "target" in missing.json()
    assert bad_flag.status_code == 400 and "notify_customer" in bad_flag.json()
    assert into_hidden.status_code == 400 and "target" in into_hidden.json()
    assert from_hidden.status_code == 404
    assert not TicketEvent.objects.filter(kind__in=["merged", "merged_in"]).exists()


def test_api_split(two_messages, agent):
    ticket, message = two_messages
    api = client_for(agent)
    url = f"/api/v1/tickets/{ticket.reference}/messages/{message.pk}/split/"

    answer = api.post(url, {"subject": "Password reset"}, format="json")

    assert answer.status_code == 201
    new = Ticket.objects.get(reference=answer.json()["reference"])
    assert (new.subject, Message.objects.get(pk=message.pk).ticket_id) == ("Password reset", new.pk)
    first = Message.objects.get(ticket=ticket, kind="public_enduser")
    only = api.post(f"/api/v1/tickets/{ticket.reference}/messages/{first.pk}/split/", {}, format="json")
    assert only.status_code == 400 and "message" in only.json()
    assert api.post(f"/api/v1/tickets/{ticket.reference}/messages/999999/split/", {}, format="json").status_code == 404
    # The customer sees the ticket but does not split it; an agent of another queue does not see it.
    user = UserFactory(username="ada")
    ticket.customer.user = user
    ticket.customer.save(update_fields=["user"])
    second = inbound_message_receive(inbound=inbound(text="Third thing", ticket_reference=ticket.reference)).message
    url = f"/api/v1/tickets/{ticket.reference}/messages/{second.pk}/split/"
    assert client_for(user).post(url, {}, format="json").status_code == 403
    outsider = AgentFactory(username="bea", queues=[QueueFactory(slug="billing", name="Billing")])
    assert client_for(outsider).post(url, {}, format="json").status_code == 404
    assert Message.objects.get(pk=second.pk).ticket_id == ticket.pk


def test_the_schema_lists_merge_and_split(agent):
    schema = client_for(agent).get("/api/schema/", {"format": "json"})
    paths = schema.json()["paths"]
    assert "/api/v1/tickets/{reference}/merge/" in paths
    assert "/api/v1/tickets/{reference}/messages/{message_id}/split/" in paths


# --- Reports --------------------------------------------------------------------------------------------


def test_reports_count_a_duplicate_merged_before_the_first_reply_as_none_and_after_as_a_repeat(queue, agent):
    """docs/metrics.md#repeat-contact: merged in before the first reply is no repeat; after it, one."""
    from tests.reports.quality_reference import fcr_figures

    def case(merge_at: float) -> tuple[int, int]:
        customer_address = f"{uuid.uuid4().hex}@example.com"
        sender = SenderIdentity("email", customer_address, "C")
        target = inbound_message_receive(inbound=inbound(sender=sender, received_at=h(0))).ticket
        duplicate = inbound_message_receive(inbound=inbound(sender=sender, subject="Dup", received_at=h(0.5))).ticket
        if merge_at < 1:
            ticket_merge(source=duplicate, target=target, actor=Actor.agent(agent), at=h(merge_at))
        ticket_reply_create(ticket=target, author=agent, text="Done.", at=h(1), status="solved", deliver=False)
        if merge_at >= 1:
            ticket_merge(source=duplicate, target=target, actor=Actor.agent(agent), at=h(merge_at))
        figures = fcr_figures(Ticket.objects.filter(pk=target.pk), as_of=h(200))[None]
        return figures["success"], figures["eligible"]

    assert case(0.75) == (1, 1)
    assert case(2) == (0, 1)
