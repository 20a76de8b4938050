"""From the source system's ids to our rows, through bounded caches.

An import may hold millions of records, so nothing here grows with the file:
each cache keeps its most recently used entries and falls back to a database
lookup by external id (``User.external_id``, ``Customer.external_id``,
``Ticket.external_id``, all unique and indexed). ``prefetch`` fills the caches
for a whole batch in one query per kind. Customers and tickets of the batch
being built are not stored yet: they sit in ``pending`` until the batch is
written (``settle``) or dropped (``clear``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
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
            pk=self.pk,
            channel=self.channel,
            customer_id=self.customer_id,
            queue_id=self.queue_id,
            created_at=self.created_at,
            merged_into_id=self.merged_into_id,
        )


_TICKET_COLUMNS = ("pk", "channel", "customer_id", "queue_id", "created_at", "merged_into_id")


class IdMap:
    def __init__(self, *, size: int = 5000) -> None:
        self.agents = LRUCache(size)
        self.customers = LRUCache(size)
        self.tickets = LRUCache(size)
        self.pending_customers: dict[str, int] = {}
        self.pending_tickets: dict[str, TicketRef] = {}

    def clear(self) -> None:
        self.agents.clear()
        self.customers.clear()
        self.tickets.clear()
        self.pending_customers.clear()
        self.pending_tickets.clear()

    def settle(self) -> None:
        """The pending rows were written: from now on they are ordinary cache entries."""
        for external_id, pk in self.pending_customers.items():
            self.customers.put(external_id, pk)
        for external_id, ref in self.pending_tickets.items():
            self.tickets.put(external_id, ref)
        self.pending_customers.clear()
        self.pending_tickets.clear()

    def prefetch(
        self, *, agents: Iterable[str] = (), customers: Iterable[str] = (), tickets: Iterable[str] = ()
    ) -> None:
        """Load the entries missing from the caches, one query per kind."""
        wanted = [i for i in set(agents) if self.agents.get(i) is None]
        if wanted:
            for user in User.objects.filter(external_id__in=wanted):
                self.agents.put(user.external_id, user)
        wanted = [i for i in set(customers) if self.customers.get(i) is None and i not in self.pending_customers]
        if wanted:
            rows = Customer.objects.filter(external_id__in=wanted).values_list("external_id", "pk", "merged_into_id")
            for external_id, pk, merged_into_id in rows:
                self.customers.put(external_id, merged_into_id or pk)
        wanted = [i for i in set(tickets) if self.tickets.get(i) is None and i not in self.pending_tickets]
        if wanted:
            for external_id, *row in Ticket.objects.filter(external_id__in=wanted).values_list(
                "external_id", *_TICKET_COLUMNS
            ):
                self.tickets.put(external_id, TicketRef(*row))

    def agent(self, external_id: str) -> User | None:
        user = self.agents.get(external_id)
        if user is None:
            user = User.objects.filter(external_id=external_id).first()
            if user is not None:
                self.agents.put(external_id, user)
        return user

    def customer(self, external_id: str) -> int | None:
        """The pk of the customer record that now stands for the person (merges followed)."""
        pk = self.pending_customers.get(external_id) or self.customers.get(external_id)
        if pk is None:
            row = Customer.objects.filter(external_id=external_id).values_list("pk", "merged_into_id").first()
            if row is not None:
                # customer_merge re-points earlier merges, so one step reaches the root.
                pk = row[1] or row[0]
                self.customers.put(external_id, pk)
        return pk

    def ticket(self, external_id: str) -> TicketRef | None:
        ref = self.pending_tickets.get(external_id) or self.tickets.get(external_id)
        if ref is None:
            row = Ticket.objects.filter(external_id=external_id).values_list(*_TICKET_COLUMNS).first()
            if row is not None:
                ref = TicketRef(*row)
                self.tickets.put(external_id, ref)
        return ref
