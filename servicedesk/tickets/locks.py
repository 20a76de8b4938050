"""Row locks, the only place that takes them, always in one order to avoid deadlocks.

Every ``SELECT ... FOR UPDATE`` of the project goes through a helper here
(``tests/test_locks.py`` fails on one anywhere else). The order: tickets by
ascending id, then the rows that hang off them (a customer, agent profiles by
ascending id, an inbound mail); a service that needs two kinds takes them in
that order. Each helper must run inside ``transaction.atomic`` and says so
when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from django.db import connection, models, transaction

from servicedesk.core.prepared import PreparedQuery
from servicedesk.tickets.models import Customer, Message, Ticket

Row = TypeVar("Row", bound=models.Model)


def _in_transaction(helper: str) -> None:
    assert transaction.get_connection().in_atomic_block, f"{helper} needs a transaction"


def ticket_lock(ticket_id: int) -> Ticket:
    """Lock and reload one ticket. Must run inside ``transaction.atomic``."""
    _in_transaction("ticket_lock")
    return Ticket.objects.select_for_update().get(pk=ticket_id)


def tickets_lock(*ticket_ids: int) -> dict[int, Ticket]:
    """Lock several tickets in ascending id order."""
    _in_transaction("tickets_lock")
    ids = sorted(set(ticket_ids))
    locked = {t.pk: t for t in Ticket.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    return locked


def tickets_lock_rows(tickets: models.QuerySet[Ticket], *, skip_locked: bool = False) -> list[Ticket]:
    """Lock the tickets of a query in ascending id order and return them.

    Only the tickets' own rows are locked (``of=("self",)``), so the query may
    ``select_related`` what it reads along. ``skip_locked``: leave out the
    tickets another transaction holds instead of waiting for them (a periodic
    check that the next run completes).
    """
    _in_transaction("tickets_lock_rows")
    return list(tickets.select_for_update(of=("self",), skip_locked=skip_locked).order_by("pk"))


def customer_lock(customer_id: int) -> Customer:
    """Lock and reload one customer (after the customer's tickets, if any are locked)."""
    _in_transaction("customer_lock")
    return Customer.objects.select_for_update().get(pk=customer_id)


def customer_lock_counting_acknowledgements(
    customer_id: int, *, hour_since: datetime, day_since: datetime
) -> tuple[int, int]:
    """Lock one customer (after their tickets) and count the acknowledgements they
    were sent since ``hour_since`` and since ``day_since``, in one statement.

    Every new ticket runs it, so its SQL is written out once, not built per call.
    """
    _in_transaction("customer_lock_counting_acknowledgements")
    sql = _ACK_COUNT_SQL.format(
        customer=Customer._meta.db_table,
        message=Message._meta.db_table,
        ticket=Ticket._meta.db_table,
        lock=" FOR UPDATE OF c" if connection.features.has_select_for_update_of else "",
    )
    since = [connection.ops.adapt_datetimefield_value(value) for value in (hour_since, day_since)]
    purpose = Message.Purpose.ACKNOWLEDGEMENT.value
    with connection.cursor() as cursor:
        cursor.execute(sql, [purpose, since[0], purpose, since[1], customer_id])
        row = cursor.fetchone()
    if row is None:
        raise Customer.DoesNotExist(customer_id)
    return int(row[0]), int(row[1])


# Written for PostgreSQL and SQLite alike (SQLite ignores the row lock: it locks the whole database).
_ACK_COUNT_SQL = """
SELECT
  (SELECT COUNT(*) FROM {message} m JOIN {ticket} t ON t.id = m.ticket_id
    WHERE t.customer_id = c.id AND m.purpose = %s AND m.created_at > %s),
  (SELECT COUNT(*) FROM {message} m JOIN {ticket} t ON t.id = m.ticket_id
    WHERE t.customer_id = c.id AND m.purpose = %s AND m.created_at > %s)
FROM {customer} c WHERE c.id = %s{lock}
"""


def ticket_lock_first(tickets: models.QuerySet[Ticket]) -> Ticket | None:
    """Lock the one ticket a query names (its lowest id when several) and return it, or None.

    Only the ticket's own row is locked, so the query may ``select_related``
    what it reads along (its customer, say): finding and locking a ticket
    is one statement.
    """
    _in_transaction("ticket_lock_first")
    return tickets.select_for_update(of=("self",)).order_by("pk").first()


# A chat line or a form reply names its ticket by reference: compiled once per connection (core/prepared.py).
_TICKET_BY_REFERENCE = PreparedQuery(
    lambda reference: (
        Ticket.objects.filter(reference=reference)
        .select_related("customer__organization")
        .select_for_update(of=("self",))
        .order_by("pk")[:1]
    ),
    reference=str,
)


def ticket_lock_by_reference(reference: str) -> Ticket | None:
    """``ticket_lock_first`` of the ticket with this reference, its customer and their organization read along."""
    _in_transaction("ticket_lock_by_reference")
    return _TICKET_BY_REFERENCE.first(reference=reference)


def rows_lock(rows: models.QuerySet[Row], *, skip_locked: bool = False) -> list[Row]:
    """Lock the rows of a query in ascending id order (only their own rows, so the query may
    ``select_related`` what it reads along) and return them: agent profiles, for example.
    ``skip_locked``: leave out the rows another transaction holds (work a second runner
    takes meanwhile, such as waiting chats being offered), instead of waiting for them."""
    _in_transaction("rows_lock")
    return list(rows.select_for_update(of=("self",), skip_locked=skip_locked).order_by("pk"))


class PreparedRowLock(Generic[Row]):
    """A row lock for a hot path, its SQL compiled once per connection (``core/prepared.py``).

    ``build(**parameters)`` returns the query of the row (filtered by the
    named ``str``/``int`` parameters); only the row's own table is locked
    (``of=("self",)``), so the query may ``select_related`` what it reads
    along; ``of`` names more of those to lock in the same statement. Calling
    the lock with the values returns the row, or None::

        _LINE_LOCK = PreparedRowLock(lambda pk: Conversation.objects.filter(pk=pk).select_related("ticket"), pk=int)
        conversation = _LINE_LOCK(pk=conversation_id)
    """

    def __init__(
        self, build: Callable[..., models.QuerySet[Row]], *, of: tuple[str, ...] = ("self",), **parameters: type
    ) -> None:
        self._query: PreparedQuery[Row] = PreparedQuery(
            lambda **values: build(**values).select_for_update(of=of).order_by("pk")[:1], **parameters
        )

    def __call__(self, **values: str | int) -> Row | None:
        _in_transaction("PreparedRowLock")
        return self._query.first("default", **values)


def row_lock(model: type[Row], pk: int | None = None, **lookup: object) -> Row:
    """Lock and reload one row of a model the domain does not know, by ``pk`` or by ``lookup``
    (a channel's own record such as an inbound mail, an agent's routing profile by ``user``)."""
    _in_transaction("row_lock")
    if pk is not None:
        lookup["pk"] = pk
    return model._default_manager.select_for_update().get(**lookup)


def identity_first_use_lock(kind: str, value: str) -> None:
    """Serialise the first use of an address that has no unique row to decide it (a phone number).

    A transaction-scoped advisory lock on PostgreSQL, held until commit: two
    first calls from one new number make one customer, not two. Elsewhere
    (SQLite) writes are serialised already. Must run inside ``transaction.atomic``.
    """
    _in_transaction("identity_first_use_lock")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"identity:{kind}:{value}"])


def statement_lock_clause(*aliases: str) -> str:
    """The row-lock clause (``FOR UPDATE OF`` the tables of ``aliases``) of one statement that locks
    the rows it reads and writes them itself, in autocommit, so the statement is its transaction
    (a visitor's chat line, ``channels_app/chat/loop_line.py``). Name the tables in the order the
    services lock the same rows: a chat's conversation, then its ticket (``PreparedRowLock`` of a line)."""
    if not aliases or not all(re.fullmatch(r"[a-z_][a-z0-9_]*", alias) for alias in aliases):
        raise ValueError(f"Aliases of the statement's tables, not {aliases!r}.")
    return "FOR UPDATE OF " + ", ".join(aliases)
