"""``manage.py fetch_mail [--account NAME]``: poll the IMAP accounts once, by hand.

Each poll drains its mailbox within the time budget (``SD_IMAP_POLL_SECONDS``;
the report line says when the budget left mail for the next poll). For mail
as it arrives, run ``manage.py mail_idle`` instead. Prints one report line
per account. Exit status 1 when a poll stopped with an
error (it is also recorded on the account), 75 (EX_TEMPFAIL) when the
database is unavailable.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from channels_app.email.imap import mailbox_poll
from channels_app.email.models import MailAccount

EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "Poll IMAP mail accounts once: every active account, or the one named."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--account", metavar="NAME", help="Poll only this account (even when inactive).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["account"]
        accounts = (
            list(MailAccount.objects.filter(name=name))
            if name
            else list(MailAccount.objects.filter(is_active=True).order_by("name"))
        )
        if name and not accounts:
            raise CommandError(f"No mail account named {name!r}.")
        failed = False
        for account in accounts:
            try:
                report = mailbox_poll(account=account)
            except (OperationalError, InterfaceError) as exc:
                self.stderr.write(
                    f"{account.name}: temporary failure, try again later: {type(exc).__name__}: {exc}".splitlines()[0]
                )
                sys.exit(EX_TEMPFAIL)
            if report.error:
                failed = True
                self.stderr.write(str(report))
            else:
                self.stdout.write(str(report))
        if failed:
            sys.exit(1)
