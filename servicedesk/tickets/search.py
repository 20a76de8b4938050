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
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import Exists, F, FloatField, Func, JSONField, OuterRef, Q, TextField, Value
from django.db.models.functions import Cast, Coalesce, Concat

from servicedesk.tickets.models import Message, SearchDocument, Tag, Ticket

# How many matching documents are ranked; a query matching more lists newest first.
DOCUMENT_LIMIT = 5_000
# A query PostgreSQL's statistics expect in more documents than this is not ranked at all when
# the newest tickets show it is common (DENSE_SAMPLE, DENSE_FOUND): finding out that it matches more
# than DOCUMENT_LIMIT would read those documents first (0.1 to 0.6 s for a common word).
BROAD_ESTIMATE = 20_000
# The newest tickets looked at, and how many of them must match, for a query to be listed
# newest first without ranking: one ticket in a hundred, so a page of 25 is found within a few
# thousand tickets tested.
DENSE_SAMPLE = 1_000
DENSE_FOUND = 10
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
    text = websearch_text(term)
    with connection.cursor() as cursor:
        if _common(cursor, text, internal=internal) or (internal and _common_tag(cursor, term, limit)):
            return None
        cursor.execute(_DOCUMENTS_RANKED[internal], [text, limit + 1])
        rows = cursor.fetchall()
    if sum(documents for _ticket, _rank, documents in rows) > limit:
        return None
    return {ticket_id: float(rank) for ticket_id, rank, _documents in rows}


_DOCUMENTS_EXPECTED = (
    "EXPLAIN (FORMAT JSON) SELECT 1 FROM tickets_search_document d"
    " WHERE d.document @@ websearch_to_tsquery('english', %s)"
)
# Keyed by ``internal``, as _DOCUMENTS_RANKED.
_NEWEST_MATCHING = {
    True: "SELECT count(*) FROM (SELECT t.id FROM tickets_ticket t ORDER BY t.updated_at DESC, t.id DESC LIMIT %s) t"
    " WHERE EXISTS (SELECT 1 FROM tickets_search_document d WHERE d.ticket_id = t.id"
    " AND d.document @@ websearch_to_tsquery('english', %s) OFFSET 0)",
    False: "SELECT count(*) FROM (SELECT t.id FROM tickets_ticket t ORDER BY t.updated_at DESC, t.id DESC LIMIT %s) t"
    " WHERE EXISTS (SELECT 1 FROM tickets_search_document d WHERE d.ticket_id = t.id"
    " AND d.document @@ websearch_to_tsquery('english', %s) AND NOT d.internal OFFSET 0)",
}


def _common(cursor: Any, text: str, *, internal: bool) -> bool:
    """Whether the query ``text`` is too common to rank, known without reading its documents:
    the planner expects it in more than BROAD_ESTIMATE documents (its statistics of the
    words in the index: close for one word, a guess for several or a phrase) and at least
    DENSE_FOUND of the DENSE_SAMPLE newest tickets match (a few milliseconds). Two statements
    of a millisecond or two for a rare query, which then is ranked; a query expected to be
    common but rare among the newest tickets is ranked too, so listing it newest first never
    tests every ticket to fill a page."""
    cursor.execute(_DOCUMENTS_EXPECTED, [text])
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    if plan[0]["Plan"]["Plan Rows"] <= BROAD_ESTIMATE:
        return False
    cursor.execute(_NEWEST_MATCHING[internal], [DENSE_SAMPLE, text])
    return cursor.fetchone()[0] >= DENSE_FOUND


_TAG_TICKETS = (
    "SELECT count(*) FROM (SELECT 1 FROM tickets_ticket_tags l JOIN tickets_tag g ON g.id = l.tag_id"
    " WHERE g.name = %s LIMIT %s) l"
)


def _common_tag(cursor: Any, term: str, limit: int) -> bool:
    """Whether ``term`` is the name of a tag on more than ``limit`` tickets (one lookup of the tag
    and its links, at most ``limit`` + 1): too many tagged documents to rank. A tag's name
    ("account-vip") is several words to the planner, which multiplies their frequencies and
    expects a few hundred documents, so the estimate alone does not catch it."""
    cursor.execute(_TAG_TICKETS, [term.lower(), limit + 1])
    return cursor.fetchone()[0] > limit


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
    return Q(ProbeExists(documents))


class ProbeExists(Exists):
    """``EXISTS`` that PostgreSQL runs as a test of each row it reaches, never as a join.

    ``OFFSET 0`` keeps the planner from turning the subquery into a semi-join
    (it never does for a subquery with an offset). A join is planned from how
    many documents the planner expects to match, and for a word in a few
    percent of the tickets it expected tens, then joined every ticket the user
    sees to find a page of them (1.7 s at a million tickets). Tested row by
    row, a list walks its sort index and stops when its page is full."""

    template = "EXISTS(%(subquery)s OFFSET 0)"


def search_rank(ranks: dict[int, float]) -> Coalesce:
    """Each ticket's rank from ``ranks`` as an expression (0 for one not in it): a JSON object looked up
    by the ticket's id, so a page of a ranked search orders without a statement per ticket.
    PostgreSQL's ``jsonb_extract_path_text``; elsewhere (the SQLite default) ``json_extract``."""
    payload = json.dumps({str(pk): rank for pk, rank in ranks.items()})
    if connection.vendor == "postgresql":
        mapping = Cast(Value(payload), JSONField())
        found = Func(mapping, Cast(F("id"), TextField()), function="jsonb_extract_path_text", output_field=TextField())
    else:
        path = Concat(Value('$."'), Cast(F("id"), TextField()), Value('"'), output_field=TextField())
        found = Func(Value(payload), path, function="json_extract", output_field=TextField())
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
