"""The tickets' full-text search documents, as the ORM reads them (servicedesk/tickets/search.py, docs/search.md).

The table, its triggers and its GIN index are PostgreSQL objects made by
migration ``tickets.0026_search_documents``; this model only names them so a
query can ask "does this ticket have a matching document" as a correlated
``EXISTS``. It is never written through the ORM (the triggers keep it).
"""

from __future__ import annotations

from django.contrib.postgres.search import SearchVectorField
from django.db import models


class SearchDocument(models.Model):
    """One ``tsvector``: a message (``message_id``), or a ticket's subject and reference
    (``part`` 0) or its tags (``part`` 1); ``internal`` unless a customer sees it."""

    id = models.BigAutoField(primary_key=True)
    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    message_id = models.BigIntegerField(null=True)
    part = models.SmallIntegerField()
    internal = models.BooleanField()
    document = SearchVectorField()

    class Meta:
        managed = False
        db_table = "tickets_search_document"

    def __str__(self) -> str:
        return f"document {self.pk} of ticket {self.ticket_id}"
