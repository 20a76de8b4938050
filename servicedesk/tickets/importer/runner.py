"""Streaming an interaction-history file into the database.

Records are read line by line and applied in batches, one transaction per
batch. The bulk path (the default) records the batch's common records in a
``HistoryBatch`` and writes them with a few bulk statements: per batch, one
query per kind finds what is already imported, one loads the referenced rows,
one allocates the ids of each table and one INSERT per table writes the rows.
A record the domain refuses (a bad reference, a refused status transition) is
reported and left out before anything is written. When the database refuses
the batch itself, it is rolled back and replayed record by record through the
single services with a savepoint around each, so only the bad record is lost.
Without ``bulk`` every record goes through the single services (the
record-by-record path). In strict mode the whole file is one transaction and
the first error stops it with nothing of the file written.

A bulk load outgrows the planner statistics faster than autovacuum renews
them (or they are never renewed where it is off): the lookups by external id
then turn into sequential scans and every batch slows down as the tables
grow. On PostgreSQL the importer therefore runs ANALYZE on the tables it fills
each time the records it applied have doubled, from 5,000 on: a few dozen
quick statements for millions of records.

Memory stays flat: at most one batch of lines is held, and every cache is
bounded (see ``idmap.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from django.core.exceptions import ValidationError
from django.core.management.base import OutputWrapper
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import Min
from django.db.transaction import TransactionManagementError

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.ids import ids_allocate
from servicedesk.tickets.importer.apply import KINDS_WITH_ID, LEDGER_KINDS, RARE_KINDS, Applier, message_external_id
from servicedesk.tickets.importer.records import CHANNELS, Record, RecordError, record_parse
from servicedesk.tickets.models import (
    AgentPresence,
    Customer,
    Identity,
    ImportedRecord,
    Message,
    Rating,
    Session,
    Ticket,
    TicketEvent,
)
from servicedesk.tickets.models.sessions import PresenceSource
from servicedesk.tickets.services.customers import InvalidIdentity, identity_normalize
from servicedesk.tickets.services.history import HistoryBatch

# Failures of a write step that belong to the record, not to the import. A
# TransactionManagementError comes from a service that catches an error of its
# own inside a block left without savepoint (see _nested_savepoints_off).
WRITE_ERRORS = (ApplicationError, IntegrityError, DataError, ValidationError, ValueError)


@dataclass
class ImportStats:
    read: int = 0
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.read} records read, {self.applied} applied, {self.skipped} skipped as already imported, "
            f"{self.errors} errors, in {self.seconds:.1f} s ({self.rate:.0f} records/s)"
        )


@dataclass
class _BatchResult:
    applied: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class _Retry(Exception):
    """A write failed inside an optimistic batch: roll back and isolate each record."""


class _Stop(Exception):
    """Strict mode met an error."""


@contextmanager
def _nested_savepoints_off() -> Iterator[None]:
    """Let the services' nested ``atomic()`` blocks run without a SAVEPOINT each.

    Inside an optimistic batch a failing record rolls the whole batch back
    anyway, so the two round trips per service call buy nothing there. Django
    then marks the outer block for rollback on any error, which is what the
    batch wants. Savepoints stay on for the isolated replay.
    """
    features = connection.features
    features.uses_savepoints = False
    try:
        yield
    finally:
        del features.uses_savepoints


def _write_reason(exc: Exception) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, IntegrityError | DataError):
        return f"conflicts with stored data: {first_line}"
    return first_line


# Tables whose statistics are renewed as the import grows them.
_ANALYZED = (Customer, Identity, Ticket, Message, TicketEvent, Rating, ImportedRecord, Session, AgentPresence)
_FIRST_ANALYZE = 5000

# Record keys naming another record, per kind referred to.
_TICKET_KEYS = ("ticket", "same_issue_as")
# Kinds whose records change a ticket stored before the batch.
_TICKET_CHANGES = frozenset({"message", "status", "priority", "assign", "rating"})

Parsed = list[tuple[int, "Record | RecordError"]]


class HistoryImporter:
    def __init__(
        self,
        *,
        stderr: TextIO | OutputWrapper,
        strict: bool = False,
        batch_size: int = 2000,
        cache_size: int = 5000,
        bulk: bool = True,
    ) -> None:
        self.stderr = stderr
        self.strict = strict
        self.batch_size = batch_size
        self.bulk = bulk
        self.applier = Applier(cache_size=cache_size)
        self.stats = ImportStats()
        self._next_analyze = _FIRST_ANALYZE

    def import_lines(self, name: str, lines: Iterable[str | bytes]) -> bool:
        """Import one file's lines. Returns False when strict mode stopped at an error."""
        if not self.strict:
            for batch in self._batches(lines):
                result = self._batch_run(name, batch)
                self.stats.errors += len(result.errors)
                for error in result.errors:
                    self.stderr.write(error + "\n")
                self.stats.applied += result.applied
                self.stats.skipped += result.skipped
                self._statistics_renew(self.stats.applied)
            return True
        applied = skipped = 0
        try:
            with transaction.atomic():
                for batch in self._batches(lines):
                    result = self._batch_run(name, batch)
                    applied += result.applied
                    skipped += result.skipped
                    self._statistics_renew(self.stats.applied + applied)
        except _Stop:
            self.applier.forget()
            self.stats.errors += 1
            return False
        self.stats.applied += applied
        self.stats.skipped += skipped
        return True

    def _batches(self, lines: Iterable[str | bytes]) -> Iterable[Parsed]:
        batch: list[tuple[int, str | bytes]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            self.stats.read += 1
            batch.append((number, line))
            if len(batch) >= self.batch_size:
                yield _parse(batch)
                batch = []
        if batch:
            yield _parse(batch)

    def _statistics_renew(self, applied: int) -> None:
        if applied < self._next_analyze:
            return
        self._next_analyze = 2 * applied
        if connection.vendor == "postgresql":
            quote = connection.ops.quote_name
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE " + ", ".join(quote(model._meta.db_table) for model in _ANALYZED))

    def _batch_run(self, name: str, parsed: Parsed) -> _BatchResult:
        """One batch in its own transaction (a savepoint in strict mode), replayed record by record on _Retry."""
        quiet: AbstractContextManager[None] = nullcontext() if self.bulk else _nested_savepoints_off()
        try:
            with transaction.atomic(), quiet:
                return self._batch_apply(name, parsed, bulk=self.bulk, isolate=False)
        except _Retry:
            self.applier.forget()
            with transaction.atomic():
                return self._batch_apply(name, parsed, bulk=False, isolate=True)

    def _batch_apply(self, name: str, parsed: Parsed, *, bulk: bool, isolate: bool) -> _BatchResult:
        result = _BatchResult()
        applier = self.applier
        self._existing_load([record for _number, record in parsed if isinstance(record, Record)])
        ledger: list[ImportedRecord] = []
        try:
            for index, (number, record) in enumerate(parsed):
                if isinstance(record, RecordError):
                    self._fail(result, f"{name}:{number}: {record}")
                    continue
                common = bulk and record.kind not in RARE_KINDS
                if common and applier.batch is None:
                    self._segment_open(parsed, index)
                elif not common and applier.batch is not None:
                    self._segment_write()
                try:
                    write = applier.prepare(record)
                except RecordError as exc:
                    self._fail(result, f"{name}:{number}: {exc}")
                    continue
                if write is None:
                    result.skipped += 1
                    continue
                try:
                    if common:
                        write()
                    elif isolate or bulk:
                        with transaction.atomic():
                            write()
                    else:
                        write()
                except ApplicationError as exc:
                    if not common and not isolate and not bulk and not self.strict:
                        raise _Retry from exc
                    if not common:
                        applier.forget()
                    # A batch method refuses before it changes anything.
                    self._fail(result, f"{name}:{number}: {_write_reason(exc)}")
                    continue
                except (*WRITE_ERRORS, TransactionManagementError) as exc:
                    if common or (not isolate and not bulk and not self.strict):
                        raise _Retry from exc
                    # The savepoint rolled back rows that cached entries may point to.
                    applier.forget()
                    self._fail(result, f"{name}:{number}: {_write_reason(exc)}")
                    continue
                result.applied += 1
                if record.kind in LEDGER_KINDS:
                    applier.recorded.add(record.key)
                    ledger.append(ImportedRecord(key=record.key, kind=record.kind))
            if applier.batch is not None:
                self._segment_write()
            ImportedRecord.objects.bulk_create(ledger)
        except DatabaseError as exc:
            if not bulk:
                raise
            raise _Retry from exc
        finally:
            if applier.batch is not None:
                applier.batch = None
                applier.forget()
        return result

    def _segment_open(self, parsed: Parsed, start: int) -> None:
        """Start a HistoryBatch for the records from ``start`` to the next rare one, loading
        what they refer to with one query per kind."""
        applier = self.applier
        existing = applier.existing
        new_tickets: set[str] = set()
        new_customers: set[str] = set()
        new_messages: set[str] = set()
        tickets: set[str] = set()
        changed: set[str] = set()
        customers: set[str] = set()
        agents: set[str] = set()
        identities: set[tuple[str, str]] = set()
        for _number, record in parsed[start:]:
            if isinstance(record, RecordError):
                continue
            kind, values = record.kind, record.values
            if kind in RARE_KINDS:
                break
            if kind == "customer" and values["id"] not in existing["customer"]:
                new_customers.add(values["id"])
                identities.update(_identities(values))
            elif kind == "message" and values["id"] not in existing["message"]:
                new_messages.add(values["id"])
            elif kind == "ticket" and values["id"] not in existing["ticket"]:
                new_tickets.add(values["id"])
                customers.add(values["customer"])
                if "agent" in values:
                    agents.add(values["agent"])
            if kind in _TICKET_CHANGES:
                changed.add(values["ticket"])
            tickets.update(values[key] for key in _TICKET_KEYS if key in values)
            if kind == "message" and "author" in values:
                (customers if values["type"] == "public_enduser" else agents).add(values["author"])
            if kind == "session":
                customers.add(values["customer"])
            for key in ("by", "agent"):
                if kind in ("status", "assign", "session", "presence") and values.get(key) is not None:
                    agents.add(values[key])
        applier.ids.prefetch(agents=agents, customers=customers - new_customers, tickets=tickets - new_tickets)
        batch = HistoryBatch(
            allocate=ids_allocate,
            expected={Customer: len(new_customers), Ticket: len(new_tickets), Message: len(new_messages)},
        )
        stored = [applier.ids.ticket(external_id) for external_id in changed - new_tickets]
        batch.tickets_load(ref.pk for ref in stored if ref is not None)
        applier.taken = set()
        if identities:
            found = Identity.objects.filter(value__in={value for _kind, value in identities}).values_list(
                "kind", "value"
            )
            applier.taken = set(found) & identities
        applier.batch = batch

    def _segment_write(self) -> None:
        applier = self.applier
        assert applier.batch is not None
        applier.batch.flush()
        applier.live_flush()
        applier.batch = None
        applier.ids.settle()

    def _fail(self, result: _BatchResult, error: str) -> None:
        if self.strict:
            self.stderr.write(error + "\n")
            raise _Stop
        result.errors.append(error)

    def _existing_load(self, records: list[Record]) -> None:
        """Find, in one query per kind, which of the batch's records are already imported."""
        wanted: dict[str, list[str]] = {kind: [] for kind in KINDS_WITH_ID}
        keys: list[str] = []
        presence: set[tuple[str, datetime]] = set()
        for record in records:
            if record.kind in wanted:
                wanted[record.kind].append(record["id"])
            elif record.kind in LEDGER_KINDS:
                keys.append(record.key)
            elif record.kind == "presence":
                presence.add((record["agent"], record["at"]))
        existing = self.applier.existing
        for kind in KINDS_WITH_ID:
            existing[kind].clear()
        if wanted["agent"]:
            existing["agent"].update(
                v
                for v in User.objects.filter(external_id__in=wanted["agent"]).values_list("external_id", flat=True)
                if v
            )
        if wanted["customer"]:
            existing["customer"].update(
                v
                for v in Customer.objects.filter(external_id__in=wanted["customer"]).values_list(
                    "external_id", flat=True
                )
                if v
            )
        if wanted["ticket"]:
            existing["ticket"].update(
                v
                for v in Ticket.objects.filter(external_id__in=wanted["ticket"]).values_list("external_id", flat=True)
                if v
            )
        if wanted["message"]:
            stored = Message.objects.filter(
                channel__in=CHANNELS, external_id__in=[message_external_id(i) for i in wanted["message"]]
            ).values_list("external_id", flat=True)
            existing["message"].update(value.removeprefix("import:") for value in stored if value)
        if wanted["session"]:
            existing["session"].update(
                v
                for v in Session.objects.filter(external_id__in=wanted["session"]).values_list("external_id", flat=True)
                if v
            )
        self.applier.presence_states = {}
        self.applier.presence_desk_since = {}
        if presence:
            # A superset (any of the agents at any of the instants), narrowed to the exact pairs.
            rows = AgentPresence.objects.filter(
                agent__external_id__in={agent for agent, _at in presence},
                at__in={at for _agent, at in presence},
            ).values_list("agent__external_id", "at", "state")
            self.applier.presence_states = {
                (a, at): state for a, at, state in rows if a is not None and (a, at) in presence
            }
            # Imported presence must be earlier than this (apply.py, "Live-channel records").
            since = (
                AgentPresence.objects.filter(
                    agent__external_id__in={agent for agent, _at in presence}, source=PresenceSource.DESK
                )
                .order_by()
                .values("agent__external_id")
                .annotate(since=Min("at"))
                .values_list("agent__external_id", "since")
            )
            self.applier.presence_desk_since = {a: at for a, at in since if a is not None}
        self.applier.recorded = (
            set(ImportedRecord.objects.filter(key__in=keys).values_list("key", flat=True)) if keys else set()
        )


def _parse(batch: list[tuple[int, str | bytes]]) -> Parsed:
    parsed: Parsed = []
    for number, line in batch:
        try:
            parsed.append((number, record_parse(line)))
        except RecordError as exc:
            parsed.append((number, exc))
    return parsed


def _identities(values: dict) -> set[tuple[str, str]]:
    """A customer record's identities, normalised; invalid ones are reported when it is applied."""
    found: set[tuple[str, str]] = set()
    for kind, key in (("email", "emails"), ("phone", "phones")):
        for value in values.get(key, ()):
            with suppress(InvalidIdentity):
                found.add((kind, identity_normalize(kind=kind, value=value)))
    return found
