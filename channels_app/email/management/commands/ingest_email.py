"""``manage.py ingest_email [FILE ...]``: raw RFC 5322 messages from files, or stdin (MTA pipe).

Exit status, as an MTA pipe transport reads it: 0 when every message was
stored, a duplicate or quarantined; 75 (EX_TEMPFAIL, the MTA retries later)
when the database, the message broker or the raw-mail storage is unavailable;
1 with a one-line reason on stderr for anything else (an unreadable file).

With ``--url`` the mail goes to the running desk over HTTP instead
(``channels_app/email/mailgate.py``, same exit statuses); ``manage.py`` then
runs it without starting Django at all.

The command runs once per message, so it starts as little as it can: no
system checks (``manage.py check`` and the servers run them), and from the
command line the collector is off while Django starts (manage.py) and the
objects built then are frozen for it, which spares it passes over all of
them while they are built, at every later collection and at exit.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from django.core.management.base import BaseCommand

from channels_app.email import mailgate
from channels_app.email.models import InboundEmail
from channels_app.email.mta import EX_TEMPFAIL, TEMPORARY_ERRORS
from channels_app.email.services import email_ingest
from servicedesk.core.health import broker_ok


class Command(BaseCommand):
    help = "Ingest raw email messages from files or standard input (for an MTA pipe)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("files", nargs="*", help="RFC 5322 message files; standard input when none.")
        mailgate.options_add(parser)

    def run_from_argv(self, argv: list[str]) -> None:
        # From the command line (manage.py), the process ends after these
        # messages: what start-up built lives until then, so the collector
        # need not look at it again (call_command in a long-lived process
        # does not come here). manage.py kept the collector off while Django
        # started; it is on again for the messages.
        gc.freeze()
        gc.enable()
        super().run_from_argv(argv)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["url"] is not None:
            status = mailgate.mails_post(
                options["files"],
                url=options["url"],
                secret_file=options["secret_file"],
                timeout=options["timeout"],
                stdin=sys.stdin.buffer,
                stdout=self.stdout,
                stderr=self.stderr,
            )
            if status:
                sys.exit(status)
            return
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
