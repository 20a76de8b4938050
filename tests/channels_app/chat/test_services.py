"""Chat services on PostgreSQL: start (waiting or offline), lines, accept, transfer, end, wrap-up, rating."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from channels_app.chat import routing, services
from channels_app.chat.models import ChatConversation, ChatLine, ChatStatus
from servicedesk.core.errors import ApplicationError, PermissionDenied
from servicedesk.routing.models import AgentProfile, Availability
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import (
    AgentPresence,
    DeliveryStatus,
    Message,
    MessageKind,
    Rating,
    Session,
    Survey,
    Ticket,
)
from servicedesk.tickets.services.tickets import ticket_merge
from tests.factories import CustomerFactory, QueueFactory, ticket_make

from .helpers import chat_agent, start, widget_make

pytestmark = pytest.mark.django_db


def test_a_chat_with_an_agent_online_waits_and_is_offered_to_them(django_capture_on_commit_callbacks):
    widget = widget_make()
    agent = chat_agent(widget.queue)
    with django_capture_on_commit_callbacks(execute=True):
        started = start(widget)
    conversation = ChatConversation.objects.get(pk=started.conversation.pk)
    assert conversation.status == ChatStatus.WAITING
    assert conversation.offered_to_id == agent.pk
    assert conversation.offer_expires_at is not None
    ticket = conversation.ticket
    assert ticket.channel == "chat" and ticket.queue_id == widget.queue_id
    # Not assigned by ticket routing: the agent who accepts takes it.
    assert ticket.assignee_id is None
    session = Session.objects.get(pk=conversation.session_id)
    assert session.channel == "chat" and session.answered_at is None and session.abandoned_at is None
    line = ChatLine.objects.get(conversation=conversation)
    assert (line.seq, line.author, line.message.text) == (1, "visitor", "Hello, my order is late")
    assert line.message.ticket_id == ticket.pk and line.message.channel == "chat"
    # No acknowledgement: the visitor is talking to us live.
    assert not Message.objects.filter(ticket=ticket, purpose=Message.Purpose.ACKNOWLEDGEMENT).exists()
    # The token is stored only as its hash.
    assert started.token not in conversation.token_hash
    assert services.conversation_for_token(started.token).pk == conversation.pk


def test_nobody_online_makes_an_offline_ticket_acknowledged_at_the_given_address():
    widget = widget_make()
    started = start(widget, email="olga@example.com")
    conversation = started.conversation
    assert conversation.status == ChatStatus.OFFLINE
    assert conversation.session_id is None
    ack = Message.objects.get(ticket=conversation.ticket, purpose=Message.Purpose.ACKNOWLEDGEMENT)
    assert ack.delivery_status == "queued"
    lines = list(ChatLine.objects.filter(conversation=conversation).values_list("author", "notice"))
    assert lines == [("visitor", ""), ("system", "offline")]
    # The address is a claim: no identity of the visitor's record.
    assert not conversation.customer.identities.filter(kind="email").exists()


def test_offline_needs_an_address_even_when_the_widget_does_not():
    widget = widget_make(email_required=False)
    with pytest.raises(ApplicationError) as refused:
        start(widget, email="")
    assert refused.value.field == "email"
    assert not ChatConversation.objects.exists() and not Message.objects.exists()


def test_a_full_queue_and_closed_hours_offer_the_offline_form():
    widget = widget_make(max_queue_length=1)
    chat_agent(widget.queue)
    assert start(widget).conversation.status == ChatStatus.WAITING
    assert start(widget).conversation.status == ChatStatus.OFFLINE
    assert services.offline_reason(widget, timezone.now()) == "queue_full"


def test_an_agent_whose_desk_went_quiet_gets_no_chat():
    widget = widget_make()
    chat_agent(widget.queue, at=timezone.now() - timedelta(minutes=5))
    assert start(widget).conversation.status == ChatStatus.OFFLINE


def test_the_same_client_id_is_stored_once_and_lines_are_numbered():
    widget = widget_make()
    chat_agent(widget.queue)
    conversation = start(widget).conversation
    client_id = uuid.uuid4()
    first, new = services.chat_visitor_message(conversation_id=conversation.pk, client_id=client_id, text="one")
    again, new_again = services.chat_visitor_message(conversation_id=conversation.pk, client_id=client_id, text="one")
    assert (first.seq, new) == (2, True)
    assert (again.pk, new_again) == (first.pk, False)
    assert Message.objects.filter(ticket=conversation.ticket, kind=MessageKind.PUBLIC_ENDUSER).count() == 2


def test_a_ping_tells_the_last_line_and_the_status_and_a_gone_chat_as_ended():
    widget = widget_make()
    chat_agent(widget.queue)
    conversation = start(widget).conversation
    assert services.visitor_ping(conversation.pk, seen=False) == (1, ChatStatus.WAITING)
    services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="two")
    assert services.visitor_ping(conversation.pk, seen=True) == (2, ChatStatus.WAITING)
    ChatConversation.objects.filter(pk=conversation.pk).update(status=ChatStatus.ENDED)
    assert services.visitor_ping(conversation.pk, seen=False) == (2, ChatStatus.ENDED)
    assert services.visitor_ping(conversation.pk + 1000, seen=False) == (0, ChatStatus.ENDED)


def test_a_line_after_the_ticket_was_merged_joins_the_ticket_it_was_merged_into():
    widget = widget_make()
    agent = chat_agent(widget.queue)
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    source = conversation.ticket
    target = ticket_make(customer=source.customer, queue=widget.queue, subject="Earlier order", channel="email")
    ticket_merge(source=source, target=target, actor=Actor.agent(agent))

    line, new = services.chat_visitor_message(
        conversation_id=conversation.pk, client_id=uuid.uuid4(), text="Still there?"
    )

    assert new and line.message.ticket_id == target.pk
    assert line.message.author_customer_id == conversation.customer_id
    assert not Message.objects.filter(ticket=source, text="Still there?").exists()


def test_a_line_from_a_visitor_no_longer_the_tickets_customer_is_stored_as_theirs():
    """The ticket moved to another customer during the chat: the line is the visitor's,
    looked up by their identity, never filed as the new customer's."""
    widget = widget_make()
    agent = chat_agent(widget.queue)
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    other = CustomerFactory(name="Someone Else")
    Ticket.objects.filter(pk=conversation.ticket_id).update(customer=other)

    line, new = services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="Hello?")

    assert new and line.message.author_customer_id == conversation.customer_id != other.pk


def test_a_repeated_start_is_refused_and_stores_nothing_more():
    widget = widget_make()
    chat_agent(widget.queue)
    client_id = uuid.uuid4()
    start(widget, client_id=client_id)
    with pytest.raises(ApplicationError) as refused:
        start(widget, client_id=client_id)
    assert refused.value.status_code == 409
    assert ChatConversation.objects.count() == 1 and Message.objects.filter(kind="public_enduser").count() == 1


def test_accept_answers_assigns_and_says_who_joined():
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    conversation = start(widget).conversation
    accepted = services.chat_accept(conversation_id=conversation.pk, agent=agent)
    assert accepted.status == ChatStatus.ACTIVE
    session = Session.objects.get(pk=conversation.session_id)
    assert session.answered_at is not None and session.agent_id == agent.pk
    conversation.ticket.refresh_from_db()
    assert conversation.ticket.assignee_id == agent.pk
    line = ChatLine.objects.get(conversation=conversation, seq=2)
    assert line.notice == "joined" and line.notice_args == {"name": services.agent_display_name(agent)}
    second = chat_agent(widget.queue, username="bob")
    with pytest.raises(services.ChatTaken):
        services.chat_accept(conversation_id=conversation.pk, agent=second)


@pytest.mark.django_db(transaction=True)
def test_two_agents_accepting_at_once_exactly_one_wins():
    widget = widget_make()
    agents = [chat_agent(widget.queue, username=f"agent{i}") for i in range(2)]
    conversation = start(widget).conversation
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept(agent) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            services.chat_accept(conversation_id=conversation.pk, agent=agent)
            outcomes.append("won")
        except services.ChatTaken:
            outcomes.append("taken")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=accept, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["taken", "won"]
    conversation.refresh_from_db()
    assert conversation.agent_id in {a.pk for a in agents}
    assert ChatLine.objects.filter(conversation=conversation, notice="joined").count() == 1


def test_capacity_is_kept_on_accept():
    widget = widget_make()
    agent = chat_agent(widget.queue, capacity=1)
    first = start(widget).conversation
    second = start(widget).conversation
    services.chat_accept(conversation_id=first.pk, agent=agent)
    with pytest.raises(services.AtCapacity):
        services.chat_accept(conversation_id=second.pk, agent=agent)


def test_agent_lines_are_kept_on_the_ticket_and_never_mailed():
    widget = widget_make()
    agent = chat_agent(widget.queue)
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    line, new = services.chat_agent_message(conversation_id=conversation.pk, agent=agent, text="On it!")
    assert new and line.seq == 3 and line.author == "agent"
    assert line.message.kind == MessageKind.PUBLIC_AGENT and line.message.delivery_status == DeliveryStatus.NONE
    conversation.ticket.refresh_from_db()
    assert conversation.ticket.first_reply_at is not None
    other = chat_agent(widget.queue, username="nosy")
    with pytest.raises(PermissionDenied):
        services.chat_agent_message(conversation_id=conversation.pk, agent=other, text="me too")


def test_an_offer_not_taken_in_time_moves_on_and_sets_the_first_agent_away():
    widget = widget_make(offer_timeout_seconds=30)
    now = timezone.now()
    ann = chat_agent(widget.queue, username="ann", at=now)
    bob = chat_agent(widget.queue, username="bob", at=now)
    conversation = start(widget, at=now).conversation
    routing.chat_offers_dispatch(at=now)
    conversation.refresh_from_db()
    first = conversation.offered_to_id
    assert first in (ann.pk, bob.pk)
    later = now + timedelta(seconds=31)
    AgentProfile.objects.update(seen_at=later)
    counts = routing.chat_tick(at=later)
    assert counts["expired"] == 1 and counts["offered"] == 1
    conversation.refresh_from_db()
    assert conversation.offered_to_id not in (None, first)
    assert AgentProfile.objects.get(user_id=first).availability == Availability.AWAY
    assert AgentPresence.objects.filter(agent_id=first, state="not_ready").exists()


def test_higher_tiers_and_longer_waits_are_offered_first():
    from servicedesk.tickets.models import Identity
    from tests.factories import OrganizationFactory

    widget = widget_make()
    now = timezone.now()
    agent = chat_agent(widget.queue, capacity=1, at=now)
    first = start(widget, at=now - timedelta(seconds=20), email="a@example.com").conversation
    vip_customer = CustomerFactory(email="boss@example.com", organization=OrganizationFactory(tier="enterprise"))
    later = start(widget, at=now - timedelta(seconds=10), email="boss@example.com").conversation
    ChatConversation.objects.filter(pk=later.pk).update(customer=vip_customer)
    assert Identity.objects.filter(value="boss@example.com").exists()
    assert routing.chat_offers_dispatch(at=now) == 1
    later.refresh_from_db()
    first.refresh_from_db()
    assert later.offered_to_id == agent.pk and first.offered_to_id is None


def test_a_visitor_gone_longer_than_the_grace_abandoned_just_then():
    widget = widget_make(abandon_grace_seconds=30)
    now = timezone.now()
    chat_agent(widget.queue, at=now)
    conversation = start(widget, at=now).conversation
    left = now + timedelta(seconds=4)
    services.visitor_left(conversation.pk, at=left)
    routing.chat_tick(at=left + timedelta(seconds=29))
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.WAITING
    routing.chat_tick(at=left + timedelta(seconds=31))
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.ABANDONED
    session = Session.objects.get(pk=conversation.session_id)
    assert session.abandoned_at == left and session.answered_at is None


def test_a_visitor_back_within_the_grace_keeps_their_place():
    widget = widget_make(abandon_grace_seconds=30)
    now = timezone.now()
    chat_agent(widget.queue, at=now)
    conversation = start(widget, at=now).conversation
    services.visitor_left(conversation.pk, at=now + timedelta(seconds=5))
    services.visitor_seen(conversation.pk, at=now + timedelta(seconds=20))
    routing.chat_tick(at=now + timedelta(seconds=45))
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.WAITING


def test_end_and_wrap_up_record_the_handle_time():
    widget = widget_make()
    agent = chat_agent(widget.queue)
    now = timezone.now()
    conversation = start(widget, at=now).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent, at=now + timedelta(seconds=12))
    services.chat_end(conversation_id=conversation.pk, by="agent", agent=agent, at=now + timedelta(seconds=300))
    services.chat_wrap_up(
        conversation_id=conversation.pk,
        agent=agent,
        status="solved",
        note="Refund sent",
        at=now + timedelta(seconds=345),
    )
    session = Session.objects.get(pk=conversation.session_id)
    assert (session.answered_at - session.requested_at) == timedelta(seconds=12)
    assert session.ended_at == now + timedelta(seconds=300)
    assert session.after_work_seconds == 45
    conversation.ticket.refresh_from_db()
    assert conversation.ticket.status == "solved"
    assert Message.objects.filter(ticket=conversation.ticket, kind="internal", text="Refund sent").exists()


def test_a_waiting_chat_the_visitor_ends_is_abandoned():
    widget = widget_make()
    chat_agent(widget.queue)
    conversation = start(widget).conversation
    services.chat_end(conversation_id=conversation.pk, by="visitor")
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.ABANDONED
    assert Session.objects.get(pk=conversation.session_id).abandoned_at is not None


def test_an_idle_chat_ends():
    widget = widget_make(idle_timeout_seconds=600)
    agent = chat_agent(widget.queue)
    now = timezone.now()
    conversation = start(widget, at=now).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent, at=now)
    routing.chat_tick(at=now + timedelta(seconds=599))
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.ACTIVE
    routing.chat_tick(at=now + timedelta(seconds=601))
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.ENDED
    assert ChatLine.objects.filter(conversation=conversation, notice="ended_idle").exists()


def test_the_rating_is_the_tickets_satisfaction_rating():
    widget = widget_make()
    agent = chat_agent(widget.queue)
    conversation = start(widget).conversation
    with pytest.raises(ApplicationError):
        services.chat_rate(conversation_id=conversation.pk, score=5)
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    services.chat_end(conversation_id=conversation.pk, by="visitor")
    services.chat_rate(conversation_id=conversation.pk, score=2, comment="slow")
    services.chat_rate(conversation_id=conversation.pk, score=4, comment="fine after all")
    rating = Rating.objects.get(ticket=conversation.ticket)
    assert (rating.score, rating.comment) == (4, "fine after all")
    with pytest.raises(ApplicationError):
        services.chat_rate(conversation_id=conversation.pk, score=6)
    # The widget's ask is a survey of the chat's ticket (no mail), answered by that rating.
    conversation.refresh_from_db()
    survey = Survey.objects.get(ticket=conversation.ticket)
    assert (survey.via, survey.channel, survey.agent_id, survey.rating_id) == ("chat", "chat", agent.pk, rating.pk)
    assert survey.solved_at == survey.sent_at == survey.mailed_at == conversation.ended_at


def test_a_chat_abandoned_before_an_answer_asks_for_no_rating():
    widget = widget_make()
    conversation = start(widget).conversation
    services.chat_end(conversation_id=conversation.pk, by="visitor")
    assert not Survey.objects.exists()


def test_transfer_to_an_agent_or_back_to_a_queue_keeps_the_transcript():
    widget = widget_make()
    ann = chat_agent(widget.queue, username="ann")
    bob = chat_agent(widget.queue, username="bob")
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=ann)
    services.chat_agent_message(conversation_id=conversation.pk, agent=ann, text="Let me pass you on")
    services.chat_transfer(conversation_id=conversation.pk, agent=ann, to_agent=bob)
    conversation.refresh_from_db()
    assert conversation.agent_id == bob.pk and conversation.status == ChatStatus.ACTIVE
    conversation.ticket.refresh_from_db()
    assert conversation.ticket.assignee_id == bob.pk
    billing = QueueFactory(slug="billing")
    billing.members.add(bob)
    services.chat_transfer(conversation_id=conversation.pk, agent=bob, to_queue=billing)
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.WAITING and conversation.queue_id == billing.pk
    notices = list(ChatLine.objects.filter(conversation=conversation).order_by("seq").values_list("seq", "notice"))
    assert notices == [(1, ""), (2, "joined"), (3, ""), (4, "transferred"), (5, "requeued")]


def test_a_signed_identity_is_verified_and_a_typed_address_is_only_a_claim():
    widget = widget_make()
    chat_agent(widget.queue)
    owner = CustomerFactory(email="kim@example.com")
    claimed = start(widget, email="kim@example.com").conversation
    assert claimed.customer_id != owner.pk and claimed.verified_identity == ""
    import hashlib
    import hmac

    signature = hmac.new(widget.secret.encode(), b"kim@example.com", hashlib.sha256).hexdigest()
    verified = start(widget, identity="kim@example.com", identity_hmac=signature).conversation
    assert verified.customer_id == owner.pk and verified.verified_identity == "kim@example.com"
    # Their later lines are theirs too, not a new record's.
    line, _new = services.chat_visitor_message(conversation_id=verified.pk, client_id=uuid.uuid4(), text="me again")
    assert line.message.author_customer_id == owner.pk
    plain, _new = services.chat_visitor_message(conversation_id=claimed.pk, client_id=uuid.uuid4(), text="hi")
    assert plain.message.author_customer_id == claimed.customer_id
    with pytest.raises(PermissionDenied):
        start(widget, identity="kim@example.com", identity_hmac="0" * 64)


def test_a_returning_visitor_keeps_their_record():
    widget = widget_make()
    chat_agent(widget.queue)
    first = start(widget)
    second = start(widget, previous_token=first.token).conversation
    assert second.visitor_id == first.conversation.visitor_id
    assert second.customer_id == first.conversation.customer_id


def test_a_queue_asking_for_a_language_offers_chats_only_to_agents_who_speak_it():
    from servicedesk.routing.services import queue_routing_set, skill_get_or_create

    widget = widget_make()
    queue_routing_set(queue=widget.queue, mode="manual", match_language=True)
    now = timezone.now()
    english = chat_agent(widget.queue, username="eve", at=now)
    chinese = chat_agent(widget.queue, username="wei", at=now)
    chinese.agent_profile.skills.add(skill_get_or_create(kind="language", value="zh"))
    english.agent_profile.skills.add(skill_get_or_create(kind="language", value="en"))
    conversation = start(widget, language="zh-Hans", at=now).conversation
    assert routing.chat_offers_dispatch(at=now) == 1
    conversation.refresh_from_db()
    assert conversation.offered_to_id == chinese.pk


def test_a_visitor_is_limited_per_chat_whatever_socket_the_messages_come_through(settings):
    # The count lives on the conversation: it holds with the cache unreachable too.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    widget = widget_make()
    chat_agent(widget.queue)
    conversation = start(widget).conversation
    first = timezone.now()

    def line(at: datetime) -> None:
        services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="again", at=at)

    sent = uuid.uuid4()
    services.chat_visitor_message(conversation_id=conversation.pk, client_id=sent, text="sent", at=first)
    for n in range(1, services.VISITOR_MESSAGES_PER_MINUTE):
        line(first + timedelta(seconds=n * 0.5))
    # Over the limit, a line sent again (after a reconnect) is still answered as stored.
    resent, new = services.chat_visitor_message(
        conversation_id=conversation.pk, client_id=sent, text="sent", at=first + timedelta(seconds=40)
    )
    assert (resent.client_id, new) == (sent, False)
    with pytest.raises(services.VisitorFlood) as refused:
        line(first + timedelta(seconds=45))
    assert refused.value.status_code == 429 and refused.value.extra["code"] == "rate_limited"
    assert refused.value.extra["retry_after"] == 15
    assert ChatLine.objects.filter(conversation=conversation).count() == 1 + services.VISITOR_MESSAGES_PER_MINUTE
    # The next minute counts afresh.
    line(first + timedelta(seconds=60))
    assert ChatLine.objects.filter(conversation=conversation).count() == 2 + services.VISITOR_MESSAGES_PER_MINUTE


def test_a_reply_from_the_ticket_page_reaches_the_visitor_at_the_address_given(django_capture_on_commit_callbacks):
    from django.core import mail

    from servicedesk.tickets.services.replies import ticket_reply_create

    widget = widget_make()
    agent = chat_agent(widget.queue)
    with django_capture_on_commit_callbacks(execute=True):
        conversation = start(widget, email="olga@example.com").conversation
    assert conversation.status == ChatStatus.WAITING
    services.chat_end(conversation_id=conversation.pk, by="visitor")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reply = ticket_reply_create(ticket=conversation.ticket, author=agent, text="We found your parcel.")
    reply.refresh_from_db()
    assert reply.delivery_status == "sent"
    [sent] = mail.outbox
    assert sent.to == ["Vera Visitor <olga@example.com>"] and "We found your parcel." in sent.body


def test_the_agent_in_the_chat_gets_no_notice_or_email_for_each_line(django_capture_on_commit_callbacks):
    from django.core import mail

    from servicedesk.notifications.models import Notification

    widget = widget_make()
    agent = chat_agent(widget.queue)
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="Still there?")
    assert not Notification.objects.filter(user=agent).exists()
    assert mail.outbox == []
