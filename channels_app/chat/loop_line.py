"""A visitor's text line stored, and a visitor's ping read, by one statement awaited on the event loop.

``services.chat_visitor_message`` stores a line in one transaction of eight
statements on a thread (the conversation and its ticket locked, the message
through the intake, its event, the ticket's version, the line numbered and
counted). Every statement is a round trip, and every round trip a turn at
the interpreter lock against the event loop that serves the sockets: with a
thousand chats, most of a line's time (docs/performance.md, "Live chat").

Here the same rows are written by one statement on a connection of the
loop's own pool (``core/loop_db.py``), in autocommit, so the statement is its
transaction: the conversation and the ticket locked as the service locks
them; the message and its event made by the intake's own builder
(``intake.appended_message_rows``) with the values the models' fields
prepare (``prepared.row_insert_values``); the ticket's version and time moved
as ``ticket_touch`` moves them; the line numbered and counted as the
service does. The SQL is made once per process from the models' metadata,
so a column added to a model is written here too.

The statement only takes the usual line: an open chat, its own ticket, not
merged or deleted, a ticket status the message leaves as it is, a
``client_id`` not seen yet, within the per-chat limit. For anything else it
writes nothing and the caller hands the line to the service on a thread,
which refuses, answers a line sent again, or reopens the ticket as it
always has. tests/channels_app/chat/test_loop_line.py compares the rows both
paths write, column by column.

The pushes follow the commit, as the service's: the visitor's other sockets
and the chat's agent hear that the chat changed. The ticket hooks' event
followers are not called: every one of them leaves a chat line's message
event alone (the live desk pushes chats through the chat's own pushes;
routing acts on assignments and statuses), and a test holds that for every
registered follower.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.db import connections

from servicedesk.core.loop_db import loop_connection, loop_db_available
from servicedesk.core.prepared import row_insert_values
from servicedesk.core.realtime import realtime_publish_committed
from servicedesk.core.text import clean_text
from servicedesk.live.pushes import user_group
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.locks import statement_lock_clause
from servicedesk.tickets.models import Customer, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import appended_message_rows, statuses_kept_by_customer_message

from .models import OPEN_STATUSES, ChatConversation, ChatLine, ChatStatus, LineAuthor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineOwner:
    """What a visitor's socket knows of its chat from when it opened: the ids the statement checks."""

    conversation_id: int
    ticket_id: int
    customer_id: int
    sender: SenderIdentity


def loop_lines_enabled() -> bool:
    """Whether visitors' lines are stored from the event loop (PostgreSQL, unless SD_CHAT_LOOP_LINES=false)."""
    return bool(settings.SERVICEDESK.get("CHAT_LOOP_LINES", True)) and loop_db_available()


def line_owner(conversation: ChatConversation) -> LineOwner:
    from .services import line_sender

    return LineOwner(
        conversation_id=conversation.pk,
        ticket_id=conversation.ticket_id,
        customer_id=conversation.customer_id,
        sender=line_sender(conversation),
    )


@dataclass(frozen=True)
class StoredLine:
    seq: int
    line_id: int
    message_id: int
    agent_id: int | None
    claimed_name: str
    text: str
    at: datetime
    client_id: uuid.UUID

    def frame(self) -> dict[str, Any]:
        """The line's ``message`` frame for its visitor, as ``services.line_frame`` makes it."""
        return {
            "type": "message",
            "seq": self.seq,
            "client_id": str(self.client_id),
            "author": LineAuthor.VISITOR.value,
            "name": self.claimed_name,
            "text": self.text,
            "at": self.at.isoformat(),
            "files": [],
        }


def _quote(name: str) -> str:
    return str(connections["default"].ops.quote_name(name))


def _table(model: Any) -> str:
    return _quote(model._meta.db_table)


def _column(model: Any, name: str) -> str:
    return _quote(model._meta.get_field(name).column)


def _values(prefix: str, fields: tuple[Any, ...]) -> str:
    """Each value's placeholder cast to its column's type: in ``INSERT ... SELECT`` a parameter
    takes no type from its column (a None would be text)."""
    connection = connections["default"]
    return ", ".join(f"%({prefix}{i})s::{field.cast_db_type(connection)}" for i, field in enumerate(fields))


@cache
def _statement(message_fields: tuple[Any, ...], event_fields: tuple[Any, ...], line_fields: tuple[Any, ...]) -> str:
    """The line's statement for these columns (the models' own, in their order; made once)."""
    chat, line, ticket, customer = ChatConversation, ChatLine, Ticket, Customer
    c = {name: f"c.{_column(chat, name)}" for name in ("status", "lines_window_at", "lines_in_window", "agent")}
    window_open = (
        f"{c['lines_window_at']} IS NOT NULL AND {c['lines_window_at']} <= %(at)s "
        f"AND %(at)s < {c['lines_window_at']} + %(window)s"
    )
    message_columns = ", ".join(_quote(f.column) for f in message_fields)
    event_columns = ", ".join(_quote(f.column) for f in event_fields)
    line_columns = ", ".join(_quote(f.column) for f in line_fields)
    message_values = _values("m", message_fields)
    event_values = _values("e", event_fields)
    line_values = _values("l", line_fields)
    pk = _quote("id")
    # fmt: off
    # Names from the models' metadata; every value is a parameter.
    return (
        f"WITH locked AS ("  # noqa: S608
        f" SELECT c.{pk} AS id, {c['status']} AS status, {c['agent']} AS agent_id,"
        f" c.{_column(chat, 'claimed_name')} AS claimed_name,"
        f" CASE WHEN {window_open} THEN {c['lines_window_at']} ELSE %(at)s END AS window_at,"
        f" CASE WHEN {window_open} THEN {c['lines_in_window']} ELSE 0 END AS in_window,"
        f" c.{_column(chat, 'ticket')} AS ticket_id, c.{_column(chat, 'customer')} AS customer_id,"
        f" t.{_column(ticket, 'customer')} AS ticket_customer_id, t.{_column(ticket, 'status')} AS ticket_status,"
        f" t.{_column(ticket, 'merged_into')} AS ticket_merged_into, t.{_column(ticket, 'is_deleted')} AS ticket_deleted,"
        f" cu.{_column(customer, 'merged_into')} AS customer_merged_into"
        f" FROM {_table(chat)} c"
        f" JOIN {_table(ticket)} t ON t.{pk} = c.{_column(chat, 'ticket')}"
        f" JOIN {_table(customer)} cu ON cu.{pk} = t.{_column(ticket, 'customer')}"
        f" WHERE c.{pk} = %(conversation)s {statement_lock_clause('c', 't')}"
        f"), taken AS ("
        f" SELECT * FROM locked"
        f" WHERE status = ANY(%(open)s) AND in_window < %(limit)s"
        f" AND ticket_id = %(ticket)s AND customer_id = %(customer)s AND ticket_customer_id = %(customer)s"
        f" AND ticket_status = ANY(%(kept)s) AND ticket_merged_into IS NULL AND NOT ticket_deleted"
        f" AND customer_merged_into IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {_table(line)} l WHERE l.{_column(line, 'conversation')} = locked.id"
        f" AND l.{_column(line, 'client_id')} = %(client_id)s)"
        f"), message AS ("
        f" INSERT INTO {_table(Message)} ({message_columns}) SELECT {message_values} FROM taken"
        f" RETURNING {pk}"
        f"), event AS ("
        f" INSERT INTO {_table(TicketEvent)} ({event_columns}, {_column(TicketEvent, 'message')})"
        f" SELECT {event_values}, message.{pk} FROM message RETURNING {pk}"
        f"), touched AS ("
        f" UPDATE {_table(ticket)} SET {_column(ticket, 'version')} = {_column(ticket, 'version')} + 1,"
        f" {_column(ticket, 'updated_at')} = GREATEST({_column(ticket, 'updated_at')}, %(at)s)"
        f" FROM message WHERE {_table(ticket)}.{pk} = %(ticket)s RETURNING {_table(ticket)}.{pk}"
        f"), numbered AS ("
        f" UPDATE {_table(chat)} SET {_column(chat, 'last_seq')} = {_column(chat, 'last_seq')} + 1,"
        f" {_column(chat, 'last_activity_at')} = %(at)s,"
        f" {_column(chat, 'lines_window_at')} = taken.window_at,"
        f" {_column(chat, 'lines_in_window')} = taken.in_window + 1"
        f" FROM taken, message WHERE {_table(chat)}.{pk} = taken.id"
        f" RETURNING {_table(chat)}.{_column(chat, 'last_seq')} AS seq"
        f"), stored AS ("
        f" INSERT INTO {_table(line)} ({line_columns}, {_column(line, 'seq')}, {_column(line, 'message')})"
        f" SELECT {line_values}, numbered.seq, message.{pk} FROM numbered, message"
        f" RETURNING {pk}, {_column(line, 'seq')} AS seq"
        f")"
        f" SELECT stored.seq, stored.{pk}, message.{pk}, locked.agent_id, locked.claimed_name"
        f" FROM locked LEFT JOIN stored ON TRUE LEFT JOIN message ON TRUE"
    )
    # fmt: on


@dataclass(frozen=True)
class LineStatement:
    sql: str
    values: dict[str, Any]
    text: str  # the message's text as stored


def line_statement(
    owner: LineOwner, *, client_id: uuid.UUID, text: str, at: datetime, limit: int, window: Any
) -> LineStatement | None:
    """The statement that stores the line, and its values; None when the service must take the
    line: a text empty or too long once cleaned as the service cleans it (the service answers
    why), or rows that need ``save()``."""
    from .services import TEXT_MAX

    text = clean_text(text).strip()
    if not text or len(text) > TEXT_MAX:
        return None
    template = _template(owner)
    if template is None:
        built = _built(owner, client_id=client_id, text=text, at=at)
        if built is None:
            return None
        sql, values, stored_text = built
    else:
        sql, values, stored_text = template.fill(client_id=client_id, text=text, at=at)
    values.update(
        {
            "conversation": owner.conversation_id,
            "ticket": owner.ticket_id,
            "customer": owner.customer_id,
            "client_id": client_id,
            "at": at,
            "window": window,
            "limit": limit,
            "open": [str(s) for s in OPEN_STATUSES],
            "kept": statuses_kept_by_customer_message(),
        }
    )
    return LineStatement(sql=sql, values=values, text=stored_text)


def _built(
    owner: LineOwner, *, client_id: uuid.UUID, text: str, at: datetime
) -> tuple[str, dict[str, Any], str] | None:
    """The statement and the rows' values as the intake's builder and the models' fields make
    them (None: a model that needs ``save()``), and the message's text as stored."""
    ticket = Ticket(pk=owner.ticket_id, customer_id=owner.customer_id)
    message, event = appended_message_rows(
        inbound=InboundMessage(
            channel="chat",
            external_id=f"chat:{owner.conversation_id}:{client_id}",
            sender=owner.sender,
            text=text,
            received_at=at,
        ),
        ticket=ticket,
    )
    event.message = None  # the message's id comes from the statement
    line = ChatLine(conversation_id=owner.conversation_id, seq=0, client_id=client_id, author=LineAuthor.VISITOR, at=at)
    prepared = [row_insert_values(message), row_insert_values(event), row_insert_values(line)]
    if any(p is None for p in prepared):
        return None
    (message_fields, message_values), (event_fields, event_values), (line_fields, line_values) = prepared  # type: ignore[misc]
    event_keep = [i for i, f in enumerate(event_fields) if f.name != "message"]
    line_keep = [i for i, f in enumerate(line_fields) if f.name not in ("seq", "message")]
    sql = _statement(
        tuple(message_fields), tuple(event_fields[i] for i in event_keep), tuple(line_fields[i] for i in line_keep)
    )
    values: dict[str, Any] = {f"m{i}": v for i, v in enumerate(message_values)}
    values.update({f"e{n}": event_values[i] for n, i in enumerate(event_keep)})
    values.update({f"l{n}": line_values[i] for n, i in enumerate(line_keep)})
    return sql, values, message.text


# A chat's rows are built once (``_template``) with markers in place of the line's text, time
# and client id; each line then puts its own where they came out. A marker is plain text the
# builders keep as it is (``clean_text`` changes nothing in it).
@dataclass(frozen=True)
class _Marks:
    text: str
    at: datetime
    client_id: uuid.UUID

    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.text) + "|" + re.escape(str(self.client_id)))

    def slot(self, value: Any) -> str | None:
        """Which input ``value`` is ("at", "id", "text": a string holding the text or the id), or None."""
        if isinstance(value, datetime) and value == self.at:
            return "at"
        if isinstance(value, uuid.UUID) and value == self.client_id:
            return "id"
        if isinstance(value, str) and self.pattern().search(value):
            return "text"
        return None


_MARKS = _Marks("chatlinetextmarker7d1f3b", datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), uuid.UUID(int=7**40))
# A second build with other markers tells the chat's own values from those made of the line's.
_OTHER_MARKS = _Marks(
    "otherlinetextmarker2c9e", datetime(2002, 3, 4, 5, 6, 7, 890123, tzinfo=UTC), uuid.UUID(int=3**70)
)


@dataclass(frozen=True)
class _Template:
    sql: str
    fixed: dict[str, Any]
    at_keys: tuple[str, ...]
    id_keys: tuple[str, ...]
    text_keys: dict[str, str]  # a value holding a marker, filled per line
    text: str

    def fill(self, *, client_id: uuid.UUID, text: str, at: datetime) -> tuple[str, dict[str, Any], str]:
        # As the intake cleans the text it is given.
        own = {_MARKS.text: clean_text(text), str(_MARKS.client_id): str(client_id)}
        pattern = _PATTERN
        values = dict(self.fixed)
        values.update(dict.fromkeys(self.at_keys, at))
        values.update(dict.fromkeys(self.id_keys, client_id))
        for key, value in self.text_keys.items():
            values[key] = pattern.sub(lambda m: own[m.group(0)], value)
        return self.sql, values, pattern.sub(lambda m: own[m.group(0)], self.text)


_PATTERN = _MARKS.pattern()


@lru_cache(maxsize=10_000)
def _template(owner: LineOwner) -> _Template | None:
    """The chat's rows built once with the markers. None (each line is built whole) unless every
    value is either the same in a second build with other markers, or is the marker's time or
    id itself, or a string that holds the text or the id and comes out the same with the other's."""
    built = _built(owner, client_id=_MARKS.client_id, text=_MARKS.text, at=_MARKS.at)
    other = _built(owner, client_id=_OTHER_MARKS.client_id, text=_OTHER_MARKS.text, at=_OTHER_MARKS.at)
    if built is None or other is None or built[1].keys() != other[1].keys():
        return None
    sql, values, text = built
    fixed: dict[str, Any] = {}
    at_keys, id_keys, text_keys = [], [], {}
    for key, value in values.items():
        slot, other_value = _MARKS.slot(value), other[1][key]
        if slot is None:
            if _OTHER_MARKS.slot(other_value) is not None or not _same(value, other_value):
                return None
            fixed[key] = value
        elif slot != _OTHER_MARKS.slot(other_value):
            return None
        elif slot == "at":
            at_keys.append(key)
        elif slot == "id":
            id_keys.append(key)
        else:
            text_keys[key] = value
    template = _Template(sql, fixed, tuple(at_keys), tuple(id_keys), text_keys, text)
    # The other build, put back from the template, must come out as built.
    refilled = template.fill(client_id=_OTHER_MARKS.client_id, text=_OTHER_MARKS.text, at=_OTHER_MARKS.at)
    if refilled[1].keys() != other[1].keys() or refilled[2] != other[2]:
        return None
    if not all(_same(refilled[1][key], other[1][key]) for key in other[1]):
        return None
    return template


def _same(one: Any, other: Any) -> bool:
    """Equal values of one type; a JSON value (psycopg's ``Jsonb``) by what it holds."""
    return type(one) is type(other) and getattr(one, "obj", one) == getattr(other, "obj", other)


async def visitor_line_store(owner: LineOwner, *, client_id: uuid.UUID, text: str, at: datetime) -> StoredLine | None:
    """Store the visitor's line by one statement on the loop; None when the service must take it
    (nothing was written then). Pushes to the chat's sockets and agent after the commit.

    Database errors as psycopg raises them.
    """
    from .services import LINES_WINDOW, VISITOR_MESSAGES_PER_MINUTE, visitor_group

    statement = line_statement(
        owner, client_id=client_id, text=text, at=at, limit=VISITOR_MESSAGES_PER_MINUTE, window=LINES_WINDOW
    )
    if statement is None:
        return None
    async with loop_connection() as connection:
        cursor = await connection.execute(statement.sql, statement.values)
        row = await cursor.fetchone()
    if row is None or row[0] is None:
        return None
    seq, line_id, message_id, agent_id, claimed_name = row
    stored = StoredLine(
        seq=seq,
        line_id=line_id,
        message_id=message_id,
        agent_id=agent_id,
        claimed_name=claimed_name,
        text=statement.text,
        at=at,
        client_id=client_id,
    )
    await realtime_publish_committed(
        group=visitor_group(owner.conversation_id), kind="chat.changed", data={"seq": stored.seq}
    )
    if stored.agent_id:
        await realtime_publish_committed(
            group=user_group(stored.agent_id), kind="chat.changed", data={"conversation": owner.conversation_id}
        )
    return stored


@cache
def _ping_statements() -> tuple[str, str]:
    """A ping's read, and its read that also records the visitor as seen (``services.visitor_ping``)."""
    chat = ChatConversation
    table, pk = _table(chat), _quote("id")
    answer = f"{_column(chat, 'last_seq')}, {_column(chat, 'status')}"
    read = f"SELECT {answer} FROM {table} WHERE {pk} = %(conversation)s"  # noqa: S608
    seen = (
        f"UPDATE {table} SET {_column(chat, 'visitor_seen_at')} = %(at)s, {_column(chat, 'visitor_left_at')} = NULL"  # noqa: S608
        f" WHERE {pk} = %(conversation)s RETURNING {answer}"
    )
    return read, seen


async def visitor_ping(conversation_id: int, *, seen: bool, at: datetime) -> tuple[int, str]:
    """``services.visitor_ping`` by one statement on the loop: the conversation's last sequence
    number and status ((0, "ended") for a chat that is gone), the visitor recorded as seen
    when ``seen``. Database errors as psycopg raises them."""
    read, record = _ping_statements()
    async with loop_connection() as connection:
        cursor = await connection.execute(record if seen else read, {"conversation": conversation_id, "at": at})
        row = await cursor.fetchone()
    return (int(row[0]), str(row[1])) if row is not None else (0, ChatStatus.ENDED.value)
