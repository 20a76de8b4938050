#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["ingest_email"] and any(arg == "--url" or arg.startswith("--url=") for arg in sys.argv[2:]):
        # The thin mail pipe posts to the running desk and needs no Django:
        # a mail server starts it for every message (channels_app/email/mailgate.py).
        from channels_app.email.mailgate import main as mailgate_main

        status = mailgate_main(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
