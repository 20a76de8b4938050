"""From the source system's ids to our rows, through bounded caches.

An import may hold millions of records, so nothing here grows with the file:
each cache keeps its most recently used entries and falls back to a database
lookup by external id (``User.external_id``, ``Customer.external_id``,
``Ticket.external_id``, all unique and indexed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from servicedesk.accounts.models import User
from servicedesk.tickets.models import Customer, Ticket


class LRUCache:
    """A mapping that forgets its least recently used entry beyond ``maxsize``."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def discard(self, key: Any) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class TicketRef:
    """What the importer needs to know about a stored ticket without loading it."""

    pk: int
    channel: str
    customer_id: int
    queue_id: int
    created_at: datetime
    merged_into_id: int | None

    def stub(self) -> Ticket:
        """An unsaved instance carrying the known columns; services reload what they change."""
        return Ticket(
            pk=self.pk, channel=self.channel, customer_id=self.customer_id, queue_id=self.queue_id,
            created_at=self.created_at, merged_into_id=self.merged_into_id,
        )


_TICKET_COLUMNS = ("pk", "channel", "customer_id", "queue_id", "created_at", "merged_into_id")


class IdMap:
    def __init__(self, *, size: int = 5000) -> None:
        self.agents = LRUCache(size)
        self.customers = LRUCache(size)
        self.tickets = LRUCache(size)

    def clear(self) -> None:
        self.agents.clear()
        self.customers.clear()
        self.tickets.clear()

    def agent(self, external_id: str) -> User | None:
        user = self.agents.get(external_id)
        if user is None:
            user = User.objects.filter(external_id=external_id).first()
            if user is not None:
                self.agents.put(external_id, user)
        return user

    def customer(self, external_id: str) -> int | None:
        """The pk of the customer record that now stands for the person (merges followed)."""
        pk = self.customers.get(external_id)
        if pk is None:
            row = Customer.objects.filter(external_id=external_id).values_list("pk", "merged_into_id").first()
            if row is not None:
                # customer_merge re-points earlier merges, so one step reaches the root.
                pk = row[1] or row[0]
                self.customers.put(external_id, pk)
        return pk

    def ticket(self, external_id: str) -> TicketRef | None:
        ref = self.tickets.get(external_id)
        if ref is None:
            row = Ticket.objects.filter(external_id=external_id).values_list(*_TICKET_COLUMNS).first()
            if row is not None:
                ref = TicketRef(*row)
                self.tickets.put(external_id, ref)
        return ref
