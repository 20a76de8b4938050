"""``manage.py import_history FILE [FILE ...]``: load interaction history (JSON Lines).

The format is shared/HISTORY_FORMAT.md. Bad records are reported as
``FILE:LINE: reason`` on stderr and skipped; the command then exits non-zero.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from servicedesk.tickets.importer import HistoryImporter
from servicedesk.tickets.services.sla import tickets_sla_backfill


class Command(BaseCommand):
    help = "Import interaction history from JSON Lines files ('-' reads stdin); idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Stop at the first bad record; nothing of that file is written.",
        )
        parser.add_argument("--batch-size", type=int, default=2000, help="Records per transaction (default 2000).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        importer = HistoryImporter(stderr=self.stderr, strict=options["strict"], batch_size=options["batch_size"])
        stopped = None
        for name in options["files"]:
            if name == "-":
                stream = getattr(sys.stdin, "buffer", sys.stdin)
                completed = importer.import_lines("<stdin>", stream)
            else:
                try:
                    handle = open(name, "rb")  # noqa: SIM115 - closed below, after streaming
                except OSError as exc:
                    raise CommandError(f"{name}: {exc.strerror}") from None
                with handle:
                    completed = importer.import_lines(name, handle)
            if not completed:
                stopped = name
                break
        applied = tickets_sla_backfill(at=timezone.now())
        if applied:
            self.stdout.write(f"SLA targets applied to {applied} unsolved tickets.")
        self.stdout.write(importer.stats.summary())
        if stopped is not None:
            raise CommandError(f"Stopped at the first error in {stopped}; nothing of that file was written.")
        if importer.stats.errors:
            errors = importer.stats.errors
            raise CommandError(f"{errors} record{'s' if errors != 1 else ''} could not be imported (see above).")
