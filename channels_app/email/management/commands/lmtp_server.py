"""``manage.py lmtp_server [--host H] [--port P | --socket PATH]``: the LMTP listener a mail server delivers to.

Runs until SIGTERM or SIGINT, then stops gracefully (``channels_app/email/lmtp.py``):
the mails being received or stored get their replies first. The README's email
section shows the Postfix and Exim configuration.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels_app.email.lmtp import listening_socket, lmtp_serve


class Command(BaseCommand):
    help = "Receive mail from a mail server over LMTP (Postfix, Exim) until stopped with SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--port", type=int, default=8024, help="TCP port (default 8024).")
        where.add_argument("--socket", metavar="PATH", help="Listen on a Unix socket instead of TCP.")
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="Processes accepting on the socket, to use more CPUs (default 1).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="Threads per process that store mail, each with its own database connection (default 2).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds a stop waits for the mails in progress (default 30).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] < 1 or options["processes"] < 1:
            raise CommandError("--workers and --processes must be at least 1.")
        if options["verbosity"] < 2:
            # aiosmtpd logs every command of every session at INFO.
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        try:
            sock = listening_socket(host=options["host"], port=options["port"], socket_path=options["socket"])
        except OSError as exc:
            where = options["socket"] or f"{options['host']}:{options['port']}"
            raise CommandError(f"Cannot listen on {where}: {exc.strerror or exc}") from exc
        status = lmtp_serve(
            sock,
            processes=options["processes"],
            workers=options["workers"],
            grace=options["grace"],
            announce=self._announce,
        )
        if status:
            sys.exit(status)

    def _announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
