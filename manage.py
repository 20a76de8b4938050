#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import gc
import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["ingest_email"]:
        if any(arg == "--url" or arg.startswith("--url=") for arg in sys.argv[2:]):
            # The thin mail pipe posts to the running desk and needs no Django:
            # a mail server starts it for every message (channels_app/email/mailgate.py).
            from channels_app.email.mailgate import main as mailgate_main

            status = mailgate_main(sys.argv[2:])
            if status is not None:
                sys.exit(status)
        # A mail server starts this one for every message too. What Django's
        # start-up builds lives until the process exits, so the collector's
        # passes over it while it is built are wasted (about a sixth of the
        # start-up); the command freezes it and turns the collector back on.
        gc.disable()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    finally:
        # Live updates a command made are handed to a sending thread; they go
        # out before the process ends (servicedesk/core/realtime.py).
        realtime = sys.modules.get("servicedesk.core.realtime")
        if realtime is not None:
            realtime.realtime_flush()


if __name__ == "__main__":
    main()
