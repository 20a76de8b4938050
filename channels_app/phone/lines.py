"""The phone lines as the webhooks read them: kept by each process, decrypted (``core/process_cache.py``).

Every signed event needs every line's secrets (which line signed it?) and
numbers (is the event's number the line's?). Reading the lines and
decrypting their secrets for every event cost more than storing the event.
Each process keeps them; a save or delete of a line reaches every process
within a second (``ProcessCached``), and a signature that no line known to
the process made reads them again at once (``lines_known(fresh=True)``), so
a line just made is never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from servicedesk.core.process_cache import ProcessCached
from servicedesk.core.secrets import credential_decrypt

from .models import DEFAULT_LINE_KEY, PhoneLine


@dataclass(frozen=True)
class KnownLine:
    """A line with its secrets decrypted; ``line`` is for reading (its row is not locked)."""

    line: PhoneLine
    current: tuple[str, ...]
    previous: str
    previous_until: datetime | None

    def secrets(self, at: datetime | None = None) -> list[str]:
        """As ``PhoneLine.secrets``: the environment's (default line), the current one, the previous one in its time."""
        found = list(self.current)
        if self.previous and self.previous_until and (at or timezone.now()) < self.previous_until:
            found.append(self.previous)
        return found


def _read() -> tuple[KnownLine, ...]:
    made = []
    for line in PhoneLine.objects.order_by("pk"):
        current = []
        if line.key == DEFAULT_LINE_KEY and settings.SERVICEDESK.get("PHONE_WEBHOOK_SECRET"):
            current.append(settings.SERVICEDESK["PHONE_WEBHOOK_SECRET"])
        if line.secret_encrypted:
            current.append(credential_decrypt(line.secret_encrypted))
        previous = credential_decrypt(line.secret_previous_encrypted) if line.secret_previous_encrypted else ""
        made.append(KnownLine(line, tuple(current), previous, line.secret_previous_until))
    return tuple(made)


LINES = ProcessCached("phone-lines", _read, depends_on=[PhoneLine])


def lines_known(*, fresh: bool = False) -> tuple[KnownLine, ...]:
    """Every line (active or not), as this process knows them; ``fresh``: read from the database now."""
    if fresh:
        LINES.clear()
    return LINES.get()
