"""Import of interaction history (shared/HISTORY_FORMAT.md): records, apply, id mapping.

``HistoryImporter(stderr=...).import_lines(name, lines)`` is what the
``import_history`` command and ``seed_demo`` call.
"""

from servicedesk.tickets.importer.runner import HistoryImporter, ImportStats

__all__ = ["HistoryImporter", "ImportStats"]
