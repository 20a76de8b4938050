"""Streaming an interaction-history file into the database.

Records are read line by line and applied in batches: one transaction per
batch (few commits, so thousands of records per second), tried first without
per-record savepoints. A record that fails while writing makes the batch roll
back and run again with a savepoint around each record, so only that record is
lost. In strict mode the whole file is one transaction and the first error
stops it with nothing of the file written.

Memory stays flat: at most one batch of lines is held, and every cache is
bounded (see ``idmap.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.importer.apply import KINDS_WITH_ID, Applier, message_external_id
from servicedesk.tickets.importer.records import CHANNELS, Record, RecordError, record_parse
from servicedesk.tickets.models import Customer, Message, Ticket

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


class HistoryImporter:
    def __init__(self, *, stderr: TextIO, strict: bool = False, batch_size: int = 500, cache_size: int = 5000) -> None:
        self.stderr = stderr
        self.strict = strict
        self.batch_size = batch_size
        self.applier = Applier(cache_size=cache_size)
        self.stats = ImportStats()

    def import_lines(self, name: str, lines: Iterable[str | bytes]) -> bool:
        """Import one file's lines. Returns False when strict mode stopped at an error."""
        if not self.strict:
            for batch in self._batches(lines):
                self._batch_commit(name, batch)
            return True
        applied = skipped = 0
        try:
            with transaction.atomic(), _nested_savepoints_off():
                for batch in self._batches(lines):
                    result = self._batch_apply(name, batch, isolate=False)
                    applied += result.applied
                    skipped += result.skipped
        except _Stop:
            self.applier.forget()
            self.stats.errors += 1
            return False
        self.stats.applied += applied
        self.stats.skipped += skipped
        return True

    def _batches(self, lines: Iterable[str | bytes]) -> Iterable[list[tuple[int, str | bytes]]]:
        batch: list[tuple[int, str | bytes]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            self.stats.read += 1
            batch.append((number, line))
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _batch_commit(self, name: str, batch: list[tuple[int, str | bytes]]) -> None:
        try:
            with transaction.atomic(), _nested_savepoints_off():
                result = self._batch_apply(name, batch, isolate=False)
        except _Retry:
            self.applier.forget()
            with transaction.atomic():
                result = self._batch_apply(name, batch, isolate=True)
        self.stats.applied += result.applied
        self.stats.skipped += result.skipped
        self.stats.errors += len(result.errors)
        for error in result.errors:
            self.stderr.write(error + "\n")

    def _batch_apply(self, name: str, batch: list[tuple[int, str | bytes]], *, isolate: bool) -> _BatchResult:
        result = _BatchResult()
        parsed: list[tuple[int, Record | RecordError]] = []
        for number, line in batch:
            try:
                parsed.append((number, record_parse(line)))
            except RecordError as exc:
                parsed.append((number, exc))
        self._existing_load([record for _number, record in parsed if isinstance(record, Record)])
        for number, record in parsed:
            try:
                if isinstance(record, RecordError):
                    raise record
                write = self.applier.prepare(record)
            except RecordError as exc:
                self._fail(result, f"{name}:{number}: {exc}")
                continue
            if write is None:
                result.skipped += 1
                continue
            try:
                if isolate:
                    with transaction.atomic():
                        write()
                else:
                    write()
            except (*WRITE_ERRORS, TransactionManagementError) as exc:
                if not isolate and not self.strict:
                    raise _Retry from exc
                # The savepoint rolled back rows that cached entries may point to.
                self.applier.forget()
                self._fail(result, f"{name}:{number}: {_write_reason(exc)}")
                continue
            result.applied += 1
        return result

    def _fail(self, result: _BatchResult, error: str) -> None:
        if self.strict:
            self.stderr.write(error + "\n")
            raise _Stop
        result.errors.append(error)

    def _existing_load(self, records: list[Record]) -> None:
        """Find, in one query per kind, which of the batch's ids are already stored."""
        wanted: dict[str, list[str]] = {kind: [] for kind in KINDS_WITH_ID}
        for record in records:
            if record.kind in wanted:
                wanted[record.kind].append(record["id"])
        existing = self.applier.existing
        for kind in KINDS_WITH_ID:
            existing[kind].clear()
        if wanted["agent"]:
            existing["agent"].update(User.objects.filter(external_id__in=wanted["agent"]).values_list("external_id", flat=True))
        if wanted["customer"]:
            existing["customer"].update(
                Customer.objects.filter(external_id__in=wanted["customer"]).values_list("external_id", flat=True)
            )
        if wanted["ticket"]:
            existing["ticket"].update(Ticket.objects.filter(external_id__in=wanted["ticket"]).values_list("external_id", flat=True))
        if wanted["message"]:
            stored = Message.objects.filter(
                channel__in=CHANNELS, external_id__in=[message_external_id(i) for i in wanted["message"]]
            ).values_list("external_id", flat=True)
            existing["message"].update(value.removeprefix("import:") for value in stored)
