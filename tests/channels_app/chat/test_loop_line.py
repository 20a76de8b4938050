"""A visitor's line stored by one statement on the event loop (channels_app/chat/loop_line.py).

The statement must write exactly the rows the service writes (compared
column by column, chat against chat), and nothing at all where the service
would refuse, answer a line sent again, or change the ticket's status.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.utils import timezone

from channels_app.chat import loop_line, services
from channels_app.chat.loop_line import line_owner, line_statement
from channels_app.chat.models import ChatConversation, ChatLine, ChatStatus
from servicedesk.asgi import application
from servicedesk.core.loop_db import loop_db_close
from servicedesk.live.pushes import user_group
from servicedesk.tickets import hooks
from servicedesk.tickets.models import Customer, Message, Ticket, TicketEvent
from servicedesk.tickets.statuses import Status

from .helpers import SHOP, chat_agent, start, widget_make


@pytest.fixture
def t0() -> datetime:
    return timezone.now().replace(microsecond=0) - timedelta(hours=1)


def two_chats(t0: datetime, *, accept: bool = True) -> tuple[ChatConversation, ChatConversation]:
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann", at=t0)
    chats = []
    for email in ("vera@example.com", "walt@example.com"):
        conversation = start(widget, at=t0, email=email).conversation
        if accept:
            services.chat_accept(conversation_id=conversation.pk, agent=agent, at=t0 + timedelta(seconds=5))
        chats.append(ChatConversation.objects.get(pk=conversation.pk))
    return chats[0], chats[1]


def by_statement(conversation: ChatConversation, client_id: uuid.UUID, text: str, at: datetime) -> Any:
    """The statement run on the test's connection: its row (seq is None when it wrote nothing)."""
    statement = line_statement(
        line_owner(ChatConversation.objects.get(pk=conversation.pk)),
        client_id=client_id,
        text=text,
        at=at,
        limit=services.VISITOR_MESSAGES_PER_MINUTE,
        window=services.LINES_WINDOW,
    )
    assert statement is not None
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.values)
        return cursor.fetchone()


def row(obj: Any, own: dict[type, int | None]) -> dict[str, Any]:
    """Every column of ``obj``; a reference to this chat's own rows (``own``: model -> id) named
    ``<Model>`` instead of its id, so the rows of two chats compare."""
    values = {}
    for field in type(obj)._meta.concrete_fields:
        if field.primary_key:
            continue
        value = getattr(obj, field.attname)
        if field.is_relation and value is not None and own.get(field.related_model) == value:
            value = f"<{field.related_model.__name__}>"
        values[field.attname] = value
    return values


def state(conversation: ChatConversation) -> dict[str, Any]:
    """What a chat's line leaves behind: the chat, its ticket, its last line, message and event."""
    conversation = ChatConversation.objects.get(pk=conversation.pk)
    ticket = Ticket.objects.get(pk=conversation.ticket_id)
    line = ChatLine.objects.filter(conversation=conversation).order_by("-seq").first()
    assert line is not None and line.message_id is not None
    message = Message.objects.get(pk=line.message_id)
    event = TicketEvent.objects.get(message=message)
    own: dict[type, int | None] = {
        ChatConversation: conversation.pk,
        Ticket: ticket.pk,
        Customer: conversation.customer_id,
        Message: message.pk,
    }
    message_row = row(message, own)
    message_row["external_id"] = message_row["external_id"].replace(f"chat:{conversation.pk}:", "chat:<chat>:")
    chat_row = row(conversation, own)
    # The visitor's own: their token, address and name, and the chat's session.
    for private in ("token_hash", "visitor_id", "claimed_email", "claimed_name", "session_id"):
        chat_row.pop(private)
    ticket_row = row(ticket, own)
    for private in ("reference", "subject", "portal_key"):
        ticket_row.pop(private)
    return {
        "chat": chat_row,
        "ticket": ticket_row,
        "line": row(line, own),
        "message": message_row,
        "event": row(event, own),
        "counts": (
            ChatLine.objects.filter(conversation=conversation).count(),
            Message.objects.filter(ticket=ticket).count(),
            TicketEvent.objects.filter(ticket=ticket).count(),
        ),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("accept", [True, False], ids=["active", "waiting"])
def test_the_statement_writes_the_rows_the_service_writes(t0, accept):
    by_service, by_loop = two_chats(t0, accept=accept)
    steps = [
        ("Where is my parcel?", timedelta(seconds=30)),
        ("  It was due on Monday.\r\n", timedelta(seconds=40)),  # within the minute of the first
        ("订单号 123", timedelta(minutes=3)),  # a new minute for the per-chat limit
    ]
    for n, (text, after) in enumerate(steps, start=2):
        client_id = uuid.UUID(int=n)
        line, new = services.chat_visitor_message(
            conversation_id=by_service.pk, client_id=client_id, text=text, at=t0 + after
        )
        assert new
        stored = by_statement(by_loop, client_id, text, t0 + after)
        assert stored is not None and stored[0] == line.seq == n + (1 if accept else 0)
        assert_same(state(by_loop), state(by_service))


def assert_same(loop: dict[str, Any], service: dict[str, Any]) -> None:
    differing = {
        f"{table}.{column}": (loop[table][column], service[table].get(column))
        for table in loop
        if isinstance(loop[table], dict)
        for column in loop[table]
        if loop[table][column] != service[table].get(column)
    }
    assert not differing, differing
    assert loop == service


def snapshot() -> tuple[Any, ...]:
    return (
        list(ChatConversation.objects.order_by("pk").values()),
        list(Ticket.objects.order_by("pk").values()),
        list(Customer.objects.order_by("pk").values()),
        ChatLine.objects.count(),
        Message.objects.count(),
        TicketEvent.objects.count(),
    )


def ticket_pending(c: ChatConversation) -> None:
    Ticket.objects.filter(pk=c.ticket_id).update(status=Status.PENDING)


def ticket_closed(c: ChatConversation) -> None:
    Ticket.objects.filter(pk=c.ticket_id).update(status=Status.CLOSED, solved_at=timezone.now())


def ticket_merged(c: ChatConversation) -> None:
    other = Ticket.objects.exclude(pk=c.ticket_id).first()
    Ticket.objects.filter(pk=c.ticket_id).update(merged_into=other)


def ticket_deleted(c: ChatConversation) -> None:
    Ticket.objects.filter(pk=c.ticket_id).update(is_deleted=True)


def customer_merged(c: ChatConversation) -> None:
    other = Customer.objects.exclude(pk=c.customer_id).first()
    Customer.objects.filter(pk=c.customer_id).update(merged_into=other)


def chat_ended(c: ChatConversation) -> None:
    services.chat_end(conversation_id=c.pk, by="visitor")


def over_the_limit(c: ChatConversation) -> None:
    ChatConversation.objects.filter(pk=c.pk).update(
        lines_window_at=timezone.now() - timedelta(seconds=10), lines_in_window=services.VISITOR_MESSAGES_PER_MINUTE
    )


def sent_before(c: ChatConversation) -> None:
    services.chat_visitor_message(conversation_id=c.pk, client_id=uuid.UUID(int=99), text="first time")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        ticket_pending,
        ticket_closed,
        ticket_merged,
        ticket_deleted,
        customer_merged,
        chat_ended,
        over_the_limit,
        sent_before,
    ],
)
def test_anything_but_the_usual_line_is_left_to_the_service_with_nothing_written(change, t0):
    conversation, _other = two_chats(t0)
    # What the socket knew when it opened (before the change).
    owner = line_owner(conversation)
    change(conversation)
    before = snapshot()
    statement = line_statement(
        owner,
        client_id=uuid.UUID(int=99),
        text="Hello again",
        at=timezone.now(),
        limit=services.VISITOR_MESSAGES_PER_MINUTE,
        window=services.LINES_WINDOW,
    )
    assert statement is not None
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.values)
        stored = cursor.fetchone()
    assert stored is not None and stored[0] is None
    assert snapshot() == before


@pytest.mark.django_db
def test_a_chat_that_is_gone_returns_no_row(t0):
    conversation, _other = two_chats(t0)
    owner = line_owner(conversation)
    statement = line_statement(
        owner, client_id=uuid.uuid4(), text="Hello", at=timezone.now(), limit=60, window=services.LINES_WINDOW
    )
    assert statement is not None
    statement.values["conversation"] = conversation.pk + 1000
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.values)
        assert cursor.fetchone() is None


@pytest.mark.django_db
def test_every_ticket_event_follower_leaves_a_chat_line_alone(t0, django_assert_num_queries):
    """The statement calls no event follower: each registered one must have nothing to do for a line."""
    conversation, _other = two_chats(t0)
    line, _new = services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="Hi")
    event = TicketEvent.objects.select_related("ticket").get(message_id=line.message_id)
    followers = list(hooks._event_followers)
    assert followers, "the live desk and routing follow ticket events"
    for follower in followers:
        with django_assert_num_queries(0), pytest.MonkeyPatch.context() as patch:
            callbacks: list[Any] = []
            patch.setattr(connection, "on_commit", lambda func, robust=False, seen=callbacks: seen.append(func))
            follower(event=event)
        assert callbacks == [], f"{follower.__module__}.{follower.__qualname__} acts on a chat line"


@pytest.mark.django_db(transaction=True)
def test_a_visitors_socket_stores_its_line_from_the_loop_and_the_agent_hears_of_it(settings, monkeypatch):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "CHAT_LOOP_LINES": True}
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    started = start(widget)
    services.chat_accept(conversation_id=started.conversation.pk, agent=agent)

    def not_here(**kwargs: Any) -> Any:
        raise AssertionError("the usual line is stored from the loop, not by the service")

    layer = get_channel_layer()
    lines_before = echo_seq(started)

    async def scenario() -> None:
        desk = await layer.new_channel()
        await layer.group_add(user_group(agent.pk), desk)
        ws = WebsocketCommunicator(
            application,
            f"/ws/chat/?token={started.token}",
            headers=[(b"host", b"desk.example"), (b"origin", SHOP.encode())],
        )
        try:
            connected, _ = await ws.connect()
            assert connected
            assert (await ws.receive_json_from())["type"] == "status"
            await ws.send_json_to({"type": "resume", "after": 0})
            while (await ws.receive_json_from()).get("seq") != lines_before:
                pass
            monkeypatch.setattr(services, "chat_visitor_message", not_here)
            client_id = str(uuid.uuid4())
            await ws.send_json_to({"type": "message", "client_id": client_id, "text": " Is it shipped? "})
            echo = await ws.receive_json_from(timeout=5)
            assert (echo["type"], echo["client_id"], echo["text"], echo["author"]) == (
                "message",
                client_id,
                "Is it shipped?",
                "visitor",
            )
            pushed = await layer.receive(desk)
            assert pushed == {"type": "chat.changed", "conversation": started.conversation.pk}
            await ws.disconnect()
        finally:
            await loop_db_close()

    async_to_sync(scenario)()
    line = ChatLine.objects.select_related("message").get(conversation=started.conversation, seq=echo_seq(started))
    assert line.message is not None and line.message.text == "Is it shipped?"
    assert ChatConversation.objects.get(pk=started.conversation.pk).status == ChatStatus.ACTIVE


def echo_seq(started: Any) -> int:
    return int(ChatConversation.objects.get(pk=started.conversation.pk).last_seq)


@pytest.mark.django_db(transaction=True)
def test_a_ping_read_from_the_loop_answers_and_records_as_the_service_does():
    widget = widget_make()
    agent = chat_agent(widget.queue, username="ann")
    conversation = start(widget).conversation
    services.chat_accept(conversation_id=conversation.pk, agent=agent)
    seen_at = timezone.now() + timedelta(seconds=30)
    ChatConversation.objects.filter(pk=conversation.pk).update(visitor_left_at=timezone.now())

    async def scenario() -> list[tuple[int, str]]:
        try:
            return [
                await loop_line.visitor_ping(conversation.pk, seen=False, at=seen_at),
                await loop_line.visitor_ping(conversation.pk, seen=True, at=seen_at),
                await loop_line.visitor_ping(conversation.pk + 1000, seen=True, at=seen_at),
            ]
        finally:
            await loop_db_close()

    quiet, seen, gone = async_to_sync(scenario)()
    stored = ChatConversation.objects.get(pk=conversation.pk)
    assert quiet == seen == services.visitor_ping(conversation.pk, seen=False) == (stored.last_seq, "active")
    assert (stored.visitor_seen_at, stored.visitor_left_at) == (seen_at, None)
    assert gone == services.visitor_ping(conversation.pk + 1000, seen=False) == (0, "ended")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    ["Where is my parcel?", "  spaced\r\nout\t", "订单 123 🙂", "chatlinetextmarker7d1f3b", str(uuid.UUID(int=7**40))],
)
def test_a_chats_rows_built_once_and_filled_per_line_are_the_rows_built_whole(t0, text):
    """The per-chat template (loop_line._template) gives the values the builders give for each line."""
    conversation, _other = two_chats(t0)
    owner = line_owner(conversation)
    assert loop_line._template(owner) is not None
    client_id, at = uuid.uuid4(), t0 + timedelta(seconds=17)
    filled = line_statement(owner, client_id=client_id, text=text, at=at, limit=60, window=services.LINES_WINDOW)
    built = loop_line._built(owner, client_id=client_id, text=text.strip(), at=at)
    assert filled is not None and built is not None
    sql, values, stored_text = built
    assert filled.sql == sql and filled.text == stored_text == text.strip().replace("\r\n", "\n")
    assert all(loop_line._same(filled.values[key], value) for key, value in values.items())
