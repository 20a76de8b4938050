# The tickets' full-text search documents (servicedesk/tickets/search.py, docs/search.md).
#
# PostgreSQL only: one table of tsvector documents, a row per message (public or internal)
# and two per ticket (subject and reference; tags), kept by triggers on every write,
# whatever writes the row (services, importer, bulk jobs, raw SQL), with a GIN index.
# A row per message keeps the write path cheap: storing a message parses that message
# only, and never rewrites a growing per-ticket document. Existing rows are indexed in
# batches of ids, each committed on its own (the migration is not atomic), so no
# statement holds locks for long on a large table; the GIN index is built afterwards,
# concurrently. Other databases search without it (the icontains fallback).

from django.db import migrations

# ruff: noqa: S608 (the SQL is built from this module's constants only)

CJK = "\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff"
# The messages a customer sees (access.public_messages); every other message is internal.
PUBLIC_MESSAGE = "(kind IN ('public_enduser', 'public_agent') OR (kind = 'system' AND purpose = 'acknowledgement'))"
BATCH = 20_000

SCHEMA = [
    """
CREATE TABLE tickets_search_document (
    id bigserial PRIMARY KEY,
    ticket_id bigint NOT NULL,
    message_id bigint,
    part smallint NOT NULL,
    internal boolean NOT NULL,
    document tsvector NOT NULL
)""",
    "CREATE UNIQUE INDEX tickets_search_document_message ON tickets_search_document (message_id)",
    "CREATE UNIQUE INDEX tickets_search_document_part ON tickets_search_document (ticket_id, part) "
    "WHERE message_id IS NULL",
    "CREATE INDEX tickets_search_document_ticket ON tickets_search_document (ticket_id)",
    # The text as the knowledge base indexes it (kb.services.search_terms): English words
    # stemmed, and Chinese, which has no spaces, as overlapping pairs of characters.
    f"""
CREATE FUNCTION tickets_search_vector(body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text := left(coalesce(body, ''), 100000);
    pairs text;
BEGIN
    IF t !~ '[{CJK}]' THEN
        RETURN to_tsvector('english', t);
    END IF;
    SELECT string_agg(
        CASE WHEN length(r[1]) = 1 THEN r[1]
        ELSE (SELECT string_agg(substr(r[1], i, 2), ' ' ORDER BY i) FROM generate_series(1, length(r[1]) - 1) i)
        END, ' ')
    INTO pairs FROM regexp_matches(t, '([{CJK}]+)', 'g') AS r;
    RETURN to_tsvector('english', regexp_replace(t, '[{CJK}]+', ' ', 'g')) || to_tsvector('simple', pairs);
END $$""",
    """
CREATE FUNCTION tickets_search_ticket_document(subject text, reference text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(tickets_search_vector(subject), 'A')
        || setweight(to_tsvector('english', coalesce(reference, '')), 'A')
$$""",
    """
CREATE FUNCTION tickets_search_tags_refresh(ticket bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO tickets_search_document (ticket_id, message_id, part, internal, document)
    SELECT ticket, NULL, 1, true, setweight(to_tsvector('english', coalesce(string_agg(g.name, ' '), '')), 'B')
    FROM tickets_ticket_tags tt JOIN tickets_tag g ON g.id = tt.tag_id WHERE tt.ticket_id = ticket
    ON CONFLICT (ticket_id, part) WHERE message_id IS NULL DO UPDATE SET document = EXCLUDED.document
$$""",
    """
CREATE FUNCTION tickets_search_ticket_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM tickets_search_document WHERE ticket_id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO tickets_search_document (ticket_id, message_id, part, internal, document)
    VALUES (NEW.id, NULL, 0, false, tickets_search_ticket_document(NEW.subject, NEW.reference))
    ON CONFLICT (ticket_id, part) WHERE message_id IS NULL DO UPDATE SET document = EXCLUDED.document;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER tickets_search_ticket AFTER INSERT OR UPDATE OF subject, reference OR DELETE "
    "ON tickets_ticket FOR EACH ROW EXECUTE FUNCTION tickets_search_ticket_written()",
    f"""
CREATE FUNCTION tickets_search_message_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM tickets_search_document WHERE message_id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO tickets_search_document (ticket_id, message_id, part, internal, document)
    VALUES (NEW.ticket_id, NEW.id, 2, NOT {PUBLIC_MESSAGE.replace("kind", "NEW.kind").replace("purpose", "NEW.purpose")},
            tickets_search_vector(NEW.text))
    ON CONFLICT (message_id) DO UPDATE
        SET ticket_id = EXCLUDED.ticket_id, internal = EXCLUDED.internal, document = EXCLUDED.document;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER tickets_search_message AFTER INSERT OR UPDATE OF text, kind, purpose, ticket_id OR DELETE "
    "ON tickets_message FOR EACH ROW EXECUTE FUNCTION tickets_search_message_written()",
    """
CREATE FUNCTION tickets_search_tagging_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tickets_search_tags_refresh(CASE WHEN TG_OP = 'DELETE' THEN OLD.ticket_id ELSE NEW.ticket_id END);
    RETURN NULL;
END $$""",
    "CREATE TRIGGER tickets_search_tagging AFTER INSERT OR DELETE "
    "ON tickets_ticket_tags FOR EACH ROW EXECUTE FUNCTION tickets_search_tagging_written()",
    """
CREATE FUNCTION tickets_search_tag_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tickets_search_tags_refresh(tt.ticket_id) FROM tickets_ticket_tags tt WHERE tt.tag_id = NEW.id;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER tickets_search_tag AFTER UPDATE OF name "
    "ON tickets_tag FOR EACH ROW EXECUTE FUNCTION tickets_search_tag_renamed()",
    # A flush (TRUNCATE, as tests do) fires no row trigger: the documents go with the tickets.
    """
CREATE FUNCTION tickets_search_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tickets_search_document;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER tickets_search_truncate AFTER TRUNCATE "
    "ON tickets_ticket FOR EACH STATEMENT EXECUTE FUNCTION tickets_search_truncated()",
]

# Each a range of ids [%s, %s): existing rows, in batches (a trigger may have indexed a row already).
BACKFILL = {
    "tickets_ticket": """
INSERT INTO tickets_search_document (ticket_id, message_id, part, internal, document)
SELECT id, NULL, 0, false, tickets_search_ticket_document(subject, reference)
FROM tickets_ticket WHERE id >= %s AND id < %s
ON CONFLICT DO NOTHING""",
    "tickets_message": f"""
INSERT INTO tickets_search_document (ticket_id, message_id, part, internal, document)
SELECT ticket_id, id, 2, NOT {PUBLIC_MESSAGE}, tickets_search_vector(text)
FROM tickets_message WHERE id >= %s AND id < %s
ON CONFLICT DO NOTHING""",
    "tickets_ticket_tags": """
SELECT tickets_search_tags_refresh(ticket_id)
FROM (SELECT DISTINCT ticket_id FROM tickets_ticket_tags WHERE id >= %s AND id < %s) tagged""",
}

INDEX = "CREATE INDEX CONCURRENTLY IF NOT EXISTS tickets_search_document_gin ON tickets_search_document USING gin (document)"

DROP = [
    "DROP TRIGGER IF EXISTS tickets_search_truncate ON tickets_ticket",
    "DROP TRIGGER IF EXISTS tickets_search_tag ON tickets_tag",
    "DROP TRIGGER IF EXISTS tickets_search_tagging ON tickets_ticket_tags",
    "DROP TRIGGER IF EXISTS tickets_search_message ON tickets_message",
    "DROP TRIGGER IF EXISTS tickets_search_ticket ON tickets_ticket",
    "DROP FUNCTION IF EXISTS tickets_search_truncated()",
    "DROP FUNCTION IF EXISTS tickets_search_tag_renamed()",
    "DROP FUNCTION IF EXISTS tickets_search_tagging_written()",
    "DROP FUNCTION IF EXISTS tickets_search_message_written()",
    "DROP FUNCTION IF EXISTS tickets_search_ticket_written()",
    "DROP FUNCTION IF EXISTS tickets_search_tags_refresh(bigint)",
    "DROP FUNCTION IF EXISTS tickets_search_ticket_document(text, text)",
    "DROP FUNCTION IF EXISTS tickets_search_vector(text)",
    "DROP TABLE IF EXISTS tickets_search_document",
]


def search_documents_backfill(connection, *, batch: int = BATCH) -> None:
    """Index every existing ticket, message and tagging, one committed batch of ids at a time."""
    for table, statement in BACKFILL.items():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT min(id), max(id) FROM {table}")
            low, high = cursor.fetchone()
        if low is None:
            continue
        for start in range(low, high + 1, batch):
            with connection.cursor() as cursor:
                cursor.execute(statement, [start, start + batch])


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for statement in SCHEMA:
            cursor.execute(statement)
    search_documents_backfill(connection)
    with connection.cursor() as cursor:
        cursor.execute(INDEX)
        cursor.execute("ANALYZE tickets_search_document")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP:
            cursor.execute(statement)


class Migration(migrations.Migration):
    # Batches commit one by one, and the GIN index is built concurrently.
    atomic = False

    dependencies = [("tickets", "0025_reply_drafts")]

    operations = [migrations.RunPython(forward, backward)]
