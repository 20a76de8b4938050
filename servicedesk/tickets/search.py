"""Full-text search of tickets: subjects, references, message text, internal notes and tags (docs/search.md).

On PostgreSQL each ticket has search documents in ``tickets_search_document``
(migration 0026): one for its subject and reference, one for its tags and one
per message, each a ``tsvector`` kept by database triggers on every write and
served by a GIN index. English words are stemmed ("printers" finds "printer");
Chinese, which has no spaces, is indexed as overlapping pairs of characters, as
the knowledge base does (``kb.services.search_terms``): "打印机" is "打印 印机",
and a Chinese query is looked for as that run of pairs.

A query is read as ``websearch_to_tsquery`` reads it: words, "quoted phrases",
``or`` and ``-word``; nothing typed makes it fail (a query of operators only
matches nothing). Internal notes and tags are searched for agents only: a
customer's search never matches them.

Elsewhere (the SQLite default) the same fields are matched by ``icontains``.
"""

from __future__ import annotations

import json
import re
import unicodedata

from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import Exists, F, FloatField, Func, JSONField, OuterRef, Q, TextField, Value
from django.db.models.functions import Cast, Coalesce

from servicedesk.tickets.models import Message, SearchDocument, Tag, Ticket

# How many matching documents are ranked; a query matching more lists newest first.
DOCUMENT_LIMIT = 5_000
# Ranks beside ts_rank_cd's (subject 1.0, tags 0.2, messages 0.1 per match, summed):
# a reference or address typed in full comes first; a name or a piece of a word last.
RANK_EXACT = 1000.0
RANK_PARTIAL = 0.001

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_PUBLIC_KINDS = ("public_enduser", "public_agent")


def search_term_clean(term: str) -> str:
    """The query as searched: NFC, without control characters (a NUL would fail the query), spaces folded."""
    term = unicodedata.normalize("NFC", term or "")
    term = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in term)
    return " ".join(term.split())


def websearch_text(term: str) -> str:
    """``term`` for ``websearch_to_tsquery``, its Chinese runs as the index holds them: pairs of characters,
    quoted as a phrase so the pairs must follow each other ("打印机" is ``"打印 印机"``)."""
    out: list[str] = []
    last = 0
    for run in _CJK_RUN.finditer(term):
        pairs = " ".join(run.group(0)[i : i + 2] for i in range(max(1, len(run.group(0)) - 1)))
        inside_quotes = term.count('"', 0, run.start()) % 2 == 1
        out.append(term[last : run.start()])
        out.append(f" {pairs} " if inside_quotes else f' "{pairs}" ')
        last = run.end()
    out.append(term[last:])
    return "".join(out)


# Keyed by ``internal``: whether notes and tags count.
_DOCUMENTS_RANKED = {
    True: "SELECT ticket_id, sum(rank), count(*) FROM (SELECT d.ticket_id, ts_rank_cd(d.document, q) AS rank"
    " FROM tickets_search_document d, websearch_to_tsquery('english', %s) q"
    " WHERE d.document @@ q LIMIT %s) m GROUP BY ticket_id",
    False: "SELECT ticket_id, sum(rank), count(*) FROM (SELECT d.ticket_id, ts_rank_cd(d.document, q) AS rank"
    " FROM tickets_search_document d, websearch_to_tsquery('english', %s) q"
    " WHERE d.document @@ q AND NOT d.internal LIMIT %s) m GROUP BY ticket_id",
}


def ticket_text_ranked(term: str, *, internal: bool, limit: int | None = None) -> dict[int, float] | None:
    """The tickets whose text matches ``term`` with their rank (one query), or None when more than
    ``limit`` documents match (too broad to rank: the caller lists the matches newest first).

    ``internal``: internal notes and tags count (agents only)."""
    term = search_term_clean(term)
    limit = DOCUMENT_LIMIT if limit is None else limit
    if not term:
        return {}
    if connection.vendor != "postgresql":
        return _portable_ranked(term, internal=internal, limit=limit)
    with connection.cursor() as cursor:
        cursor.execute(
            _DOCUMENTS_RANKED[internal],
            [websearch_text(term), limit + 1],
        )
        rows = cursor.fetchall()
    if sum(documents for _ticket, _rank, documents in rows) > limit:
        return None
    return {ticket_id: float(rank) for ticket_id, rank, _documents in rows}


def ticket_text_q(term: str, *, internal: bool) -> Q:
    """The tickets whose text matches ``term``, as a condition that runs no query of its own.

    A correlated ``EXISTS`` over the ticket's own documents (the index on
    ``ticket_id``), which PostgreSQL may run as a semi-join or as a probe per
    ticket. It is never the list of every matching document's ticket: for a
    word in millions of messages that list outgrows the memory of a hash and
    was scanned again for each ticket tested."""
    term = search_term_clean(term)
    if not term:
        return Q(pk__in=[])
    if connection.vendor != "postgresql":
        return _portable_q(term, internal=internal)
    documents = SearchDocument.objects.filter(
        ticket_id=OuterRef("pk"),
        document=SearchQuery(websearch_text(term), config="english", search_type="websearch"),
    )
    if not internal:
        documents = documents.filter(internal=False)
    return Q(Exists(documents))


def search_rank(ranks: dict[int, float]) -> Coalesce:
    """Each ticket's rank from ``ranks`` as an expression (0 for one not in it): a JSON object looked up
    by the ticket's id, so a page of a ranked search orders without a statement per ticket."""
    mapping = Cast(Value(json.dumps({str(pk): rank for pk, rank in ranks.items()})), JSONField())
    found = Func(mapping, Cast(F("id"), TextField()), function="jsonb_extract_path_text", output_field=TextField())
    return Coalesce(Cast(found, FloatField()), Value(0.0), output_field=FloatField())


# ------------------------------------------------------------------ the SQLite fallback


def _portable_q(term: str, *, internal: bool) -> Q:
    messages = Message.objects.filter(ticket_id=OuterRef("pk"), text__icontains=term)
    if not internal:
        messages = messages.filter(Q(kind__in=_PUBLIC_KINDS) | Q(kind="system", purpose="acknowledgement"))
    q = Q(subject__icontains=term) | Q(Exists(messages))
    if internal:
        tagged = Ticket.tags.through.objects.filter(
            ticket_id=OuterRef("pk"), tag_id__in=Tag.objects.filter(name__icontains=term).values("pk")
        )
        q |= Q(Exists(tagged))
    return q


def _portable_ranked(term: str, *, internal: bool, limit: int) -> dict[int, float] | None:
    rows = list(Ticket.objects.filter(_portable_q(term, internal=internal)).values_list("pk", "subject")[: limit + 1])
    if len(rows) > limit:
        return None
    lowered = term.lower()
    return {pk: 1.0 if lowered in subject.lower() else 0.1 for pk, subject in rows}
