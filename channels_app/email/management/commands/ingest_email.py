"""``manage.py ingest_email [FILE ...]``: raw RFC 5322 messages from files, or stdin (MTA pipe).

Exit status, as an MTA pipe transport reads it: 0 when every message was
stored, a duplicate or quarantined; 75 (EX_TEMPFAIL, the MTA retries later)
when the database, the message broker or the raw-mail storage is unavailable;
1 with a one-line reason on stderr for anything else (an unreadable file).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError

from channels_app.email.models import InboundEmail
from channels_app.email.services import email_ingest
from servicedesk.core.health import broker_ok

EX_TEMPFAIL = 75

try:
    import psycopg

    TEMPORARY_ERRORS: tuple[type[BaseException], ...] = (
        OperationalError,
        InterfaceError,
        OSError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    )
except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite-only installs lack it
    TEMPORARY_ERRORS = (OperationalError, InterfaceError, OSError)


class Command(BaseCommand):
    help = "Ingest raw email messages from files or standard input (for an MTA pipe)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("files", nargs="*", help="RFC 5322 message files; standard input when none.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not broker_ok():
            # The acknowledgement and notifications go through the broker: let
            # the MTA keep the mail until it is back.
            self.stderr.write("temporary failure, try again later: the message broker is unreachable")
            sys.exit(EX_TEMPFAIL)
        failed = False
        for name in options["files"] or ["-"]:
            try:
                raw = sys.stdin.buffer.read() if name == "-" else _read(name)
            except OSError as exc:
                self.stderr.write(f"{name}: cannot read: {exc.strerror or exc}")
                failed = True
                continue
            try:
                result = email_ingest(raw=raw, source=InboundEmail.Source.PIPE)
            except TEMPORARY_ERRORS as exc:
                self.stderr.write(
                    f"{name}: temporary failure, try again later: {type(exc).__name__}: {exc}".splitlines()[0]
                )
                sys.exit(EX_TEMPFAIL)
            detail = result.reason if result.reason else (result.reference or "-")
            self.stdout.write(f"{result.outcome.value} {detail}")
        if failed:
            sys.exit(1)


def _read(name: str) -> bytes:
    with open(name, "rb") as handle:
        return handle.read()
