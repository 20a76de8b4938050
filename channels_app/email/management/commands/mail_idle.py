"""``manage.py mail_idle [--account NAME]``: take mail in as it arrives, with IMAP IDLE.

Runs until SIGTERM or Ctrl-C: per active account whose server offers IDLE, a
connection waits in IDLE and the account is polled as soon as new mail is
reported (``channels_app/email/idle.py``). Accounts whose server does not
offer IDLE are left to the minute poll of Celery beat, which keeps running
beside it; both share the account's poll lock.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels_app.email.idle import REFRESH_SECONDS, mailboxes_watch
from channels_app.email.models import MailAccount


class Command(BaseCommand):
    help = "Take mail in as it arrives: IMAP IDLE on every active mail account (or the one named), until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--account", metavar="NAME", help="Watch only this account (even when inactive).")
        parser.add_argument(
            "--refresh",
            type=float,
            default=REFRESH_SECONDS,
            metavar="SECONDS",
            help="How often the mail accounts are read again (default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["account"]
        if name and not MailAccount.objects.filter(name=name).exists():
            raise CommandError(f"No mail account named {name!r}.")
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"Watching {name or 'every active mail account'} with IMAP IDLE; stop with Ctrl-C.")
        try:
            mailboxes_watch(stop=stop, account_name=name, refresh_seconds=options["refresh"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Stopped.")
