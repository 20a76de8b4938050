"""Import of interaction history (shared/HISTORY_FORMAT.md): records, apply, id mapping.

``HistoryImporter(stderr=...).import_lines(name, lines)`` is what the
``import_history`` command and ``seed_demo`` call.

Idempotency, so a second import of the same file changes nothing and reports
every record as already imported:

- records with an id (agent, customer, ticket, message) are known by it, kept
  as the row's external id: ``User``/``Customer``/``Ticket.external_id``, and
  ``import:<id>`` as the message's external id on the ticket's channel;
- records without one (status, priority, assign, merge, identity_merge,
  rating) are known by their key in the ``ImportedRecord`` ledger: the SHA-256
  of their canonical JSON (``json.dumps(record, sort_keys=True,
  separators=(",", ":"))``), written in the transaction that applies them.
  Two identical lines are one record. A merge whose source already points to
  its target is also taken as done.

Both paths (bulk and record by record, see ``runner.py``) follow this rule,
so either can re-run what the other imported.
"""

from servicedesk.tickets.importer.runner import HistoryImporter, ImportStats

__all__ = ["HistoryImporter", "ImportStats"]
